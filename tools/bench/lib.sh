# Shared helpers for the side-by-side benchmarks in tools/bench/; source it first thing.
#
# Each bench script gets its own temp dir ($BT), ephemeral loopback ports, and a cleanup trap
# that stops exactly the PIDs it started (never by name), pass or fail. Numbers come from the
# kernel, not from the tools under test: CPU time is utime+stime of /proc/PID/stat (the whole
# thread group) in clock ticks, and every figure is reported as median, min and max of runs.
#
# A bench script prints its markdown to stdout and its progress to stderr, and exits 0 (all
# columns measured), 3 (lb could not run: its columns skipped, the rest measured) or 1.
set -eu
BENCH_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LB=${LB:-$BENCH_ROOT/build/lb}
BT=$(mktemp -d /tmp/lb-bench.XXXXXX)
BENCH_PIDS=""
CLK_TCK=$(getconf CLK_TCK)

bench_cleanup() {
    rc=$?
    for p in $BENCH_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $BENCH_PIDS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
        for f in "$BT"/*.log; do
            [ -f "$f" ] || continue
            echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2
        done
    fi
    rm -rf "$BT"
    exit $rc
}
trap bench_cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
need() {
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "$c not installed (tools/deps.sh)"
    done
}

# Prints a free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# free_ports N: prints N distinct free TCP ports on 127.0.0.1, one a line. All N sockets are
# bound at once, so the kernel cannot hand the same port back twice.
free_ports() {
    python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# start NAME CMD...: runs CMD in the background, output in $BT/NAME.log; sets LAST_PID.
start() {
    name=$1; shift
    "$@" >"$BT/$name.log" 2>&1 &
    LAST_PID=$!
    BENCH_PIDS="$BENCH_PIDS $LAST_PID"
}

# stop PID: SIGTERM, bounded wait, SIGKILL; reaps it and forgets it. Call it directly, not in
# $(...), which runs in a subshell that cannot reap our children.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    i=0
    while kill -0 "$1" 2>/dev/null; do
        [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ] && break
        i=$((i + 1)); [ $i -ge 100 ] && { kill -KILL "$1" 2>/dev/null; break; }
        sleep 0.1
    done
    wait "$1" 2>/dev/null || true
    BENCH_PIDS=$(echo "$BENCH_PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}

# wait_port PORT PID [SECONDS]: 0 once 127.0.0.1:PORT accepts a connection; 1 if PID exits
# first or time runs out.
wait_port() {
    i=0
    while [ $i -lt $(( ${3:-10} * 10 )) ]; do
        kill -0 "$2" 2>/dev/null || return 1
        [ "$(sed 's/.*) //' "/proc/$2/stat" 2>/dev/null | cut -d' ' -f1)" = Z ] && return 1
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' \
            "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# cpu_ticks PID: user + system CPU time of the whole process so far, in clock ticks. The
# command name (field 2) may hold spaces, so fields are counted after its closing ')'.
cpu_ticks() {
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# ticks_to_us_per TICKS COUNT: CPU microseconds per item.
ticks_to_us_per() {
    awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'
}

# stats: reads numbers, one a line, and prints "median min max" (median of an even count is
# the mean of the middle two).
stats() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- - -"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s %s %s\n", m, v[1], v[NR] }'
}

# ratio A B: A / B to two decimals, or "-" when either is missing.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-";
                                     else printf "%.2f", a / b }'
}

# fmt_int N: a rate with thousands separators, for tables people read.
fmt_int() {
    awk -v n="$1" 'BEGIN { if (n == "-") { print "-"; exit }
        s = sprintf("%.0f", n); o = ""
        while (length(s) > 3) {
            o = "," substr(s, length(s) - 2) o
            s = substr(s, 1, length(s) - 3)
        }
        print s o }'
}

# fmt_dec X: two decimals, or "-".
fmt_dec() {
    awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.2f", x }'
}
