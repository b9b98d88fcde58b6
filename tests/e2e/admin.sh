# The admin socket and lbctl end to end, with the real build/lb on L4 listeners:
#  - lbctl status as a table and as --json;
#  - drain under continuous connection load: no connection started after lbctl returns
#    reaches the drained server, and no connection fails; undrain brings it back;
#  - drain --wait with held-open connections prints the count going down and returns when
#    they close; --timeout exits 1 while one is still open;
#  - weight shifts the measured distribution; unknown names exit 1 listing the valid ones;
#    usage errors exit 2; reload works and the socket answers again; an unknown snapshot set
#    is an error;
#  - junk on the socket (random bytes, a 10 KiB line, too many clients, a client that never
#    ends its line) does not hurt lb;
#  - a second lb on the same socket refuses to start; a drain survives a restart through the
#    state file, and a killed lb's stale socket is taken over.
. "$(dirname "$0")/lib.sh"
need python3
need_uring
PEER="python3 $ROOT/tests/e2e/peer.py"
APEER="python3 $ROOT/tests/e2e/admin_peer.py"
SOCK="$T/lb.sock"
CTL="$LBCTL -s $SOCK"

A=$(free_port); B=$(free_port); X=$(free_port); Y=$(free_port); H=$(free_port)
bg a $PEER name "$A" a; bg b $PEER name "$B" b
bg x $PEER name "$X" x; bg y $PEER name "$Y" y
bg h $PEER echo "$H"
LP=$(free_port); LW=$(free_port); LH=$(free_port)

cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  max_connections: 2000
  admin: { socket: $SOCK }
  log: { level: info }
listeners:
  - { name: pool, bind: 127.0.0.1:$LP, protocol: tcp, cluster: pool }
  - { name: weighted, bind: 127.0.0.1:$LW, protocol: tcp, cluster: weighted }
  - { name: hold, bind: 127.0.0.1:$LH, protocol: tcp, cluster: hold }
clusters:
  pool:
    balance: round_robin
    servers:
      - { name: a, address: 127.0.0.1:$A }
      - { name: b, address: 127.0.0.1:$B }
  weighted:
    balance: round_robin
    servers:
      - { name: x, address: 127.0.0.1:$X }
      - { name: y, address: 127.0.0.1:$Y }
  hold:
    balance: least_conn
    servers: [ { name: h1, address: 127.0.0.1:$H } ]
EOC
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
for p in $A $B $X $Y $H $LP $LW $LH; do wait_port "$p"; done
[ -S "$SOCK" ] || fail "no admin socket at $SOCK"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "admin socket mode is $(stat -c %a "$SOCK"), want 600"

echo "== status: table and --json"
$CTL status | tee "$T/status.txt"
head -1 "$T/status.txt" | grep -q '^CLUSTER  *SERVER  *ADDRESS  *STATE  *WEIGHT  *ACTIVE  *RATE/s' ||
    fail "status table header"
grep -Eq "^pool +a +127\.0\.0\.1:$A +up +1 +0 " "$T/status.txt" || fail "status row for pool/a"
$CTL status --json >"$T/status.json"
python3 - "$T/status.json" <<'EOP' || fail "status --json"
import json, sys
v = json.load(open(sys.argv[1]))
s = {(c["name"], x["name"]): x for c in v["clusters"] for x in c["servers"]}
assert v["ok"] is True and len(s) == 5, s.keys()
for k in ("address", "state", "config_weight", "weight", "active", "picks", "connect_failures",
          "bytes_in", "bytes_out", "rate"):
    assert k in s[("pool", "a")], k
assert s[("hold", "h1")]["state"] == "up"
EOP

