# Shared helpers for end-to-end tests; source it first thing.
# Every test gets its own temp dir ($T), loopback ports claimed in the shared registry of
# tests/e2e/ports.py, and a cleanup trap that kills exactly the PIDs it started (never by
# name) and releases its ports, pass or fail.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LB="${LB:-$ROOT/build/lb}"
LBCTL="${LBCTL:-$ROOT/build/lbctl}"
DEMO="$ROOT/build/demo-backend"
T=$(mktemp -d /tmp/lb-e2e.XXXXXX)
PIDS=""

cleanup() {
    rc=$?
    [ -n "${KEEP_T:-}" ] && cp -r "$T" "$KEEP_T" 2>/dev/null
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    # After the kills: a port goes back to the registry once nothing of ours listens there.
    python3 "$ROOT/tests/e2e/ports.py" release $$ || true
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "--- $f (last 20 lines)"; tail -n 20 "$f"
        done
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
need() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "$c not installed"; done; }

# Prints a TCP port for 127.0.0.1 that is this test's alone until it exits: claimed for this
# shell ($$, also inside $(...)) in the registry of tests/e2e/ports.py, below the kernel's
# ephemeral range, with nothing bound there. Use it for ports kept closed on purpose too.
# Write one claim per assignment (A=$(free_port); B=$(free_port)): set -e then stops the test
# when a claim fails (the reason goes to stderr).
free_port() {
    python3 "$ROOT/tests/e2e/ports.py" claim $$
}

# bg NAME CMD...: starts CMD in the background, output in $T/NAME.log, PID remembered.
bg() {
    name=$1; shift
    "$@" >"$T/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    LAST_PID=$!
}

# wait_port PORT [SECONDS]: waits until something listens on 127.0.0.1:PORT.
# (run.sh runs tests with sh, which is dash on Debian: no /dev/tcp, so python3 probes.)
wait_port() {
    python3 - "$1" "${2:-10}" <<'EOF_PY' || fail "nothing listening on port $1"
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + limit
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > end:
            sys.exit(1)
        time.sleep(0.05)
EOF_PY
}

# wait_for SECONDS WHAT CMD...: runs CMD every 0.1 s until it succeeds; fails with WHAT when
# SECONDS pass first. For something that must happen (a log line, a count reaching its final
# value), instead of a fixed sleep that a busy machine outlasts: SECONDS is a generous bound
# on waiting, never a measurement.
wait_for() {
    local limit=$1 what=$2 end
    shift 2
    end=$(( $(date +%s) + limit ))
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || fail "$what (waited ${limit}s)"
        sleep 0.1
    done
}

# stop PID: SIGTERM, then wait for it (bounded, then SIGKILL); its exit status goes in
# $STOP_RC (137 when it had to be killed). Call it directly, not in $(...): only this shell,
# the parent, can reap the process and learn its status, and until it is reaped a finished
# process is a zombie that kill -0 still finds.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    i=0
    while kill -0 "$1" 2>/dev/null; do
        [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ] && break
        i=$((i + 1)); [ $i -ge 150 ] && { kill -9 "$1" 2>/dev/null; break; }
        sleep 0.1
    done
    if wait "$1" 2>/dev/null; then STOP_RC=0; else STOP_RC=$?; fi
    # Forget the PID so that cleanup never signals a reused one.
    PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}

# nginx_conf HTTP_BODY: prints an nginx.conf for a backend run as one foreground process
# with everything under $T/nginx (pid, logs, temp files); HTTP_BODY goes inside http { }.
# Start it with: bg nginx nginx -c "$T/nginx.conf" -p "$T/nginx"
nginx_conf() {
    mkdir -p "$T/nginx"
    cat <<EOC
user root;
worker_processes 1;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections 1024; }
http {
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
$1
}
EOC
}

# idle_clients PORT N: tools/bench/idle_client.py opens N keep-alive connections to PORT (at
# most 256 being set up at a time, one request each) and holds them; returns once all are
# held, failing the test unless all N are, without an error. IDLE is its PID, IDLE_ST its
# status file. idle_burst then has every held connection send a request at the same moment
# and waits for the answers: IDLE_ST holds "active OK SETUP_ERR IDLE_ERR BURST_ERR P50 P99 ...".
idle_clients() {
    IDLE_ST="$T/idle.status"
    bg idle python3 "$ROOT/tools/bench/idle_client.py" "$1" "$2" "$IDLE_ST"
    IDLE=$LAST_PID
    wait_for 120 "half of the idle connections set up" idle_phase half
    kill -USR1 "$IDLE"
    wait_for 120 "all idle connections set up" idle_phase idle
    read -r _ held errors _ <"$IDLE_ST"
    echo "idle: held=$held errors=$errors"
    [ "$held" = "$2" ] && [ "$errors" = 0 ] || fail "idle set-up: $(cat "$IDLE_ST")"
}
idle_phase() { [ -f "$IDLE_ST" ] && grep -q "^$1 " "$IDLE_ST"; }
idle_burst() {
    kill -USR1 "$IDLE"
    wait_for 120 "the idle connections' requests sent at once" idle_phase active
    cat "$IDLE_ST"
}

# Skips when the kernel or sandbox refuses io_uring.
need_uring() {
    if [ -r /proc/sys/kernel/io_uring_disabled ] && [ "$(cat /proc/sys/kernel/io_uring_disabled)" = 2 ]; then
        skip "io_uring disabled (kernel.io_uring_disabled=2)"
    fi
}

# metric_sum PORT NAME: the sum of every sample of metric NAME on lb's 127.0.0.1:PORT/metrics.
metric_sum() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v n="$2" '$1 ~ "^"n"({|$)" { s += $2 } END { print s + 0 }'
}

# holds_nothing PORT: true when lb (metrics on PORT) holds no connection slot, ring or TLS
# buffer and no socket on any worker: what every fault and abuse test ends by waiting for.
# Fails the test when the gauges are missing, since a missing gauge would read as 0.
holds_nothing() {
    for m in lb_connections_active lb_worker_buffers_in_use lb_worker_files_open; do
        curl -s "http://127.0.0.1:$1/metrics" | grep -q "^$m{worker=" || fail "metric $m missing"
    done
    [ "$(metric_sum "$1" lb_connections_active)" = 0 ] &&
        [ "$(metric_sum "$1" lb_worker_buffers_in_use)" = 0 ] &&
        [ "$(metric_sum "$1" lb_worker_files_open)" = 0 ]
}
