#!/bin/sh
# L7 benchmark: wrk with 64 keep-alive connections against one nginx origin directly, through
# lb (one http listener, workers: 1), through HAProxy in mode http (nbthread 1) and through
# nginx as a reverse proxy (worker_processes 1), on the same machine. The origin answers every
# request with the same small body (about 100 bytes) and all three proxies keep connections
# alive on both sides: to wrk, and pooled to the origin.
#
# What it measures, per target and per round: requests/s, p50 and p99 latency as
# `wrk --latency` reports them, and for the proxies their CPU time (utime+stime from
# /proc/PID/stat) over the run divided by the requests wrk completed. For nginx as a proxy that
# is master + worker (the master is idle during a run, so this is in effect the worker). Targets
# take turns within each round and the order rotates by one every round, so drift in machine
# speed hits them alike. The table gives median, min and max over the rounds and lb/HAProxy and
# lb/nginx ratios; DESIGN.md's target is lb's CPU per request at most 0.6 of HAProxy's with a
# p99 no worse.
#
# If build/lb cannot run (it exits or never listens), the script says why, measures the rest
# and exits 3.
#
# Environment: ROUNDS (3; QUICK=1: 1), DURATION seconds per run (10; QUICK=1: 3),
# CLIENTS connections (64), LB (path to lb).
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need wrk nginx haproxy pgrep python3 awk

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3}
else
    ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}
fi
CLIENTS=${CLIENTS:-64}
WARMUP=1
WRK="wrk -t1 -c$CLIENTS -d${DURATION}s --latency"

set -- $(free_ports 4)
oport=$1 lport=$2 hport=$3 nport=$4

