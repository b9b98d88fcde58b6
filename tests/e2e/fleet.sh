# Fleet state in Redis: two lb instances (A, B) and one redis-server, with the real build/lb:
#  - a drain on A reaches B, lbctl says on how many live instances it was applied; a weight
#    on B reaches A; --local stays on one instance; lbctl fleet lists both, and its views;
#  - B stopped, a drain made on A, B started again: B has the drain before it takes traffic
#    (no request through B reaches the drained server);
#  - Redis killed while both serve: no request fails; a drain made on A meanwhile says the
#    fleet is unreachable and holds on A; Redis back: the drain reaches B; lb_redis_up 0 then 1;
#  - garbage written by hand into the state hash and the events channel is logged and
#    ignored, never applied.
. "$(dirname "$0")/lib.sh"
need python3 curl redis-server redis-cli
need_uring
R=$(free_port); LA=$(free_port); LB_=$(free_port); MA=$(free_port); MB=$(free_port)
S1=$(free_port); S2=$(free_port)
bg redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
REDISPID=$LAST_PID
bg s1 "$DEMO" -l "127.0.0.1:$S1" -n s1
bg s2 "$DEMO" -l "127.0.0.1:$S2" -n s2
for n in a b; do
    if [ $n = a ]; then P=$LA; M=$MA; else P=$LB_; M=$MB; fi
    cat >"$T/$n.yaml" <<EOC
global:
  workers: 1
  admin: { socket: $T/$n.sock }
  metrics: { listen: 127.0.0.1:$M }
  redis: { nodes: [127.0.0.1:$R], instance: lb-$n, prefix: "e2e:", timeout: 300ms }
listeners:
  - { name: web, bind: 127.0.0.1:$P, routes: [ { cluster: app } ] }
clusters:
  app:
    timeouts: { idle: 1s }
    servers: [ { name: s1, address: 127.0.0.1:$S1 }, { name: s2, address: 127.0.0.1:$S2 } ]
EOC
done
for p in $R $S1 $S2; do wait_port "$p"; done
bg a "$LB" -c "$T/a.yaml"
APID=$LAST_PID
bg b "$LB" -c "$T/b.yaml"
BPID=$LAST_PID
for p in $LA $LB_ $MA $MB; do wait_port "$p"; done
A="$LBCTL -s $T/a.sock"; B="$LBCTL -s $T/b.sock"
state() { $1 status | awk -v s="$2" '$1 == "app" && $2 == s { print $4 }'; }
weight() { $1 status | awk -v s="$2" '$1 == "app" && $2 == s { print $5 }'; }
is_state() { [ "$(state "$1" "$2")" = "$3" ]; }
live() { [ "$($1 --json fleet | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["fleet"]["members"]))')" = "$2" ]; }
wait_for 15 "both instances in the fleet (A)" live "$A" 2
wait_for 15 "both instances in the fleet (B)" live "$B" 2

echo "== drain on A reaches B"
$A drain app s1 >"$T/d1" || fail "drain on A: $(cat "$T/d1")"
cat "$T/d1"
grep -q '^fleet: applied on 2 of 2 live instances$' "$T/d1" || fail "drain: not acknowledged by both"
wait_for 10 "B sees s1 draining" is_state "$B" s1 draining
echo "== weight on B reaches A"
$B weight app s2 7 >"$T/w1" || fail "weight on B"
grep -q '^fleet: applied on 2 of 2 live instances$' "$T/w1" || fail "weight: $(cat "$T/w1")"
wait_for 10 "A sees s2 at weight 7" sh -c "[ \"\$($A status | awk '\$1 == \"app\" && \$2 == \"s2\" { print \$5 }')\" = 7 ]"
echo "== --local stays on one instance"
$A undrain app s1 --local >"$T/u1" || fail "undrain --local"
grep -q fleet "$T/u1" && fail "--local still went to the fleet: $(cat "$T/u1")"
is_state "$A" s1 up || fail "A: s1 not up after undrain --local"
sleep 2.5 # two state reads of B: a --local change must not reach it
is_state "$B" s1 draining || fail "B: s1 changed by A's --local undrain"
$A drain app s1 --local >/dev/null
$A fleet | tee "$T/fleet.txt"
grep -Eq '^lb-a +[0-9.]+s' "$T/fleet.txt" && grep -Eq '^lb-b +[0-9.]+s' "$T/fleet.txt" ||
    fail "lbctl fleet does not list both instances"