echo "== drain under continuous load"
$APEER load "$LP" "$T/load.out" "$T/marker" "$T/stop" >"$T/load.log" 2>&1 &
LOAD=$!; PIDS="$PIDS $LOAD"
count() { n=$(grep -c "$1" "$T/load.out" 2>/dev/null) || true; echo "${n:-0}"; }
i=0; while [ "$(count '^pre a')" -lt 20 ]; do i=$((i + 1)); [ $i -lt 600 ] || fail "no load"; sleep 0.1; done
$CTL drain pool a || fail "drain failed"
touch "$T/marker"   # connections started from here on must not reach a
i=0; while [ "$(count '^post')" -lt 200 ]; do i=$((i + 1)); [ $i -lt 600 ] || fail "load stalled"; sleep 0.1; done
touch "$T/stop"; wait "$LOAD" || fail "load client failed"
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$LOAD" | tr '\n' ' ')
cat "$T/load.log"
echo "pre: a=$(count '^pre a') b=$(count '^pre b')  post: a=$(count '^post a') b=$(count '^post b') errors=$(count ERROR)"
[ "$(count ERROR)" = 0 ] || fail "connections failed during the drain"
[ "$(count '^post a')" = 0 ] || fail "a drained server got new connections after lbctl returned"
$CTL status | grep -Eq "^pool +a +.* draining " || fail "status does not show pool/a draining"

echo "== undrain brings traffic back"
$CTL undrain pool a || fail "undrain failed"
out=$($PEER names "$LP" 100); echo "$out"
python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if c["errors"]==0 and c.get("a",0)>=30 and c.get("b",0)>=30 else 1)' "$out" ||
    fail "traffic did not come back to a"

echo "== drain --wait with two held connections, --timeout"
$APEER hold "$LH" "$T/release1" >"$T/hold1.out" 2>&1 & H1=$!; PIDS="$PIDS $H1"
$APEER hold "$LH" "$T/release2" >"$T/hold2.out" 2>&1 & H2=$!; PIDS="$PIDS $H2"
i=0; until grep -q held "$T/hold1.out" && grep -q held "$T/hold2.out"; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "holders did not connect"; sleep 0.1; done
set +e
$CTL drain hold h1 --wait --timeout 500ms >"$T/tmo.out" 2>&1; rc=$?
set -e
cat "$T/tmo.out"
[ $rc = 1 ] || fail "drain --wait --timeout exited $rc with connections open, want 1"
grep -q "2 active" "$T/tmo.out" && grep -q "timeout" "$T/tmo.out" || fail "timeout output"
$CTL drain hold h1 --wait --timeout 60s >"$T/wait.out" 2>&1 &
W=$!; PIDS="$PIDS $W"
i=0; until grep -q "2 active" "$T/wait.out"; do i=$((i + 1)); [ $i -lt 300 ] || fail "no progress"; sleep 0.1; done
touch "$T/release1"
i=0; until grep -q "1 active" "$T/wait.out"; do i=$((i + 1)); [ $i -lt 300 ] || fail "count stuck at 2"; sleep 0.1; done
kill -0 "$W" 2>/dev/null || fail "drain --wait returned with a connection still open"
touch "$T/release2"
wait "$W"; rc=$?
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$W" | tr '\n' ' ')
cat "$T/wait.out"
[ $rc = 0 ] || fail "drain --wait exited $rc"
grep -q "drained" "$T/wait.out" || fail "drain --wait did not say drained"
$CTL undrain hold h1 >/dev/null

echo "== weight shifts the distribution"
out=$($PEER names "$LW" 200); echo "before: $out"
$CTL weight weighted x 3 || fail "weight failed"
$CTL status --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
x = [s for c in v["clusters"] if c["name"] == "weighted" for s in c["servers"] if s["name"] == "x"][0]
sys.exit(0 if x["weight"] == 3 and x["config_weight"] == 1 else 1)' || fail "status weight"
out=$($PEER names "$LW" 400); echo "after x=3: $out"
python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if c["errors"]==0 and 270<=c.get("x",0)<=330 else 1)' "$out" ||
    fail "weight 3:1 not honoured"
$CTL weight weighted x 1 >/dev/null