# A fixed body of 100 bytes, so responses are small and identical through every path.
BODY="lb-bench: L7 keep-alive benchmark; a small, fixed body of exactly one hundred bytes through a proxy."
[ ${#BODY} = 100 ] || die "response body is ${#BODY} bytes, want 100"

# nginx_conf DIR: the parts both nginx instances share (one worker, everything under DIR).
nginx_conf() {
    cat <<EOF
user root;
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 4096; }
http {
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    default_type text/plain;
EOF
}

# start_nginx NAME: nginx -c $BT/NAME.conf, prefix and logs in $BT/NAME; sets LAST_PID
# (the master).
start_nginx() {
    nginx -t -q -c "$BT/$1.conf" -p "$BT/$1" -e "$BT/$1/error.log" >"$BT/$1-check.log" 2>&1 ||
        die "nginx rejects $1.conf: $(cat "$BT/$1-check.log")"
    start "$1" nginx -c "$BT/$1.conf" -p "$BT/$1" -e "$BT/$1/error.log"
}

# nginx_worker MASTER: prints the PID of its one worker, once it has forked it.
nginx_worker() {
    i=0
    while [ $i -lt 50 ]; do
        w=$(pgrep -P "$1" | head -n 1) || true
        if [ -n "$w" ]; then
            echo "$w"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# --- the origin: one nginx worker answering every request with BODY
mkdir -p "$BT/origin"
{
    nginx_conf "$BT/origin"
    cat <<EOF
    server {
        listen 127.0.0.1:$oport;
        location / { return 200 "$BODY"; }
    }
}
EOF
} >"$BT/origin.conf"
start_nginx origin
origin_pid=$LAST_PID
wait_port "$oport" "$origin_pid" 10 || die "nginx origin did not start: $(tail -n 5 "$BT/origin.log")"
body=$(python3 -c 'import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5).read().decode())' \
    "$oport") || die "the nginx origin does not answer"
[ "$body" = "$BODY" ] || die "the nginx origin answers '$body'"

# --- haproxy: mode http, one thread, keep-alive to clients and reused server connections
cat >"$BT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 1m
    timeout server 1m
    timeout http-keep-alive 1m

listen web
    bind 127.0.0.1:$hport
    server o1 127.0.0.1:$oport
EOF
haproxy -c -q -f "$BT/haproxy.cfg" >"$BT/haproxy-check.log" 2>&1 ||
    die "haproxy rejects its config: $(cat "$BT/haproxy-check.log")"
start haproxy haproxy -db -f "$BT/haproxy.cfg"
haproxy_pid=$LAST_PID
wait_port "$hport" "$haproxy_pid" 10 || die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")"

# --- nginx as a reverse proxy: one worker, a keep-alive upstream pool
mkdir -p "$BT/proxy"
{
    nginx_conf "$BT/proxy"
    cat <<EOF
    upstream origin {
        server 127.0.0.1:$oport;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$nport;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
} >"$BT/proxy.conf"
start_nginx proxy
nginx_pid=$LAST_PID
wait_port "$nport" "$nginx_pid" 10 || die "nginx proxy did not start: $(tail -n 5 "$BT/proxy.log")"
nginx_wpid=$(nginx_worker "$nginx_pid") || die "nginx proxy has no worker"
# The worker is not our child, but we started it: the cleanup trap stops it too, should the
# master be gone first.
BENCH_PIDS="$BENCH_PIDS $nginx_wpid"

# --- lb: the same shape, config format per DESIGN.md
cat >"$BT/lb.yaml" <<EOF
global:
  workers: 1
  admin: { socket: $BT/lb.sock }
  log: { level: warn, access: off }

listeners:
  - name: web
    bind: 127.0.0.1:$lport
    protocol: http
    routes:
      - cluster: origin

clusters:
  origin:
    servers:
      - { name: o1, address: 127.0.0.1:$oport }
EOF
lb_pid=""
lb_why=""
if [ ! -x "$LB" ]; then
    lb_why="${LB#"$BENCH_ROOT"/} is not built"
else
    start lb "$LB" -c "$BT/lb.yaml"
    if wait_port "$lport" "$LAST_PID" 5; then
        lb_pid=$LAST_PID
    else
        lb_why=$(head -n 3 "$BT/lb.log" | tr '\n' ' ' | sed "s|$BT/|/tmp/.../|g; s/ *$//")
        [ -n "$lb_why" ] || lb_why="it did not listen on 127.0.0.1:$lport within 5s"
        stop "$LAST_PID"
    fi
fi
[ -n "$lb_why" ] && say "lb cannot run, its columns are skipped: $lb_why"

# proxy_ticks TARGET: CPU ticks so far of the proxy behind TARGET (empty for direct).
proxy_ticks() {
    case $1 in
        lb) cpu_ticks "$lb_pid" ;;
        haproxy) cpu_ticks "$haproxy_pid" ;;
        nginx) echo $(( $(cpu_ticks "$nginx_pid") + $(cpu_ticks "$nginx_wpid") )) ;;
    esac
}

# wrk_summary FILE: "REQUESTS REQ_PER_S P50_US P99_US ERRORS" from `wrk --latency` output.
# Latencies come as 635.00us, 1.23ms or 2.00s; errors are socket errors of every kind plus
# non-2xx/3xx responses.
wrk_summary() {
    awk 'function us(v) {
             if (v ~ /us$/) return v + 0
             if (v ~ /ms$/) return v * 1000
             if (v ~ /s$/) return v * 1000000
             return -1
         }
         $1 == "50%" { p50 = us($2) }
         $1 == "99%" { p99 = us($2) }
         / requests in / { n = $1 }
         $1 == "Requests/sec:" { rps = $2 }
         /Socket errors:/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
         /Non-2xx or 3xx responses:/ { e += $NF }
         END {
             if (n == "" || rps == "" || p50 == "" || p99 == "" || p50 < 0 || p99 < 0) exit 1
             printf "%d %.2f %.0f %.0f %d\n", n, rps, p50, p99, e
         }' "$1"
}

