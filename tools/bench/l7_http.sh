#!/bin/sh
# L7 benchmark: wrk with 64, then 1,000 keep-alive connections, then 64 connections that each
# carry one request (wrk -H 'Connection: close': a new client connection per request) against
# one nginx origin directly, through lb (one http listener, workers: 1), through HAProxy in mode
# http (nbthread 1) and through nginx as a reverse proxy (worker_processes 1), on the same
# machine. The origin answers every request with the same small body (100 bytes) and all three
# proxies keep their connections to the origin alive and pooled in every variant; to wrk they
# keep them alive except in the Connection: close variant.
#
# What it measures, per connection count, target and round: requests/s, p50 and p99 latency
# as `wrk --latency` reports them, p99.9 from a wrk script's done() hook, and for the proxies their CPU time (utime+stime from
# /proc/PID/stat) over the run divided by the requests wrk completed. For nginx as a proxy that
# is master + worker (the master is idle during a run, so this is in effect the worker). Targets
# take turns within each round and the order rotates by one every round, so drift in machine
# speed hits them alike. The table gives median, min and max over the rounds and lb/HAProxy and
# lb/nginx ratios; DESIGN.md's target is lb's CPU per request at most 0.6 of HAProxy's with a
# p99 no worse (keep-alive; the close variant has no target, it shows the cost of a connection).
#
# Kernel work per request (keep-alive variants): during each measured run the proxy's system
# calls are counted with perf (raw_syscalls:sys_enter, counting mode: no sampling, next to no
# overhead; "-" where perf cannot count), and lb's io_uring submissions, completions and
# io_uring_enter calls are read from its lb_worker_ring_*_total counters before and after.
#
# If build/lb cannot run (it exits or never listens), the script says why, measures the rest
# and exits 3.
#
# Environment: ROUNDS (3; QUICK=1: 1), DURATION seconds per run (10; QUICK=1: 3),
# CLIENTS connections (unset: keep-alive with 64 and 1000, then 64 with Connection: close; set:
# those counts keep-alive, then the first with Connection: close), LB (path to lb).
# scale.sh runs this script again with more workers and connections, through: WORKERS (1):
# lb's workers, HAProxy's nbthread, nginx's worker_processes (proxy and origin) and wrk's
# threads; CLOSE (1; 0 leaves out the Connection: close variant); TARGETS ("direct lb haproxy
# nginx"); KEY (l7): the prefix of the recorded figures; TITLE: the section's heading.
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need wrk nginx haproxy pgrep python3 awk

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3}
else
    ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}
fi
# A variant is a connection count, with "close" after it for the Connection: close runs.
WORKERS=${WORKERS:-1}
NGINX_WORKERS=$WORKERS
KEY=${KEY:-l7}
VARIANTS=${CLIENTS:-64 1000}
set -- $VARIANTS
[ "${CLOSE:-1}" = 0 ] || VARIANTS="$VARIANTS ${1}close"
for v in $VARIANTS; do
    c=${v%close}
    [ $((c + 256)) -le "$NOFILE" ] ||
        die "$c connections need ulimit -n above $((c + 256)); the hard limit is $NOFILE"
done
WARMUP=1
WRK="wrk -t$WORKERS -cCLIENTS -d${DURATION}s --latency -s p999.lua"

set -- $(free_ports 5)
oport=$1 lport=$2 hport=$3 nport=$4 mport=$5

# A fixed body of 100 bytes, so responses are small and identical through every path.
BODY="lb-bench: L7 keep-alive benchmark; a small, fixed body of exactly one hundred bytes through a proxy."
[ ${#BODY} = 100 ] || die "response body is ${#BODY} bytes, want 100"

# --- the origin: one nginx worker answering every request with BODY
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
    nbthread $WORKERS
    maxconn $(((NOFILE - 256) / 2))

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
track_nginx "$nport" "nginx proxy" proxy

# --- lb: the same shape, config format per DESIGN.md
cat >"$BT/lb.yaml" <<EOF
global:
  workers: $WORKERS
  admin: { socket: $BT/lb.sock }
  metrics: { listen: 127.0.0.1:$mport }   # read before and after each run, never during
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
start_lb "$lport"
[ -n "$lb_why" ] && say "lb cannot run, its columns are skipped: $lb_why"

# proxy_pids TARGET: the processes of the proxy behind TARGET.
proxy_pids() {
    case $1 in
        lb) echo "$lb_pid" ;;
        haproxy) echo "$haproxy_pid" ;;
        nginx) echo "$nginx_pid $nginx_wpid" ;;
    esac
}

