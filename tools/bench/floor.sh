#!/bin/sh
# The floor: the least any server or proxy on this machine must spend for a request, syscalls
# and TCP included, and each real server as a multiple of it. Three tables, one thread per
# server (workers: 1, nbthread 1, worker_processes 1), wrk -t1 with CLIENTS keep-alive
# connections; figures are requests/s and the server's CPU time per request (utime+stime over
# the run / requests; nginx: master + worker):
#
#  1. a fixed 100-byte answer: build/bench-floor (a minimal io_uring responder, and the same
#     with plain epoll: they find the end of each request and write the fixed response,
#     nothing else) beside lb (a static snapshot), HAProxy (`http-request return`) and nginx
#     (`return 200`);
#  2. a 2,458-byte JSON file (static.sh's workload): bench-floor answering with the file's
#     bytes beside lb (a static snapshot) and nginx (the file from disk, descriptors cached):
#     the least a static server can spend on this answer, against DESIGN.md's target of lb at
#     0.4 of nginx;
#  3. a proxy (l7_http.sh's workload: a 100-byte answer from an nginx origin, connections to
#     it kept alive): `bench-floor proxy` (each client connection paired with its own origin
#     connection, bytes passed through with one recv and one send per direction, no parsing)
#     beside lb, HAProxy (mode http) and nginx (proxy_pass): the least any L7 proxy can spend
#     here, against DESIGN.md's target of lb at 0.6 of HAProxy.
#
# Environment: ROUNDS (3; QUICK=1: 1), DURATION seconds per run (5; QUICK=1: 3), CLIENTS (64),
# LB (path to lb). Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need wrk nginx haproxy pgrep awk python3 curl cmp

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3}
else
    ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5}
fi
CLIENTS=${CLIENTS:-64}
FLOOR=${FLOOR:-$BENCH_ROOT/build/bench-floor}
[ -x "$FLOOR" ] || die "$FLOOR is not built (make)"
BODY="lb-bench: L7 keep-alive benchmark; a small, fixed body of exactly one hundred bytes through a proxy."
set -- $(free_ports 12)
uport=$1 eport=$2 lport=$3 hport=$4 nport=$5 sport=$6 pport=$7 oport=$8 hpport=$9
shift 9
npport=$1 nsport=$2

# The static workload: the 2,458-byte JSON document static.sh serves.
mkdir -p "$BT/snap" "$BT/www/s"
printf '%s' "$BODY" >"$BT/snap/body.txt"
catalog_json "$BT/snap/catalog.json" || die "cannot write the JSON snapshot"
cp "$BT/snap/catalog.json" "$BT/www/s/catalog.json"
SIZE=$(wc -c <"$BT/snap/catalog.json")

start floor_uring "$FLOOR" uring "$uport"
uring_pid=$LAST_PID
start floor_epoll "$FLOOR" epoll "$eport"
epoll_pid=$LAST_PID
start floor_static "$FLOOR" uring "$sport" "$BT/snap/catalog.json"
static_pid=$LAST_PID
wait_port "$uport" "$uring_pid" 5 || die "bench-floor uring did not start: $(cat "$BT/floor_uring.log")"
wait_port "$eport" "$epoll_pid" 5 || die "bench-floor epoll did not start: $(cat "$BT/floor_epoll.log")"
wait_port "$sport" "$static_pid" 5 || die "bench-floor (static) did not start: $(cat "$BT/floor_static.log")"

# --- the origin of the proxy table: nginx answering BODY (its CPU is not counted)
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
wait_port "$oport" "$LAST_PID" 10 || die "nginx origin did not start: $(tail -n 5 "$BT/origin.log")"
start floor_proxy "$FLOOR" proxy "$pport" "$oport"
proxy_pid=$LAST_PID
wait_port "$pport" "$proxy_pid" 5 || die "bench-floor proxy did not start: $(cat "$BT/floor_proxy.log")"

# --- lb: the fixed answer and the JSON file from snapshots, the proxy to the origin
cat >"$BT/lb.yaml" <<EOF
global: { workers: 1, admin: { socket: $BT/lb.sock }, log: { level: warn, access: off } }
listeners:
  - name: web
    bind: 127.0.0.1:$lport
    routes:
      - { match: { path_prefix: /p/ }, cluster: origin }
      - { static: fixed }
clusters:
  origin: { servers: [ { name: o1, address: 127.0.0.1:$oport } ] }
static:
  fixed: { dir: $BT/snap }
EOF
start_lb "$lport"
[ -n "$lb_why" ] && say "lb cannot run, its rows are skipped: $lb_why"

cat >"$BT/haproxy.cfg" <<EOF
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout http-keep-alive 1m
    timeout client 1m
    timeout connect 5s
    timeout server 1m
frontend web
    bind 127.0.0.1:$hport
    http-request return status 200 content-type text/plain string "$BODY"