# run_once TARGET PORT ROUND: one wrk run; appends a result line
# "TARGET ROUND REQ_PER_S P50_US P99_US CPU_US_PER_REQUEST ERRORS" (CPU "-" without a proxy)
# to $BT/results, or nothing for ROUND 0 (a warm-up of WARMUP seconds).
run_once() {
    target=$1 port=$2 round=$3
    d=$DURATION
    [ "$round" = 0 ] && d=$WARMUP
    t0=$(proxy_ticks "$target")
    if ! timeout $((d + 30)) wrk -t1 -c"$CLIENTS" -d"${d}s" --latency \
        "http://127.0.0.1:$port/" >"$BT/run.out" 2>"$BT/run.err"; then
        die "wrk against $target failed: $(tail -n 3 "$BT/run.out" "$BT/run.err")"
    fi
    t1=$(proxy_ticks "$target")
    summary=$(wrk_summary "$BT/run.out") ||
        die "no figures from wrk against $target: $(cat "$BT/run.out" "$BT/run.err")"
    set -- $summary
    n=$1 rps=$2 p50=$3 p99=$4 errs=$5
    [ "$n" -gt 0 ] || die "wrk completed no request against $target"
    cpu="-"
    [ -n "$t0" ] && cpu=$(ticks_to_us_per $((t1 - t0)) "$n")
    if [ "$round" != 0 ]; then
        echo "$target $round $rps $p50 $p99 $cpu $errs" >>"$BT/results"
        say "round $round $target: $rps req/s p50 ${p50}us p99 ${p99}us" \
            "proxy CPU ${cpu}us/req errors $errs"
    fi
}

# port_of TARGET, and whether TARGET runs at all in this build.
port_of() {
    case $1 in direct) echo "$oport" ;; lb) echo "$lport" ;; haproxy) echo "$hport" ;;
        nginx) echo "$nport" ;; esac
}
runs() { [ "$1" != lb ] || [ -n "$lb_pid" ]; }

TARGETS="direct lb haproxy nginx"
say "$CLIENTS connections, ${DURATION}s per run, $ROUNDS rounds; warming up"
for t in $TARGETS; do
    if runs "$t"; then run_once "$t" "$(port_of "$t")" 0; fi
done
: >"$BT/results"
order=$TARGETS
r=1
while [ $r -le "$ROUNDS" ]; do
    for t in $order; do
        if runs "$t"; then run_once "$t" "$(port_of "$t")" $r; fi
    done
    # Rotate by one: the target that went first goes last next round.
    set -- $order
    first=$1; shift
    order="$* $first"
    r=$((r + 1))
done

# col TARGET FIELD: "median min max" of one column (3 req/s, 4 p50, 5 p99, 6 CPU) for one
# target.
col() {
    awk -v t="$1" -v f="$2" '$1 == t && $f != "-" { print $f }' "$BT/results" | stats
}
errors_of() { awk -v t="$1" '$1 == t { e += $7 } END { print e + 0 }' "$BT/results"; }
row() { # TARGET LABEL
    e=$(errors_of "$1")
    set -- "$1" "$2" $(col "$1" 3) $(col "$1" 4) $(col "$1" 5) $(col "$1" 6)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" \
        "$(fmt_int "$3")" "$(fmt_int "$4")" "$(fmt_int "$5")" \
        "$(fmt_int "$6")" "$(fmt_int "$7")" "$(fmt_int "$8")" \
        "$(fmt_int "$9")" "$(fmt_int "${10}")" "$(fmt_int "${11}")" \
        "$(fmt_dec "${12}")" "$(fmt_dec "${13}")" "$(fmt_dec "${14}")" "$e"
}
ratio_row() { # LABEL PEER: lb / PEER for req/s, p99 and CPU (medians)
    set -- "$1" "$2" "$(col lb 3 | cut -d' ' -f1)" "$(col lb 5 | cut -d' ' -f1)" \
        "$(col lb 6 | cut -d' ' -f1)"
    printf '| **%s** (medians) | %s | | | | | | %s | | | %s | | | |\n' "$1" \
        "$(ratio "$3" "$(col "$2" 3 | cut -d' ' -f1)")" \
        "$(ratio "$4" "$(col "$2" 5 | cut -d' ' -f1)")" \
        "$(ratio "$5" "$(col "$2" 6 | cut -d' ' -f1)")"
}