# proxy_ticks TARGET: CPU ticks so far of the proxy behind TARGET (empty for direct).
proxy_ticks() {
    case $1 in
        lb) cpu_ticks "$lb_pid" ;;
        haproxy) cpu_ticks "$haproxy_pid" ;;
        nginx) ticks_of $nginx_pid $nginx_wpid ;;
    esac
}

# run_once VARIANT TARGET PORT ROUND: one wrk run with the VARIANT's connections (and the
# Connection: close header when it ends in "close"); appends a result line "VARIANT TARGET ROUND REQ_PER_S P50_US P99_US P999_US CPU_US_PER_REQUEST ERRORS" (CPU "-"
# without a proxy) to $BT/results, or nothing for ROUND 0 (a warm-up of WARMUP seconds).
run_once() {
    conns=$1 target=$2 port=$3 round=$4
    d=$DURATION
    [ "$round" = 0 ] && d=$WARMUP
    if [ "${conns%close}" != "$conns" ]; then set -- -H "Connection: close"; else set --; fi
    t0=$(proxy_ticks "$target")
    ring0="- - -"
    if [ "$round" != 0 ] && [ "$target" != direct ]; then
        [ "$target" = lb ] && ring0=$(lb_ring "$mport")
        syscalls_begin "$d" $(proxy_pids "$target")
    fi
    if ! timeout $((d + 30)) wrk -t"$WORKERS" -c"${conns%close}" -d"${d}s" --latency -s "$WRK_LUA" "$@" \
        "http://127.0.0.1:$port/" >"$BT/run.out" 2>"$BT/run.err"; then
        die "wrk -c$conns against $target failed: $(tail -n 3 "$BT/run.out" "$BT/run.err")"
    fi
    t1=$(proxy_ticks "$target")
    # A warm-up only opens the connections and warms the caches: with 10,000 clients its one
    # second may end before any answer, and nothing of it is reported.
    [ "$round" != 0 ] || return 0
    sc="-" ring1="- - -"
    if [ "$round" != 0 ] && [ "$target" != direct ]; then
        syscalls_end
        sc=$SYSCALLS
        if [ "$target" = lb ]; then
            sleep 0.2 # the counters are published every 100 ms
            ring1=$(lb_ring "$mport")
        fi
    fi
    summary=$(wrk_summary "$BT/run.out") ||
        die "no figures from wrk -c$conns against $target: $(cat "$BT/run.out" "$BT/run.err")"
    set -- $summary
    n=$1 rps=$2 p50=$3 p99=$4 p999=$5 errs=$6
    [ "$n" -gt 0 ] || die "wrk -c$conns completed no request against $target"
    cpu="-"
    [ -n "$t0" ] && cpu=$(ticks_to_us_per $((t1 - t0)) "$n")
    if [ "$round" != 0 ]; then
        echo "$conns $target $round $rps $p50 $p99 $p999 $cpu $errs" >>"$BT/results"
        set -- $ring0 $ring1
        echo "$conns $target $round $(per_req "$sc" "$n")" \
            "$(per_req "$([ "$1" = - ] || [ "$4" = - ] || echo $(($4 - $1)))" "$n")" \
            "$(per_req "$([ "$2" = - ] || [ "$5" = - ] || echo $(($5 - $2)))" "$n")" \
            "$(per_req "$([ "$3" = - ] || [ "$6" = - ] || echo $(($6 - $3)))" "$n")" \
            >>"$BT/kernel"
        say "-c$conns round $round $target: $rps req/s p50 ${p50}us p99 ${p99}us" \
            "p99.9 ${p999}us proxy CPU ${cpu}us/req errors $errs"
    fi
}

# port_of TARGET, and whether TARGET runs at all in this build.
port_of() {
    case $1 in direct) echo "$oport" ;; lb) echo "$lport" ;; haproxy) echo "$hport" ;;
        nginx) echo "$nport" ;; esac
}
runs_target() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
runs() { [ "$1" != lb ] || [ -n "$lb_pid" ]; }

TARGETS=${TARGETS:-direct lb haproxy nginx}
: >"$BT/results"
: >"$BT/kernel"
for conns in $VARIANTS; do
    mode="keep-alive"; [ "${conns%close}" = "$conns" ] || mode="Connection: close"
    say "${conns%close} connections ($mode), ${DURATION}s per run, $ROUNDS rounds; warming up"
    for t in $TARGETS; do
        if runs "$t"; then run_once "$conns" "$t" "$(port_of "$t")" 0; fi
    done
    order=$TARGETS
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for t in $order; do
            if runs "$t"; then run_once "$conns" "$t" "$(port_of "$t")" $r; fi
        done
        # Rotate by one: the target that went first goes last next round.
        set -- $order
        first=$1; shift
        order="$* $first"
        r=$((r + 1))
    done