echo "== errors and usage"
expect_rc() { # WANT CMD...: runs CMD, checks its exit code, keeps stderr in $T/err
    want=$1; shift
    set +e; "$@" >"$T/out" 2>"$T/err"; rc=$?; set -e
    [ "$rc" = "$want" ] || { cat "$T/out" "$T/err"; fail "$* exited $rc, want $want"; }
}
expect_rc 1 $CTL drain pool zz
grep -q "valid servers: a, b" "$T/err" || fail "unknown server does not list the servers"
expect_rc 1 $CTL weight nope a 2
grep -q "valid clusters: pool, weighted, hold" "$T/err" || fail "unknown cluster does not list clusters"
expect_rc 1 $CTL drain pool zz --json
grep -q '"servers":\["a","b"\]' "$T/out" || fail "--json error answer"
expect_rc 0 $CTL reload
# The admin socket is restarted with the new generation: wait until it answers again.
i=0; until "$LBCTL" -s "$T/lb.sock" status >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "admin socket did not come back after reload"; sleep 0.1
done
grep -q 'msg="reloaded: the previous generation drains"' "$T/lb.log" || fail "reload not logged"
expect_rc 1 $CTL snapshots reload nosuch   # this config has no snapshot sets
expect_rc 1 "$LBCTL" -s "$T/nothing.sock" status
expect_rc 2 "$LBCTL"
expect_rc 2 $CTL bogus
expect_rc 2 $CTL drain pool
expect_rc 2 $CTL weight pool a 0
expect_rc 2 $CTL weight pool a 257
expect_rc 2 $CTL weight pool a x
expect_rc 2 $CTL status --wait
expect_rc 2 $CTL drain pool a --timeout 5s
expect_rc 2 $CTL drain pool a --wait --timeout soon
expect_rc 2 $CTL --frobnicate status
expect_rc 2 $CTL drain pool "a b"
expect_rc 0 "$LBCTL" --help

echo "== junk on the admin socket"
$APEER garbage "$SOCK" || fail "admin socket misbehaved under junk"
kill -0 "$LBPID" 2>/dev/null || fail "lb died"
$CTL status >/dev/null || fail "status after junk"
out=$($PEER names "$LP" 20); echo "$out"
case "$out" in *'"errors": 0'*) ;; *) fail "traffic broken after junk" ;; esac

echo "== a second lb on the same socket refuses to start"
set +e; "$LB" -c "$T/lb.yaml" >"$T/second.log" 2>&1; rc=$?; set -e
cat "$T/second.log"
[ $rc = 1 ] || fail "second lb exited $rc, want 1"
grep -q "another lb is running there" "$T/second.log" || fail "no clear message"
$CTL status >/dev/null || fail "the running lb lost its socket to the second one"

echo "== the state file restores a drain after a restart"
$CTL drain pool a >/dev/null
$CTL weight weighted y 4 >/dev/null
grep -qx "drain pool a" "$SOCK.state" || fail "state file lacks the drain"
grep -qx "weight weighted y 4" "$SOCK.state" || fail "state file lacks the weight"
kill -9 "$LBPID"; wait "$LBPID" 2>/dev/null || true
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$LBPID" | tr '\n' ' ')
[ -S "$SOCK" ] || fail "expected a stale socket after kill -9"
bg lb2 "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
for p in $LP $LW; do wait_port "$p"; done
grep -q "stale socket" "$T/lb2.log" || fail "stale socket not reported"
grep -q 'msg="admin: state restored"' "$T/lb2.log" || fail "state not restored"
$CTL status | tee "$T/status2.txt"
grep -Eq "^pool +a +.* draining " "$T/status2.txt" || fail "drain not restored"
grep -Eq "^weighted +y +.* 4 \(cfg 1\) " "$T/status2.txt" || fail "weight not restored"
out=$($PEER names "$LP" 30); echo "$out"
[ "$out" = '{"b": 30, "errors": 0}' ] || fail "restored drain not honoured"

echo "== SIGTERM removes the socket and keeps the state"
stop "$LBPID"
[ "$STOP_RC" = 0 ] || fail "lb exited $STOP_RC"
[ ! -e "$SOCK" ] || fail "socket left behind after a clean stop"
grep -qx "drain pool a" "$SOCK.state" || fail "state file lost"
echo "ok"