listen proxy
    bind 127.0.0.1:$hpport
    option forwardfor
    server o1 127.0.0.1:$oport
EOF
start haproxy haproxy -db -f "$BT/haproxy.cfg"
haproxy_pid=$LAST_PID
wait_port "$hport" "$haproxy_pid" 10 || die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")"
wait_port "$hpport" "$haproxy_pid" 10 || die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")"
{
    nginx_conf "$BT/fixed"
    cat <<EOF
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    sendfile on;
    tcp_nopush on;
    upstream origin {
        server 127.0.0.1:$oport;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$nport;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
    server {
        listen 127.0.0.1:$nsport;
        root $BT/www;
        location /s/ { default_type application/json; }
    }
    server {
        listen 127.0.0.1:$npport;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
} >"$BT/fixed.conf"
start_nginx fixed
track_nginx "$nport" "nginx" fixed
wait_port "$nsport" "$nginx_pid" 10 || die "nginx (static) did not start"
wait_port "$npport" "$nginx_pid" 10 || die "nginx (proxy) did not start"

pids_of() {
    case $1 in
        floor_uring) echo "$uring_pid" ;;
        floor_epoll) echo "$epoll_pid" ;;
        floor_static) echo "$static_pid" ;;
        floor_proxy) echo "$proxy_pid" ;;
        lb | lb_static | lb_proxy) echo "$lb_pid" ;;
        haproxy | haproxy_proxy) echo "$haproxy_pid" ;;
        nginx | nginx_static | nginx_proxy) echo "$nginx_pid $nginx_wpid" ;;
    esac
}
url_of() {
    case $1 in
        floor_uring) echo "http://127.0.0.1:$uport/" ;;
        floor_epoll) echo "http://127.0.0.1:$eport/" ;;
        floor_static) echo "http://127.0.0.1:$sport/s/catalog.json" ;;
        floor_proxy) echo "http://127.0.0.1:$pport/p/" ;;
        lb) echo "http://127.0.0.1:$lport/body.txt" ;;
        lb_static) echo "http://127.0.0.1:$lport/catalog.json" ;;
        lb_proxy) echo "http://127.0.0.1:$lport/p/" ;;
        haproxy) echo "http://127.0.0.1:$hport/" ;;
        haproxy_proxy) echo "http://127.0.0.1:$hpport/p/" ;;
        nginx) echo "http://127.0.0.1:$nport/" ;;
        nginx_static) echo "http://127.0.0.1:$nsport/s/catalog.json" ;;
        nginx_proxy) echo "http://127.0.0.1:$npport/p/" ;;
    esac
}
ticks() {
    s=0
    for p in $(pids_of "$1"); do s=$((s + $(cpu_ticks "$p"))); done
    echo "$s"
}

# Every answer is checked once before anything is measured: the same body on every path.
for t in floor_static lb_static nginx_static; do
    [ "$t" = lb_static ] && [ -z "$lb_pid" ] && continue
    curl -s -o "$BT/check.json" "$(url_of "$t")" || die "$t does not answer"
    cmp -s "$BT/check.json" "$BT/snap/catalog.json" || die "$t answers other bytes than the file"
done
for t in floor_proxy lb_proxy haproxy_proxy nginx_proxy; do
    [ "$t" = lb_proxy ] && [ -z "$lb_pid" ] && continue
    [ "$(curl -s "$(url_of "$t")")" = "$BODY" ] || die "$t does not pass the origin's answer"
done

# measure TARGET...: ROUNDS rounds of wrk against each TARGET in turn (round 0 a warm-up, the
# order rotating by one every round); appends "TARGET ROUND REQ_PER_S CPU_US" to results.
measure() {
    targets="$*"
    r=0
    while [ $r -le "$ROUNDS" ]; do
        for t in $targets; do
            d=$DURATION
            [ $r = 0 ] && d=1
            t0=$(ticks "$t")
            timeout $((d + 30)) wrk -t1 -c"$CLIENTS" -d"${d}s" --latency -s "$WRK_LUA" \
                "$(url_of "$t")" >"$BT/run.out" 2>&1 || die "wrk against $t failed"
            t1=$(ticks "$t")
            summary=$(wrk_summary "$BT/run.out") || die "no figures from wrk against $t"
            set -- $summary
            [ "$6" = 0 ] || die "$t: $6 errors: $(cat "$BT/run.out")"
            if [ $r != 0 ]; then
                cpu=$(ticks_to_us_per $((t1 - t0)) "$1")
                echo "$t $r $2 $cpu" >>"$BT/results"
                say "round $r $t: $2 req/s, ${cpu}us CPU per request"
            fi
        done
        set -- $targets
        first=$1
        shift
        targets="$* $first"
        r=$((r + 1))
    done
}

