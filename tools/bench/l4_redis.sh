#!/bin/sh
# L4 benchmark: redis-benchmark against one redis-server directly, through lb (one tcp
# listener, workers: 1) and through HAProxy in mode tcp (nbthread 1), on the same machine.
#
# What it measures, per target and per round: GET and SET requests/s as redis-benchmark
# reports them, and for the two proxies their CPU time (utime+stime of the process, from
# /proc/PID/stat) over the run divided by the run's requests. Targets alternate within each
# round (A B A B, and the two proxies swap places every other round) so drift in machine
# speed hits them alike. The table gives median, min and max over the rounds, and lb/haproxy
# ratios; DESIGN.md's target is lb >= 1.2x HAProxy's requests/s. A fourth target, the floor
# (build/bench-floor proxy: io_uring, bytes passed through with one recv and one send per
# direction and nothing else), shows what the cheapest possible TCP proxy reaches here: no
# proxy can be faster than it by more than noise, so it bounds what the target can ask.
#
# If build/lb cannot run (it exits or never listens), the script says why, measures the rest
# and exits 3.
#
# Environment: ROUNDS (3), N requests per test (200000; QUICK=1: 20000), CLIENTS (50),
# LB (path to lb).
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need redis-server redis-benchmark haproxy python3 awk

ROUNDS=${ROUNDS:-3}
if [ "${QUICK:-0}" = 1 ]; then N=${N:-20000}; else N=${N:-200000}; fi
CLIENTS=${CLIENTS:-50}
TESTS=get,set

# Three distinct ports (the kernel could hand back one it just gave).
rport=$(free_port)
hport=$(free_port)
while [ "$hport" = "$rport" ]; do hport=$(free_port); done
lport=$(free_port)
while [ "$lport" = "$rport" ] || [ "$lport" = "$hport" ]; do lport=$(free_port); done

# --- redis
mkdir -p "$BT/redis"
REDIS_CMD="redis-server --bind 127.0.0.1 --port $rport --save '' --appendonly no --dir /tmp/.../redis"
start redis redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
    --dir "$BT/redis" --daemonize no
redis_pid=$LAST_PID
wait_port "$rport" "$redis_pid" 10 || die "redis-server did not start: $(tail -n 5 "$BT/redis.log")"

# --- haproxy: mode tcp, one thread, plain forwarding
cat >"$BT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m

listen redis
    bind 127.0.0.1:$hport
    server r1 127.0.0.1:$rport
EOF
haproxy -c -q -f "$BT/haproxy.cfg" >"$BT/haproxy-check.log" 2>&1 ||
    die "haproxy rejects its config: $(cat "$BT/haproxy-check.log")"
start haproxy haproxy -db -f "$BT/haproxy.cfg"
haproxy_pid=$LAST_PID
wait_port "$hport" "$haproxy_pid" 10 || die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")"

# --- lb: the same shape, config format per DESIGN.md
cat >"$BT/lb.yaml" <<EOF
global:
  workers: 1
  admin: { socket: $BT/lb.sock }

listeners:
  - name: redis
    bind: 127.0.0.1:$lport
    protocol: tcp
    cluster: cache

clusters:
  cache:
    servers:
      - { name: r1, address: 127.0.0.1:$rport }
EOF
FLOOR=${FLOOR:-$BENCH_ROOT/build/bench-floor}
floor_pid=""
fport=""
if [ -x "$FLOOR" ]; then
    fport=$(free_port)
    while [ "$fport" = "$rport" ] || [ "$fport" = "$hport" ] || [ "$fport" = "$lport" ]; do
        fport=$(free_port)
    done
    start floor "$FLOOR" proxy "$fport" "$rport"
    if wait_port "$fport" "$LAST_PID" 5; then floor_pid=$LAST_PID; else stop "$LAST_PID"; fi
fi
[ -n "$floor_pid" ] || say "bench-floor proxy cannot run: its row is skipped"

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

# run_once TARGET PORT PROXY_PID ROUND: one redis-benchmark run; appends a result line
# "TARGET ROUND GET_RPS SET_RPS CPU_US_PER_REQUEST" (CPU "-" without a proxy) to
# $BT/results, or nothing for ROUND 0 (a warm-up).
run_once() {
    target=$1 port=$2 ppid=$3 round=$4
    n=$N
    [ "$round" = 0 ] && n=$((N / 10 + 1))
    [ -n "$ppid" ] && t0=$(cpu_ticks "$ppid")
    if ! timeout 600 redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$n" \
        -t "$TESTS" -q --csv >"$BT/run.csv" 2>"$BT/run.err"; then
        die "redis-benchmark against $target failed: $(tail -n 3 "$BT/run.err")"
    fi
    cpu="-"
    if [ -n "$ppid" ]; then
        t1=$(cpu_ticks "$ppid")
        cpu=$(ticks_to_us_per $((t1 - t0)) $((2 * n)))
    fi
    get=$(awk -F'"' '$2 == "GET" { print $4 }' "$BT/run.csv")
    set=$(awk -F'"' '$2 == "SET" { print $4 }' "$BT/run.csv")
    [ -n "$get" ] && [ -n "$set" ] ||
        die "no GET/SET figures from redis-benchmark against $target:" \
            "$(cat "$BT/run.csv" "$BT/run.err")"
    if [ "$round" != 0 ]; then
        echo "$target $round $get $set $cpu" >>"$BT/results"
        say "round $round $target: GET $get/s SET $set/s proxy CPU ${cpu}us/req"
    fi
}