echo "### L7: wrk through an HTTP/1.1 keep-alive proxy"
echo
echo "One nginx origin answering \`200\` with a ${#BODY}-byte body;" \
    "\`$WRK http://127.0.0.1:PORT/\`; $ROUNDS rounds, targets taking turns within each round" \
    "and the order rotating by one every round, after a ${WARMUP}s warm-up of each." \
    "Requests/s and latency percentiles as wrk reports them. Proxy CPU is the proxy's" \
    "utime+stime during a run divided by the requests wrk completed (clock ticks of" \
    "1/${CLK_TCK}s); for nginx it is master + worker. Keep-alive on both sides everywhere;" \
    "lb adds X-Forwarded-For, X-Forwarded-Proto and Via, so HAProxy (\`option forwardfor\`)" \
    "and nginx (\`proxy_set_header X-Forwarded-For\`) add X-Forwarded-For too."
echo
printf '| target | req/s median | min | max | p50 µs median | min | max |'
printf ' p99 µs median | min | max | proxy CPU µs/req median | min | max | errors |\n'
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row direct "direct to nginx"
row haproxy "HAProxy $(haproxy -v | head -n 1 | awk '{print $3}'), mode http, nbthread 1"
row nginx "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), proxy_pass, worker_processes 1"
if [ -n "$lb_pid" ]; then
    row lb "lb, workers: 1"
    ratio_row "lb / HAProxy" haproxy
    ratio_row "lb / nginx" nginx
    echo
    cpu_r=$(ratio "$(col lb 6 | cut -d' ' -f1)" "$(col haproxy 6 | cut -d' ' -f1)")
    p99_r=$(ratio "$(col lb 5 | cut -d' ' -f1)" "$(col haproxy 5 | cut -d' ' -f1)")
    verdict=$(awk -v c="$cpu_r" -v p="$p99_r" 'BEGIN {
        if (c == "-" || p == "-") { print "not measured"; exit }
        print (c <= 0.6 && p <= 1.0) ? "met" : "not met" }')
    echo "Target (DESIGN.md): lb / HAProxy CPU per request at most 0.60, p99 at most 1.00." \
        "This run: CPU $cpu_r, p99 $p99_r: $verdict."
else
    echo "| lb, workers: 1 | not run: $lb_why | | | | | | | | | | | | |"
fi
echo
echo "Commands (ports were ephemeral; /tmp/... is the run's temp dir):"
echo
echo '```sh'
echo "nginx -c origin.conf -p /tmp/.../origin -e /tmp/.../origin/error.log     # origin"
echo "haproxy -db -f haproxy.cfg"
echo "nginx -c proxy.conf -p /tmp/.../proxy -e /tmp/.../proxy/error.log        # nginx as a proxy"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml"
echo "$WRK http://127.0.0.1:PORT/" \
    "   # PORT: $oport direct, $lport lb, $hport haproxy, $nport nginx"
echo '```'
echo
echo "origin.conf:"
echo
echo '```nginx'
sed "s|$BT/|/tmp/.../|" "$BT/origin.conf"
echo '```'
echo
echo "haproxy.cfg:"
echo
echo '```'
cat "$BT/haproxy.cfg"
echo '```'
echo
echo "proxy.conf (nginx as a proxy):"
echo
echo '```nginx'
sed "s|$BT/|/tmp/.../|" "$BT/proxy.conf"
echo '```'
echo
echo "lb.yaml:"
echo
echo '```yaml'
sed "s|$BT/|/tmp/.../|" "$BT/lb.yaml"
echo '```'

[ -n "$lb_pid" ] || exit 3
exit 0
