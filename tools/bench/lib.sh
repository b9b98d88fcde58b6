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

# Raise the soft open-file limit to the hard one: wrk -c1000 and 10,000 idle connections need
# more than the usual 1024. The hard limit is the machine's (raising it needs
# CAP_SYS_RESOURCE); scripts that need more than it allows say so in their report.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

# record WORKLOAD TARGET METRIC MEDIAN MIN MAX: one figure for the charts run.sh draws
# (tools/bench/charts.sh), appended to $BENCH_DATA/results when run.sh set BENCH_DATA. A
# script run alone records nothing.
record() {
    [ -n "${BENCH_DATA:-}" ] || return 0
    [ "$4" != - ] || return 0
    echo "$1 $2 $3 $4 $5 $6" >>"$BENCH_DATA/results"
}

# nginx_conf DIR: the parts every nginx instance shares (NGINX_WORKERS workers, default one;
# everything under DIR, keep-alive for 100,000 requests, no access log); the caller closes the
# http block.
nginx_conf() {
    cat <<EOF2
user root;
worker_processes ${NGINX_WORKERS:-1};
worker_rlimit_nofile $NOFILE;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections $((NOFILE - 64)); }
http {
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    default_type text/plain;
EOF2
}

# show_file LANG FILE: FILE as a fenced block of the report, temp paths shortened to /tmp/...
show_file() {
    echo '```'"$1"
    sed "s|$BT/|/tmp/.../|" "$2"
    echo '```'
}

# start_nginx NAME: nginx -c $BT/NAME.conf, prefix and logs in $BT/NAME; sets LAST_PID
# (the master).
start_nginx() {
    mkdir -p "$BT/$1"
    nginx -t -q -c "$BT/$1.conf" -p "$BT/$1" -e "$BT/$1/error.log" >"$BT/$1-check.log" 2>&1 ||
        die "nginx rejects $1.conf: $(cat "$BT/$1-check.log")"
    start "$1" nginx -c "$BT/$1.conf" -p "$BT/$1" -e "$BT/$1/error.log"
}

# track_nginx PORT WHAT LOGNAME: after a start of an nginx master (LAST_PID), waits for PORT and its
# NGINX_WORKERS workers (default one); sets nginx_pid, and nginx_wpid to the workers' PIDs
# (space-separated). The workers are not our children, but we started them: the cleanup trap
# stops them too, should the master be gone first.
track_nginx() {
    nginx_pid=$LAST_PID
    wait_port "$1" "$nginx_pid" 10 || die "$2 did not start: $(tail -n 5 "$BT/$3.log")"
    nginx_wpid=$(nginx_workers "$nginx_pid" "${NGINX_WORKERS:-1}") || die "$2 has no worker"
    BENCH_PIDS="$BENCH_PIDS $nginx_wpid"
}

# nginx_workers MASTER [N]: prints the PIDs of its N workers (default one), once it has
# forked them all.
nginx_workers() {
    set -- "$1" "${2:-1}"
    i=0
    while [ $i -lt 50 ]; do
        w=$(pgrep -P "$1" | head -n "$2" | tr '\n' ' ' | sed 's/ $//') || true
        if [ -n "$w" ] && [ "$(echo "$w" | wc -w)" -ge "$2" ]; then
            echo "$w"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# ticks_of PID...: the CPU ticks so far of all the PIDs together.
ticks_of() {
    t=0
    for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done
    echo "$t"
}

# start_lb PORT [NAME]: build/lb -c $BT/NAME.yaml (NAME: lb), waiting for PORT. Sets lb_pid,
# or leaves it empty and sets lb_why to the reason lb cannot run (not built, exits, never
# listens); the caller skips lb's columns and exits 3.
start_lb() {
    lb_pid="" lb_why=""
    if [ ! -x "$LB" ]; then
        lb_why="${LB#"$BENCH_ROOT"/} is not built"
        return 0
    fi
    start "${2:-lb}" "$LB" -c "$BT/${2:-lb}.yaml"
    if wait_port "$1" "$LAST_PID" 5; then
        lb_pid=$LAST_PID
    else
        lb_why=$(head -n 3 "$BT/${2:-lb}.log" | tr '\n' ' ' | sed "s|$BT/|/tmp/.../|g; s/ *$//")
        [ -n "$lb_why" ] || lb_why="it did not listen on 127.0.0.1:$1 within 5s"
        stop "$LAST_PID"
    fi
}

# A wrk script whose done() hook prints the 99.9th percentile, which `wrk --latency` leaves
# out: "p99.9 MICROSECONDS" after wrk's own report.
WRK_LUA=$BT/p999.lua
cat >"$WRK_LUA" <<'EOF2'
done = function(summary, latency, requests)
    io.write(string.format("p99.9 %d\n", latency:percentile(99.9)))
end
EOF2

# wrk_summary FILE: "REQUESTS REQ_PER_S P50_US P99_US P999_US ERRORS" from the output of
# `wrk --latency -s $WRK_LUA`. Latencies come as 635.00us, 1.23ms or 2.00s; errors are
# socket errors of every kind plus non-2xx/3xx responses.
wrk_summary() {
    awk 'function us(v) {
             if (v ~ /us$/) return v + 0
             if (v ~ /ms$/) return v * 1000
             if (v ~ /s$/) return v * 1000000
             return -1
         }
         $1 == "50%" { p50 = us($2) }
         $1 == "99%" { p99 = us($2) }
         $1 == "p99.9" { p999 = $2 }
         / requests in / { n = $1 }
         $1 == "Requests/sec:" { rps = $2 }
         /Socket errors:/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
         /Non-2xx or 3xx responses:/ { e += $NF }
         END {
             if (n == "" || rps == "" || p50 == "" || p99 == "" || p999 == "" ||
                 p50 < 0 || p99 < 0) exit 1
             printf "%d %.2f %.0f %.0f %.0f %d\n", n, rps, p50, p99, p999, e
         }' "$1"
}