targets_odd="direct lb haproxy floor"
targets_even="direct floor haproxy lb"
say "N=$N per test, $CLIENTS clients, $ROUNDS rounds; warming up"
for t in direct lb haproxy floor; do
    case $t in
        floor) [ -n "$floor_pid" ] && run_once floor "$fport" "$floor_pid" 0 ;;
        direct) run_once direct "$rport" "" 0 ;;
        haproxy) run_once haproxy "$hport" "$haproxy_pid" 0 ;;
        lb) [ -n "$lb_pid" ] && run_once lb "$lport" "$lb_pid" 0 ;;
    esac
done
: >"$BT/results"
r=1
while [ $r -le "$ROUNDS" ]; do
    if [ $((r % 2)) = 1 ]; then order=$targets_odd; else order=$targets_even; fi
    for t in $order; do
        case $t in
            direct) run_once direct "$rport" "" $r ;;
            floor) [ -n "$floor_pid" ] && run_once floor "$fport" "$floor_pid" $r ;;
            haproxy) run_once haproxy "$hport" "$haproxy_pid" $r ;;
            lb) [ -n "$lb_pid" ] && run_once lb "$lport" "$lb_pid" $r ;;
        esac
    done
    r=$((r + 1))
done

# col TARGET FIELD: "median min max" of one column (3 GET, 4 SET, 5 CPU) for one target.
col() {
    awk -v t="$1" -v f="$2" '$1 == t && $f != "-" { print $f }' "$BT/results" | stats
}
row() { # TARGET LABEL
    record l4_get "$1" rps $(col "$1" 3)
    record l4_set "$1" rps $(col "$1" 4)
    record l4 "$1" cpu $(col "$1" 5)
    set -- "$1" "$2" $(col "$1" 3) $(col "$1" 4) $(col "$1" 5)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" \
        "$(fmt_int "$3")" "$(fmt_int "$4")" "$(fmt_int "$5")" \
        "$(fmt_int "$6")" "$(fmt_int "$7")" "$(fmt_int "$8")" \
        "$(fmt_dec "$9")" "$(fmt_dec "${10}")" "$(fmt_dec "${11}")"
}

echo "### L4: redis-benchmark through a TCP proxy"
echo
echo "One redis-server; \`redis-benchmark -c $CLIENTS -n $N -t $TESTS -q --csv\`; $ROUNDS rounds," \
    "targets alternating within each round; requests/s as redis-benchmark reports them." \
    "Proxy CPU is the proxy process's utime+stime during a run divided by the run's" \
    "$((2 * N)) requests (clock ticks of 1/${CLK_TCK}s)."
echo
printf '| target | GET req/s median | min | max | SET req/s median | min | max |'
echo ' proxy CPU µs/req median | min | max |'
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row direct "direct to redis"
row haproxy "HAProxy $(haproxy -v | head -n 1 | awk '{print $3}'), mode tcp, nbthread 1"
[ -n "$floor_pid" ] && row floor "floor: bench-floor proxy (io_uring, bytes passed through)"
if [ -n "$lb_pid" ]; then
    row lb "lb, workers: 1"
    set -- $(col lb 3) $(col lb 4) $(col lb 5)
    lg=$1 ls=$4 lc=$7
    set -- $(col haproxy 3) $(col haproxy 4) $(col haproxy 5)
    printf '| **lb / HAProxy** (medians) | %s | | | %s | | | %s | | |\n' \
        "$(ratio "$lg" "$1")" "$(ratio "$ls" "$4")" "$(ratio "$lc" "$7")"
    echo
    echo "Target (DESIGN.md): lb / HAProxy requests/s at least 1.20."
    if [ -n "$floor_pid" ]; then
        set -- $(col floor 3) $(col floor 4)
        fg=$1 fs=$4
        set -- $(col haproxy 3) $(col haproxy 4)
        echo "The floor proxy reaches $(ratio "$fg" "$1") (GET) and $(ratio "$fs" "$4") (SET) of" \
            "HAProxy's requests/s; lb reaches $(ratio "$lg" "$fg") and $(ratio "$ls" "$fs") of the floor's."
    fi
else
    echo "| lb, workers: 1 | not run: $lb_why | | | | | | | | |"
fi
echo
echo "Commands (ports were ephemeral):"
echo
echo '```sh'
echo "$REDIS_CMD"
echo "haproxy -db -f haproxy.cfg"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml"
echo "redis-benchmark -h 127.0.0.1 -p PORT -c $CLIENTS -n $N -t $TESTS -q --csv" \
    "   # PORT: $rport direct, $lport lb, $hport haproxy${fport:+, $fport floor}"
echo '```'
echo
echo "haproxy.cfg:"
echo
echo '```'
cat "$BT/haproxy.cfg"
echo '```'
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"

[ -n "$lb_pid" ] || exit 3
exit 0
