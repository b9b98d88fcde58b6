#!/bin/sh
# The demo behind `make run`: three demo backends (app1..app3 on 127.0.0.1:9001..9003) and
# build/lb -c conf/lb.yaml in front of them (lb listens on 127.0.0.1:8080, metrics on :9100).
#
# It checks first that every port it needs is free, so a leftover process is named instead
# of half a demo starting. If lb exits before it listens (a build that cannot proxy yet, a bad
# config), the backends are stopped and the script exits non-zero with lb's own message.
# Ctrl-C (or SIGTERM) stops exactly the processes this script started, nothing else.
#
# Overrides, for trying another build or file: LB=path/to/lb LB_CONF=path/to/lb.yaml
set -u
cd "$(dirname "$0")/.."
LB=${LB:-build/lb}
LBCTL=${LBCTL:-build/lbctl}
CONF=${LB_CONF:-conf/lb.yaml}
DEMO=build/demo-backend

die() { echo "demo: $*" >&2; exit 1; }

[ -x "$DEMO" ] || die "$DEMO is not built (make)"
[ -x "$LB" ] || die "$LB is not built (make)"
[ -f "$CONF" ] || die "$CONF not found"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to check ports (tools/deps.sh)"

# Ports: the three backends plus every bind:/listen: address in the config on this host.
conf_ports=$(grep -oE '(bind|listen):[[:space:]]*(127\.0\.0\.1|localhost|0\.0\.0\.0):[0-9]+' \
    "$CONF" | sed 's/.*://' | sort -u | tr '\n' ' ')
busy=$(python3 - 9001 9002 9003 $conf_ports <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        print(p, end=" ")
    s.close()
EOF
)
if [ -n "$busy" ]; then
    echo "demo: port(s) already in use on 127.0.0.1: $busy" >&2
    command -v ss >/dev/null 2>&1 && for p in $busy; do ss -Hltnp "sport = :$p" >&2; done
    exit 1
fi

RUN=$(mktemp -d /tmp/lb-demo.XXXXXX)
PIDS=""
cleanup() {
    trap - EXIT INT TERM HUP
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$RUN"
}
trap 'echo; echo "demo: stopping"; cleanup; exit 130' INT TERM HUP
trap cleanup EXIT

# wait_listen PORT PID SECONDS: 0 once PORT accepts, 1 if PID exits first or time runs out.
wait_listen() {
    i=0
    while [ $i -lt $(($3 * 10)) ]; do
        kill -0 "$2" 2>/dev/null || return 1
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' \
            "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

for i in 1 2 3; do
    "$DEMO" -l "127.0.0.1:900$i" -n "app$i" -c "$RUN/app$i.count" >"$RUN/app$i.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    wait_listen "900$i" "$pid" 5 || die "app$i did not start: $(cat "$RUN/app$i.log")"
done

"$LB" -c "$CONF" >"$RUN/lb.log" 2>&1 &
lb_pid=$!
PIDS="$PIDS $lb_pid"
lb_port=$(grep -oE 'bind:[[:space:]]*127\.0\.0\.1:[0-9]+' "$CONF" | head -n 1 | sed 's/.*://')
if ! wait_listen "${lb_port:-8080}" "$lb_pid" 10; then
    if kill -0 "$lb_pid" 2>/dev/null; then
        echo "demo: lb did not listen on port ${lb_port:-8080} within 10s; its output:" >&2
        rc=1
    else
        wait "$lb_pid"
        rc=$?
        echo "demo: lb exited with status $rc before listening; its output:" >&2
        [ $rc -eq 0 ] && rc=1
    fi
    sed 's/^/    /' "$RUN/lb.log" >&2
    echo "demo: stopped the demo backends" >&2
    exit $rc
fi

cat <<EOF

  lb is running (pid $lb_pid) on $CONF, in front of app1..app3 on 127.0.0.1:9001..9003.
  Try, in another terminal:

    curl -s localhost:8080/                    # app1, app2, app3 in turn
    curl -s localhost:8080/healthz
    curl -s localhost:8080/headers             # what the backend received from lb
    curl -s localhost:9002/admin/health/down   # app2 fails its health check...
    curl -s localhost:9002/admin/health/up     # ...and comes back
    $LBCTL status                             # servers, state, rate, last health check
    $LBCTL drain app app1 --wait              # app1 takes no new requests ...
    $LBCTL undrain app app1                   # ... and is back
    $LBCTL explain GET http://localhost/      # where a request would go
    $LBCTL reload                             # re-read $CONF, no connection dropped
    curl -s http://127.0.0.1:9100/metrics     # Prometheus; the status page is http://127.0.0.1:9100/
    wrk -t1 -c16 -d5s http://127.0.0.1:8080/
    curl -s localhost:9001/stats               # a backend's own request count

  Ctrl-C stops lb and the backends. lb's output follows.

EOF
tail -n +1 -f "$RUN/lb.log" &
PIDS="$PIDS $!"
wait "$lb_pid"
rc=$?
echo "demo: lb exited with status $rc" >&2
exit $rc