# --- kernel work per request -----------------------------------------------------------
# syscalls_begin SECONDS PID...: counts the system calls of the PIDs (every thread) for
# SECONDS with perf's raw_syscalls:sys_enter tracepoint, in counting mode (no sampling, so it
# barely slows them); syscalls_end (called in this shell, not in $(...), since it waits for
# perf) sets SYSCALLS to the count, or "-" when perf cannot count here (no perf, no tracefs,
# not allowed).
syscalls_begin() {
    rm -f "$BT/perf.count"
    PERF_PID=""
    command -v perf >/dev/null 2>&1 || return 0
    sc_secs=$1; shift
    perf stat -x, -e raw_syscalls:sys_enter -p "$(echo "$@" | tr ' ' ',')" \
        -o "$BT/perf.count" -- sleep "$sc_secs" >/dev/null 2>&1 &
    PERF_PID=$!
}
syscalls_end() {
    if [ -n "${PERF_PID:-}" ]; then wait "$PERF_PID" 2>/dev/null || true; fi
    PERF_PID=""
    SYSCALLS=$(awk -F, '$3 ~ /raw_syscalls:sys_enter/ && $1 ~ /^[0-9]+$/ { print $1 }' \
        "$BT/perf.count" 2>/dev/null)
    SYSCALLS=${SYSCALLS:--}
}

# lb_ring METRICS_PORT: "SQES CQES ENTERS" summed over lb's workers, from its /metrics
# (lb_worker_ring_*_total, published every 100 ms), or "- - -".
lb_ring() {
    python3 - "$1" <<'EOF_PY' 2>/dev/null || echo "- - -"
import sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
s = {"sqes": 0, "cqes": 0, "enters": 0}
for line in text.splitlines():
    for k in s:
        if line.startswith("lb_worker_ring_%s_total{" % k):
            s[k] += int(float(line.split()[-1]))
print(s["sqes"], s["cqes"], s["enters"])
EOF_PY
}

# per_req COUNT REQUESTS: COUNT / REQUESTS to two decimals, or "-".
per_req() {
    awk -v a="$1" -v n="$2" 'BEGIN { if (a == "-" || a == "" || n + 0 == 0) print "-";
                                     else printf "%.2f", a / n }'
}

# catalog_json FILE: the static benchmark's answer, a product list as JSON of exactly 2,458
# bytes (2.4 KiB, newline included), written to FILE (static.sh and floor.sh serve it).
catalog_json() {
    python3 - "$1" <<'EOF2'
import json, sys
items = [{"sku": "SKU-%05d" % i, "name": "Product %d" % i, "price": 10 + i % 90,
          "currency": "EUR", "stock": (i * 7) % 50} for i in range(30)]
doc = {"version": 1, "pad": "", "items": items}
# A padding string brings the document to exactly 2,458 bytes, newline included.
doc["pad"] = "x" * (2458 - 1 - len(json.dumps(doc, separators=(",", ":"))))
s = json.dumps(doc, separators=(",", ":")) + "\n"
assert len(s) == 2458, len(s)
open(sys.argv[1], "w").write(s)
EOF2
}
