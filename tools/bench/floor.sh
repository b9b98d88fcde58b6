#!/bin/sh
# The floor: the cheapest HTTP/1.1 servers this machine can run (build/bench-floor, a minimal
# io_uring responder and the same with plain epoll, both answering a fixed 100-byte response
# and nothing else), beside lb, HAProxy and nginx each answering the same fixed response from
# memory: lb from a static snapshot, HAProxy with `http-request return`, nginx with `return
# 200`. Every server runs one thread (workers: 1, nbthread 1, worker_processes 1); wrk -t1
# with CLIENTS keep-alive connections. The figures are requests/s and the server's CPU time
# per request (utime+stime over the run / requests; nginx: master + worker), each also shown
# as a multiple of the io_uring floor's: what a server costs beyond the least any server on
# this machine must spend, syscalls and TCP included.
#
# Environment: ROUNDS (3; QUICK=1: 1), DURATION seconds per run (5; QUICK=1: 3), CLIENTS (64),
# LB (path to lb). Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need wrk nginx haproxy pgrep awk

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3}
else
    ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5}
fi
CLIENTS=${CLIENTS:-64}
FLOOR=${FLOOR:-$BENCH_ROOT/build/bench-floor}
[ -x "$FLOOR" ] || die "$FLOOR is not built (make)"
BODY="lb-bench: L7 keep-alive benchmark; a small, fixed body of exactly one hundred bytes through a proxy."
set -- $(free_ports 5)
uport=$1 eport=$2 lport=$3 hport=$4 nport=$5

start floor_uring "$FLOOR" uring "$uport"
uring_pid=$LAST_PID
start floor_epoll "$FLOOR" epoll "$eport"
epoll_pid=$LAST_PID
wait_port "$uport" "$uring_pid" 5 || die "bench-floor uring did not start: $(cat "$BT/floor_uring.log")"
wait_port "$eport" "$epoll_pid" 5 || die "bench-floor epoll did not start: $(cat "$BT/floor_epoll.log")"

mkdir -p "$BT/snap"
printf '%s' "$BODY" >"$BT/snap/body.txt"
cat >"$BT/lb.yaml" <<EOF
global: { workers: 1, admin: { socket: $BT/lb.sock }, log: { level: warn } }
listeners:
  - { name: web, bind: 127.0.0.1:$lport, routes: [ { static: fixed } ] }
static:
  fixed: { dir: $BT/snap }
EOF
start_lb "$lport"
[ -n "$lb_why" ] && say "lb cannot run, its row is skipped: $lb_why"

cat >"$BT/haproxy.cfg" <<EOF
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    timeout http-keep-alive 1m
    timeout client 1m
    timeout connect 5s
    timeout server 1m
frontend web
    bind 127.0.0.1:$hport
    http-request return status 200 content-type text/plain string "$BODY"
EOF
start haproxy haproxy -db -f "$BT/haproxy.cfg"
haproxy_pid=$LAST_PID
wait_port "$hport" "$haproxy_pid" 10 || die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")"
{
    nginx_conf "$BT/fixed"
    cat <<EOF
    server {
        listen 127.0.0.1:$nport;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
EOF
} >"$BT/fixed.conf"
start_nginx fixed
track_nginx "$nport" "nginx" fixed

pids_of() {
    case $1 in
        floor_uring) echo "$uring_pid" ;;
        floor_epoll) echo "$epoll_pid" ;;
        lb) echo "$lb_pid" ;;
        haproxy) echo "$haproxy_pid" ;;
        nginx) echo "$nginx_pid $nginx_wpid" ;;
    esac
}
url_of() {
    case $1 in
        floor_uring) echo "http://127.0.0.1:$uport/" ;;
        floor_epoll) echo "http://127.0.0.1:$eport/" ;;
        lb) echo "http://127.0.0.1:$lport/body.txt" ;;
        haproxy) echo "http://127.0.0.1:$hport/" ;;
        nginx) echo "http://127.0.0.1:$nport/" ;;
    esac
}
ticks() {
    s=0
    for p in $(pids_of "$1"); do s=$((s + $(cpu_ticks "$p"))); done
    echo "$s"
}

TARGETS="floor_uring floor_epoll haproxy nginx"
[ -n "$lb_pid" ] && TARGETS="$TARGETS lb"
: >"$BT/results"
r=0
while [ $r -le "$ROUNDS" ]; do
    for t in $TARGETS; do
        d=$DURATION
        [ $r = 0 ] && d=1 # round 0: a warm-up
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
    set -- $TARGETS
    first=$1
    shift
    TARGETS="$* $first" # the order rotates by one every round
    r=$((r + 1))
done

med() { awk -v t="$1" -v f="$2" '$1 == t { print $f }' "$BT/results" | stats | cut -d' ' -f1; }
fu_cpu=$(med floor_uring 4)
echo "### The floor: the cheapest server on this machine, and each server as a multiple of it"
echo
echo "A fixed 100-byte answer on keep-alive connections, \`wrk -t1 -c$CLIENTS -d${DURATION}s\`," \
    "$ROUNDS rounds (the order rotating), one thread per server. \`bench-floor\`" \
    "(tools/bench/floor.c) only finds the end of each request and writes the fixed response:" \
    "the least any HTTP server here must spend. CPU is the server's utime+stime per request;" \
    "× floor divides it by the io_uring floor's. Medians over the rounds; wrk -t1 is itself" \
    "near its limit, so requests/s flatten at the top."
echo
echo "| server | req/s | CPU µs/req | × floor (CPU) |"
echo "|---|---:|---:|---:|"
for t in floor_uring floor_epoll lb haproxy nginx; do
    case $t in
        floor_uring) label="floor: io_uring (bench-floor uring)" ;;
        floor_epoll) label="floor: epoll (bench-floor epoll)" ;;
        lb) label="lb, static snapshot, workers: 1" ;;
        haproxy) label="HAProxy $(haproxy -v | head -n 1 | awk '{print $3}'), http-request return" ;;
        nginx) label="nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), return 200" ;;
    esac
    if [ "$t" = lb ] && [ -z "$lb_pid" ]; then
        echo "| $label | not run: $lb_why | | |"
        continue
    fi
    record floor "$t" rps $(awk -v t="$t" '$1 == t { print $3 }' "$BT/results" | stats)
    record floor "$t" cpu $(awk -v t="$t" '$1 == t { print $4 }' "$BT/results" | stats)
    cpu=$(med "$t" 4)
    echo "| $label | $(fmt_int "$(med "$t" 3)") | $(fmt_dec "$cpu") | $(ratio "$cpu" "$fu_cpu") |"
done
echo
echo "haproxy.cfg:"
echo
echo '```'
sed "s|$BT/|/tmp/.../|" "$BT/haproxy.cfg"
echo '```'
echo
[ -n "$lb_pid" ] || exit 3