done

# col CONNS TARGET FIELD: "median min max" of one column (4 req/s, 5 p50, 6 p99, 7 p99.9,
# 8 CPU) for one connection count and target.
col() {
    awk -v c="$1" -v t="$2" -v f="$3" '$1 == c && $2 == t && $f != "-" { print $f }' \
        "$BT/results" | stats
}
med() { col "$@" | cut -d' ' -f1; }
errors_of() { awk -v c="$1" -v t="$2" '$1 == c && $2 == t { e += $9 } END { print e + 0 }' \
    "$BT/results"; }
row() { # CONNS TARGET LABEL
    e=$(errors_of "$1" "$2")
    record "${KEY}_c$1" "$2" errors "$e" "$e" "$e"
    for fm in 4:rps 5:p50 6:p99 7:p999 8:cpu; do
        record "${KEY}_c$1" "$2" "${fm#*:}" $(col "$1" "$2" "${fm%:*}")
    done
    set -- "$3" $(col "$1" "$2" 4) $(col "$1" "$2" 5) $(col "$1" "$2" 6) $(col "$1" "$2" 7) \
        $(col "$1" "$2" 8)
    printf '| %s |' "$1"; shift
    for v in "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10}" "${11}" "${12}"; do
        printf ' %s |' "$(fmt_int "$v")"
    done
    printf ' %s | %s | %s | %s |\n' "$(fmt_dec "${13}")" "$(fmt_dec "${14}")" \
        "$(fmt_dec "${15}")" "$e"
}
# kernel_row CONNS TARGET LABEL: medians of the kernel work per request.
kernel_row() {
    printf '| %s |' "$3"
    for f in 4 5 6 7; do
        printf ' %s |' "$(awk -v c="$1" -v t="$2" -v f="$f" '$1 == c && $2 == t && $f != "-" {
            print $f }' "$BT/kernel" | stats | cut -d' ' -f1)"
    done
    echo
    for fm in 4:syscalls 5:sqes 6:cqes 7:enters; do
        record "${KEY}_c$1" "$2" "${fm#*:}_per_req" $(awk -v c="$1" -v t="$2" -v f="${fm%:*}" \
            '$1 == c && $2 == t && $f != "-" { print $f }' "$BT/kernel" | stats)
    done
}
ratio_row() { # CONNS LABEL PEER: lb / PEER for req/s, p99, p99.9 and CPU (medians)
    printf '| **%s** (medians) | %s | | | | | | %s | | | %s | | | %s | | | |\n' "$2" \
        "$(ratio "$(med "$1" lb 4)" "$(med "$1" "$3" 4)")" \
        "$(ratio "$(med "$1" lb 6)" "$(med "$1" "$3" 6)")" \
        "$(ratio "$(med "$1" lb 7)" "$(med "$1" "$3" 7)")" \
        "$(ratio "$(med "$1" lb 8)" "$(med "$1" "$3" 8)")"
}

KA_VARIANTS=$(echo $VARIANTS | tr ' ' '\n' | grep -v close | tr '\n' ' ' | sed 's/ $//')
CLOSE_VARIANTS=$(echo $VARIANTS | tr ' ' '\n' | grep close | sed 's/close$//' | tr '\n' ' ' |
    sed 's/ $//')
echo "### ${TITLE:-L7: wrk through an HTTP/1.1 keep-alive proxy}"
echo
if [ -n "$CLOSE_VARIANTS" ]; then
    close_text="then with CLIENTS = $CLOSE_VARIANTS and \`-H 'Connection: close'\`, so that every
request comes on a new client connection (the proxy answers and closes; wrk connects again);"
else
    close_text=""
fi
echo "One nginx origin (worker_processes $WORKERS) answering \`200\` with a ${#BODY}-byte body;" \
    "\`$WRK http://127.0.0.1:PORT/\` with CLIENTS = $(echo $KA_VARIANTS | sed 's/ / and /g');" \
    $close_text \
    "$ROUNDS rounds, targets taking turns within each round" \
    "and the order rotating by one every round, after a ${WARMUP}s warm-up of each." \
    "Requests/s and p50/p99 as wrk reports them; p99.9 from wrk's latency histogram," \
    "printed by the done() hook of p999.lua (below). Proxy CPU is the proxy's" \
    "utime+stime during a run divided by the requests wrk completed (clock ticks of" \
    "1/${CLK_TCK}s); for nginx it is master + workers. Keep-alive to the origin everywhere, and to" \
    "wrk but in the Connection: close runs;" \
    "lb adds X-Forwarded-For, X-Forwarded-Proto and Via, so HAProxy (\`option forwardfor\`)" \
    "and nginx (\`proxy_set_header X-Forwarded-For\`) add X-Forwarded-For too." \
    "Open-file limit (ulimit -n) for every process: $NOFILE."