: >"$BT/results"
# with_lb LB_TARGET TARGET...: the targets, and LB_TARGET when lb runs.
with_lb() {
    l=$1
    shift
    if [ -n "$lb_pid" ]; then echo "$* $l"; else echo "$*"; fi
}
measure $(with_lb lb floor_uring floor_epoll haproxy nginx)
measure $(with_lb lb_static floor_static nginx_static)
measure $(with_lb lb_proxy floor_proxy haproxy_proxy nginx_proxy)

med() { awk -v t="$1" -v f="$2" '$1 == t { print $f }' "$BT/results" | stats | cut -d' ' -f1; }
HAPROXY_V=$(haproxy -v | head -n 1 | awk '{print $3}')
NGINX_V=$(nginx -v 2>&1 | sed 's|.*nginx/||')

# row SECTION TARGET LABEL FLOOR_TARGET: a table row, the CPU also as a multiple of the floor's.
row() {
    if [ "${2%%_*}" = lb ] && [ -z "$lb_pid" ]; then
        echo "| $3 | not run: $lb_why | | |"
        return
    fi
    record "$1" "${2%%_*}" rps $(awk -v t="$2" '$1 == t { print $3 }' "$BT/results" | stats)
    record "$1" "${2%%_*}" cpu $(awk -v t="$2" '$1 == t { print $4 }' "$BT/results" | stats)
    cpu=$(med "$2" 4)
    echo "| $3 | $(fmt_int "$(med "$2" 3)") | $(fmt_dec "$cpu") | $(ratio "$cpu" "$(med "$4" 4)") |"
}

echo "### The floor: the cheapest server on this machine, and each server as a multiple of it"
echo
echo "Keep-alive connections, \`wrk -t1 -c$CLIENTS -d${DURATION}s\`, $ROUNDS rounds (the order" \
    "rotating), one thread per server. \`bench-floor\` (tools/bench/floor.c) does the least an" \
    "HTTP server or proxy can: it finds the end of each request and writes a fixed response, or," \
    "as a proxy, passes bytes through untouched. CPU is the server's utime+stime per request;" \
    "× floor divides it by the floor's of the same table. Medians over the rounds; wrk -t1 is" \
    "itself near its limit, so requests/s flatten at the top."
echo
echo "#### A fixed 100-byte answer"
echo
echo "| server | req/s | CPU µs/req | × floor (CPU) |"
echo "|---|---:|---:|---:|"
row floor floor_uring "floor: io_uring (bench-floor uring)" floor_uring
row floor floor_epoll "floor: epoll (bench-floor epoll)" floor_uring
row floor lb "lb, static snapshot, workers: 1" floor_uring
row floor haproxy "HAProxy $HAPROXY_V, http-request return" floor_uring
row floor nginx "nginx $NGINX_V, return 200" floor_uring
echo
echo "#### A $SIZE-byte JSON file (the static benchmark's answer)"
echo
echo "| server | req/s | CPU µs/req | × floor (CPU) |"
echo "|---|---:|---:|---:|"
row floor_static floor_static "floor: io_uring (bench-floor uring FILE)" floor_static
row floor_static lb_static "lb, static snapshot, workers: 1" floor_static
row floor_static nginx_static "nginx $NGINX_V, from disk, open_file_cache, sendfile" floor_static
echo
f=$(med floor_static 4) n=$(med nginx_static 4)
echo "The minimal responder spends $(ratio "$f" "$n") of nginx's CPU per request on this answer," \
    "lb $(ratio "$(med lb_static 4)" "$n"); DESIGN.md's static target (lb at most 0.40 of nginx) is $(
        awk -v f="$f" -v n="$n" 'BEGIN { if (n + 0 == 0) print "-"; else if (f / n > 0.4) print "below"; else print "above" }'
    ) what the minimal responder reaches."
echo
echo "#### A proxy: a 100-byte answer from one nginx origin, connections to it kept alive"
echo
echo "| proxy | req/s | CPU µs/req | × floor (CPU) |"
echo "|---|---:|---:|---:|"
row floor_proxy floor_proxy "floor: io_uring (bench-floor proxy, bytes passed through)" floor_proxy
row floor_proxy lb_proxy "lb, workers: 1" floor_proxy
row floor_proxy haproxy_proxy "HAProxy $HAPROXY_V, mode http, nbthread 1" floor_proxy
row floor_proxy nginx_proxy "nginx $NGINX_V, proxy_pass, worker_processes 1" floor_proxy
echo
f=$(med floor_proxy 4) h=$(med haproxy_proxy 4)
echo "The minimal pass-through proxy (it parses nothing and adds no header) spends" \
    "$(ratio "$f" "$h") of HAProxy's CPU per request; lb spends $(ratio "$(med lb_proxy 4)" "$h")" \
    "of HAProxy's, $(ratio "$(med lb_proxy 4)" "$f") times the minimal proxy's."
echo
echo "haproxy.cfg:"
echo
echo '```'
sed "s|$BT/|/tmp/.../|" "$BT/haproxy.cfg"
echo '```'
echo
[ -n "$lb_pid" ] || exit 3