echo "== B restarted after a drain made without it"
stop "$BPID"
$A undrain app s1 >/dev/null
$A drain app s2 >"$T/d2"
cat "$T/d2"
grep -q '^fleet: applied on 1 of 1 live instances$' "$T/d2" ||
    grep -q '^fleet: applied on 1 of 2 live instances$' "$T/d2" || fail "drain with B down: $(cat "$T/d2")"
bg b2 "$LB" -c "$T/b.yaml"
BPID=$LAST_PID
wait_port "$LB_"
# The first requests through B: s2 is drained there from the start.
for i in $(seq 1 20); do curl -s "http://127.0.0.1:$LB_/" ; echo; done >"$T/b_first"
grep -q s2 "$T/b_first" && fail "B sent requests to s2, drained while it was down: $(sort "$T/b_first" | uniq -c)"
is_state "$B" s2 draining || fail "B: s2 not draining after its restart"
is_state "$B" s1 up || fail "B: s1 not undrained after its restart"

echo "== Redis killed while serving"
python3 - "$LA" "$LB_" >"$T/load.out" 2>&1 <<'EOF_PY' &
import http.client, sys, time
ok = bad = 0
end = time.monotonic() + 9
while time.monotonic() < end:
    for port in sys.argv[1:]:
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
        try:
            c.request("GET", "/")
            r = c.getresponse(); r.read()
            ok += r.status == 200; bad += r.status != 200
        except Exception as e:
            bad += 1; print("error", e)
        c.close()
print("load", ok, bad)
EOF_PY
LOADPID=$!
PIDS="$PIDS $LOADPID"
sleep 1
stop "$REDISPID"
wait_for 10 "A says Redis is down" sh -c "curl -s http://127.0.0.1:$MA/metrics | grep -qx 'lb_redis_up 0'"
$A undrain app s2 >"$T/d3"
cat "$T/d3"
grep -q '^fleet unreachable: applied on this instance only' "$T/d3" || fail "no unreachable notice: $(cat "$T/d3")"
$A status | grep -q "^fleet: Redis UNREACHABLE" || fail "lbctl status does not say Redis is unreachable"
is_state "$A" s2 up || fail "A: the undrain made while Redis was down did not apply"
is_state "$B" s2 draining || fail "B changed without Redis"
bg redis2 redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
REDISPID=$LAST_PID
wait_port "$R"
wait_for 15 "the undrain made meanwhile reaches B" is_state "$B" s2 up
wait_for 10 "A says Redis is up" sh -c "curl -s http://127.0.0.1:$MA/metrics | grep -qx 'lb_redis_up 1'"
wait "$LOADPID" || true
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$LOADPID" | tr '\n' ' ')
cat "$T/load.out"
read -r _ ok bad <"$T/load.out" || fail "no load result"
[ "$bad" = 0 ] && [ "$ok" -gt 0 ] || fail "requests failed while Redis was down: $(cat "$T/load.out")"

echo "== garbage in Redis is ignored"
redis-cli -p "$R" hset e2e:fleet:state "drain app s1" "not a value" >/dev/null
redis-cli -p "$R" hset e2e:fleet:state "drain app nosuch" "99999999999999 lb-x 1" >/dev/null
redis-cli -p "$R" hset e2e:fleet:state "frobnicate app s1" "99999999999999 lb-x 1" >/dev/null
redis-cli -p "$R" publish e2e:fleet:events "drain app s1 1 2 3 4 5" >/dev/null
redis-cli -p "$R" publish e2e:fleet:events "$(head -c 300 /dev/urandom | tr -d '\0\n\r')" >/dev/null
wait_for 10 "the malformed value logged by B" grep -q 'fleet: ignored a malformed or foreign value' "$T/b2.log"
sleep 2.5 # another state read
is_state "$A" s1 up && is_state "$B" s1 up || fail "garbage was applied"
kill -0 "$APID" && kill -0 "$BPID" || fail "an lb died"
stop "$APID"; [ "$STOP_RC" = 0 ] || fail "A exit $STOP_RC"
stop "$BPID"; [ "$STOP_RC" = 0 ] || fail "B exit $STOP_RC"
echo "PASS"