for conns in $VARIANTS; do
    echo
    if [ "${conns%close}" = "$conns" ]; then
        echo "#### $conns keep-alive connections (wrk -t$WORKERS -c$conns)"
    else
        echo "#### ${conns%close} connections, a new one per request" \
            "(wrk -t$WORKERS -c${conns%close} -H 'Connection: close')"
    fi
    echo
    printf '| target | req/s median | min | max | p50 µs median | min | max |'
    printf ' p99 µs median | min | max | p99.9 µs median | min | max |'
    printf ' proxy CPU µs/req median | min | max | errors |\n'
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    runs_target direct && row "$conns" direct "direct to nginx"
    row "$conns" haproxy "HAProxy $(haproxy -v | head -n 1 | awk '{print $3}'), mode http, nbthread $WORKERS"
    row "$conns" nginx "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), proxy_pass, worker_processes $WORKERS"
    if [ -n "$lb_pid" ]; then
        row "$conns" lb "lb, workers: $WORKERS"
        ratio_row "$conns" "lb / HAProxy" haproxy
        ratio_row "$conns" "lb / nginx" nginx
        echo
        if [ "${conns%close}" != "$conns" ]; then
            echo "No DESIGN.md target for this variant: it adds a TCP handshake, an accept and a" \
                "close to every request, on the client side only."
            continue
        fi
        echo "Kernel work per request, medians over the rounds: system calls of every" \
            "thread of the proxy (perf stat -e raw_syscalls:sys_enter, counting only), and for lb" \
            "the io_uring submissions (SQEs), completions (CQEs) and io_uring_enter calls, from" \
            "its lb_worker_ring_*_total counters read before and after the run."
        echo
        echo "| proxy | syscalls/req | io_uring SQEs/req | CQEs/req | io_uring_enter/req |"
        echo "|---|---:|---:|---:|---:|"
        kernel_row "$conns" lb "lb"
        kernel_row "$conns" haproxy "HAProxy"
        kernel_row "$conns" nginx "nginx"
        echo
        cpu_r=$(ratio "$(med "$conns" lb 8)" "$(med "$conns" haproxy 8)")
        p99_r=$(ratio "$(med "$conns" lb 6)" "$(med "$conns" haproxy 6)")
        verdict=$(awk -v c="$cpu_r" -v p="$p99_r" 'BEGIN {
            if (c == "-" || p == "-") { print "not measured"; exit }
            print (c <= 0.6 && p <= 1.0) ? "met" : "not met" }')
        echo "Target (DESIGN.md): lb / HAProxy CPU per request at most 0.60, p99 at most 1.00." \
            "This run: CPU $cpu_r, p99 $p99_r: $verdict."
    else
        echo "| lb, workers: $WORKERS | not run: $lb_why | | | | | | | | | | | | | | | |"
    fi
done
echo
echo "Commands (ports were ephemeral; /tmp/... is the run's temp dir):"
echo
echo '```sh'
echo "nginx -c origin.conf -p /tmp/.../origin -e /tmp/.../origin/error.log     # origin"
echo "haproxy -db -f haproxy.cfg"
echo "nginx -c proxy.conf -p /tmp/.../proxy -e /tmp/.../proxy/error.log        # nginx as a proxy"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml"
echo "$WRK http://127.0.0.1:PORT/" \
    "   # PORT: $oport direct, $lport lb, $hport haproxy, $nport nginx;" \
    "CLIENTS: $(echo $KA_VARIANTS | sed 's/ /, /g')"
for c in $CLOSE_VARIANTS; do
    echo "$WRK -H 'Connection: close' http://127.0.0.1:PORT/    # CLIENTS: $c"
done
echo '```'
echo
echo "p999.lua:"
echo
echo '```lua'
cat "$WRK_LUA"
echo '```'
echo
echo "origin.conf:"
echo
show_file nginx "$BT/origin.conf"
echo
echo "haproxy.cfg:"
echo
echo '```'
cat "$BT/haproxy.cfg"
echo '```'
echo
echo "proxy.conf (nginx as a proxy):"
echo
show_file nginx "$BT/proxy.conf"
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"

[ -n "$lb_pid" ] || exit 3
exit 0
