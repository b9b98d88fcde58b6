# Shared helpers for end-to-end tests; source it first thing.
# Every test gets its own temp dir ($T), ephemeral loopback ports, and a cleanup trap that
# kills exactly the PIDs it started (never by name), pass or fail.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LB="$ROOT/build/lb"
LBCTL="$ROOT/build/lbctl"
DEMO="$ROOT/build/demo-backend"
T=$(mktemp -d /tmp/lb-e2e.XXXXXX)
PIDS=""

cleanup() {
    rc=$?
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
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

# Prints a free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bg NAME CMD...: starts CMD in the background, output in $T/NAME.log, PID remembered.
bg() {
    name=$1; shift
    "$@" >"$T/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    LAST_PID=$!
}

# wait_port PORT [SECONDS]: waits until something listens on 127.0.0.1:PORT.
wait_port() {
    i=0; lim=$(( ${2:-10} * 10 ))
    while ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do
        i=$((i + 1)); [ $i -ge $lim ] && fail "nothing listening on port $1"
        sleep 0.1
    done
}

# stop PID: SIGTERM, then wait for it (bounded); prints its exit status.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    i=0
    while kill -0 "$1" 2>/dev/null; do
        i=$((i + 1)); [ $i -ge 150 ] && { kill -9 "$1" 2>/dev/null; echo 137; return; }
        sleep 0.1
    done
    wait "$1" 2>/dev/null && echo 0 || echo $?
}

# Skips when the kernel or sandbox refuses io_uring.
need_uring() {
    if [ -r /proc/sys/kernel/io_uring_disabled ] && [ "$(cat /proc/sys/kernel/io_uring_disabled)" = 2 ]; then
        skip "io_uring disabled (kernel.io_uring_disabled=2)"
    fi
}
