# systemd's notify protocol without systemd: lb runs with NOTIFY_SOCKET pointing at a unix
# datagram socket that tests/e2e/notify_peer.py reads, and WATCHDOG_USEC set. Checks:
#  - READY=1 (with STATUS=, generation 1) once the listening socket accepts a connection;
#  - WATCHDOG=1 pings keep coming;
#  - `lbctl reload`: RELOADING=1 with MONOTONIC_USEC=, then READY=1 and generation 2;
#  - SIGHUP with a broken file: RELOADING=1 then READY=1 again, still generation 2;
#  - SIGTERM: STOPPING=1, and lb exits 0;
#  - as the unit runs it (root only, with setpriv): user nobody, no capability but
#    CAP_NET_BIND_SERVICE, no new privileges: lb binds a port below 1024, says READY=1, serves;
#  - packaging/lb.service passes `systemd-analyze verify --man=no` when systemd-analyze exists.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"

A=$(free_port); L=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
wait_port "$A"
bg notify python3 "$ROOT/tests/e2e/notify_peer.py" "$T/notify.sock" "$T/notify.txt" "$L"
N="$T/notify.txt"
wait_for 10 "notify peer listening" grep -q LISTENING "$N" 2>/dev/null

cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
listeners:
  - { name: web, bind: 127.0.0.1:$L, routes: [ { cluster: app } ] }
clusters:
  app:
    servers: [ { name: a, address: 127.0.0.1:$A } ]
EOC
CTL="$LBCTL -s $T/lb.sock"

NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000 bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_for 20 "READY=1" grep -q '^READY=1' "$N"
# The line after READY=1 is the peer's own connection attempt to the listener.
[ "$(grep -A1 -m1 '^READY=1' "$N" | tail -n 1)" = "CONNECT ok" ] ||
    fail "READY=1 came before the listener accepted: $(cat "$N")"
grep -m1 '^READY=1' "$N" | grep -q 'STATUS=serving: generation 1, [0-9]* connections' ||
    fail "no STATUS= with generation 1 beside READY=1: $(grep -m1 READY "$N")"
curl -fsS -o /dev/null "http://127.0.0.1:$L/" || fail "lb does not serve"

# Pings at half of WATCHDOG_USEC: several arrive while we wait for them.
wait_for 20 "three WATCHDOG=1 pings" sh -c "[ \$(grep -c '^WATCHDOG=1\$' '$N') -ge 3 ]"

# A reload that swaps the generation.
$CTL reload >"$T/reload.out" 2>&1 || fail "lbctl reload failed: $(cat "$T/reload.out")"
wait_for 20 "READY=1 for generation 2" grep -q '^READY=1.*generation 2,' "$N"
rel=$(grep -n '^RELOADING=1' "$N" | head -n 1 | cut -d: -f1)
[ -n "$rel" ] || fail "no RELOADING=1 before the reload's READY=1: $(cat "$N")"
grep -q '^RELOADING=1 | MONOTONIC_USEC=[0-9][0-9]*' "$N" || fail "RELOADING=1 without MONOTONIC_USEC"
ready2=$(grep -n '^READY=1.*generation 2,' "$N" | head -n 1 | cut -d: -f1)
[ "$rel" -lt "$ready2" ] || fail "READY=1 came before RELOADING=1"

# A broken file and SIGHUP (the unit's ExecReload; lbctl reload checks the file before it
# asks): the reload fails, lb says it is ready again on the generation it kept.
printf 'global:\n  workers: [\n' >"$T/lb.yaml"
kill -HUP "$LBPID"
wait_for 20 "a second RELOADING=1" sh -c "[ \$(grep -c '^RELOADING=1' '$N') -ge 2 ]"
wait_for 20 "READY=1 after the failed reload" sh -c \
    "grep -n '^READY=1' '$N' | tail -n 1 | grep -q 'generation 2,' &&
     [ \$(grep -n '^READY=1' '$N' | tail -n 1 | cut -d: -f1) -gt \$(grep -n '^RELOADING=1' '$N' | tail -n 1 | cut -d: -f1) ]"
grep -q 'generation 3' "$N" && fail "a failed reload counted as a new generation"
curl -fsS -o /dev/null "http://127.0.0.1:$L/" || fail "lb stopped serving after a failed reload"

stop "$LBPID"
[ "$STOP_RC" = 0 ] || fail "lb exited $STOP_RC after SIGTERM"
grep -q '^STOPPING=1' "$N" || fail "no STOPPING=1: $(cat "$N")"

# As lb.service runs it: an unprivileged user whose only capability is CAP_NET_BIND_SERVICE
# (ambient), listening on a port below 1024.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
    P=$(LB_TEST_PORTS=900-1000 python3 "$ROOT/tests/e2e/ports.py" claim $$)
    mkdir "$T/run"
    chown nobody "$T/run"
    chmod 0755 "$T"
    chmod 0666 "$T/notify.sock"
    cat >"$T/run/lb.yaml" <<EOC
global: { workers: 1, admin: { socket: $T/run/lb.sock } }
listeners: [ { name: web, bind: 127.0.0.1:$P, routes: [ { cluster: app } ] } ]
clusters: { app: { servers: [ { name: a, address: 127.0.0.1:$A } ] } }
EOC
    chmod 0644 "$T/run/lb.yaml"
    before=$(grep -c '^READY=1' "$N")
    NOTIFY_SOCKET="$T/notify.sock" bg lbnobody setpriv --reuid=nobody --regid=nogroup --clear-groups \
        --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
        --bounding-set=-all,+net_bind_service --no-new-privs "$LB" -c "$T/run/lb.yaml"
    NPID=$LAST_PID
    wait_for 20 "READY=1 from lb run as nobody" sh -c "[ \$(grep -c '^READY=1' '$N') -gt $before ]"
    curl -fsS -o /dev/null "http://127.0.0.1:$P/" || fail "lb as nobody does not serve on port $P"
    caps=$(awk '/^CapEff/ { print $2 }' "/proc/$NPID/status")
    [ "$caps" = 0000000000000400 ] || fail "lb runs with capabilities $caps, not CAP_NET_BIND_SERVICE alone"
    [ "$(stat -c %U "/proc/$NPID")" = nobody ] || fail "lb does not run as nobody"
    stop "$NPID"
    [ "$STOP_RC" = 0 ] || fail "lb as nobody exited $STOP_RC"
else
    echo "not root or no setpriv: the unprivileged run is not tested"
fi

# The unit file, with ExecStart pointing at this build (verify wants the binaries to exist).
if command -v systemd-analyze >/dev/null 2>&1; then
    sed -e "s#/usr/sbin/lb#$LB#g" -e "s#/usr/bin/lbctl#$LBCTL#g" \
        "$ROOT/packaging/lb.service" >"$T/lb.service"
    systemd-analyze verify --man=no "$T/lb.service" >"$T/verify.log" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$T/verify.log")"
    [ -s "$T/verify.log" ] && fail "systemd-analyze verify warns: $(cat "$T/verify.log")"
else
    echo "systemd-analyze not installed: unit not verified"
fi
echo "ok: READY, WATCHDOG, RELOADING/READY, STOPPING, unprivileged run and the unit"
