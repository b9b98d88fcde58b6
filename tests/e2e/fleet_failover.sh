# Fleet state follows a promoted replica: global.redis names a primary and a replica; two lb
# instances share drains through the primary; the primary is stopped and the replica promoted
# (REPLICAOF NO ONE); a drain made next reaches the other instance through the new master.
. "$(dirname "$0")/lib.sh"
need python3 redis-server redis-cli
need_uring
P=$(free_port); Q=$(free_port); LA=$(free_port); LB_=$(free_port); S1=$(free_port)
bg primary redis-server --port "$P" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
PRIMARY=$LAST_PID
mkdir -p "$T/q"
bg replica redis-server --port "$Q" --bind 127.0.0.1 --save '' --appendonly no --dir "$T/q" \
    --replicaof 127.0.0.1 "$P"
bg s1 "$DEMO" -l "127.0.0.1:$S1" -n s1
for p in $P $Q $S1; do wait_port "$p"; done
for n in a b; do
    if [ $n = a ]; then L=$LA; else L=$LB_; fi
    cat >"$T/$n.yaml" <<EOC
global:
  workers: 1
  admin: { socket: $T/$n.sock }
  redis: { nodes: [127.0.0.1:$P, 127.0.0.1:$Q], instance: lb-$n, timeout: 300ms }
listeners: [ { name: web, bind: 127.0.0.1:$L, routes: [ { cluster: app } ] } ]
clusters: { app: { servers: [ { name: s1, address: 127.0.0.1:$S1 }, { name: s2, address: 127.0.0.1:1 } ] } }
EOC
done
bg a "$LB" -c "$T/a.yaml"
APID=$LAST_PID
bg b "$LB" -c "$T/b.yaml"
BPID=$LAST_PID
wait_port "$LA"; wait_port "$LB_"
A="$LBCTL -s $T/a.sock"; B="$LBCTL -s $T/b.sock"
is_state() { [ "$($1 status | awk -v s="$2" '$1 == "app" && $2 == s { print $4 }')" = "$3" ]; }
wait_for 15 "the replica in sync" sh -c "redis-cli -p $Q info replication | grep -q 'master_link_status:up'"
$A drain app s2 >/dev/null
wait_for 10 "B sees s2 drained (through the primary)" is_state "$B" s2 draining
stop "$PRIMARY"
redis-cli -p "$Q" replicaof no one >/dev/null
wait_for 15 "A reconnected to the new master" sh -c "$A status | grep -q '^fleet: Redis reachable'"
wait_for 15 "B reconnected to the new master" sh -c "$B status | grep -q '^fleet: Redis reachable'"
$A undrain app s2 >"$T/u"
cat "$T/u"
wait_for 10 "B sees s2 undrained (through the promoted replica)" is_state "$B" s2 up
[ "$(redis-cli -p "$Q" hget lb:fleet:state 'drain app s2' | awk '{ print $3 }')" = 0 ] ||
    fail "the promoted replica does not hold the undrain"
stop "$APID"; [ "$STOP_RC" = 0 ] || fail "A exit $STOP_RC"
stop "$BPID"; [ "$STOP_RC" = 0 ] || fail "B exit $STOP_RC"
echo "PASS"
