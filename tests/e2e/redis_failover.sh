# Shard failover with `check: redis`: lb sends each shard's traffic to the member whose ROLE
# says master. Shard s1 is a master with a replica (redis-server --replicaof), s2 a master
# alone; a redis listener shards over both, and a tcp listener forwards to s1's group.
#  - before: writes go to s1's master, and its replica follows;
#  - a client keeps reading s2's key and writing s1's key through lb the whole time;
#  - s1's master is killed and its replica promoted by hand (REPLICAOF NO ONE): lb logs
#    "redis master moved" to the replica, writes to s1's keys work again (the time from the
#    promotion to the first good write is printed), and s2's key never saw an error;
#  - the tcp listener reaches the new master too.
. "$(dirname "$0")/lib.sh"
need python3 redis-server redis-cli
need_uring
M1=$(free_port); R1=$(free_port); M2=$(free_port); L=$(free_port); LT=$(free_port)
bg m1 redis-server --port "$M1" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
M1_PID=$LAST_PID
bg r1 redis-server --port "$R1" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" \
    --replicaof 127.0.0.1 "$M1"
bg m2 redis-server --port "$M2" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock } }
listeners:
  - { name: cache, bind: 127.0.0.1:$L, protocol: redis, cluster: shards }
  - { name: raw, bind: 127.0.0.1:$LT, protocol: tcp, cluster: group }
clusters:
  shards:
    balance: maglev
    health: { check: redis, interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }
    servers:
      - { name: s1, address: 127.0.0.1:$M1, replicas: [ 127.0.0.1:$R1 ] }
      - { name: s2, address: 127.0.0.1:$M2 }
  group:
    health: { check: redis, interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }
    servers:
      - { name: g1, address: 127.0.0.1:$M1, replicas: [ 127.0.0.1:$R1 ] }
EOC
"$LB" -t -c "$T/lb.yaml" >"$T/check.out" 2>&1 || fail "lb -t: $(cat "$T/check.out")"
bg lb "$LB" -c "$T/lb.yaml"
for p in $M1 $R1 $M2 $L $LT; do wait_port "$p"; done

cli() { redis-cli -p "$L" "$@"; }
# A key on each shard.
K1="" K2=""
for i in $(seq 1 50); do
    [ "$(cli set "k$i" "v$i")" = OK ] || fail "set k$i through lb"
    if [ -z "$K1" ] && [ "$(redis-cli -p "$M1" exists "k$i")" = 1 ]; then K1=k$i; fi
    if [ -z "$K2" ] && [ "$(redis-cli -p "$M2" exists "k$i")" = 1 ]; then K2=k$i; fi
done
[ -n "$K1" ] && [ -n "$K2" ] || fail "no key landed on one of the shards ($K1/$K2)"
wait_for 10 "the replica has s1's keys" sh -c \
    "[ \"\$(redis-cli -p $R1 exists $K1)\" = 1 ]"
[ "$(redis-cli -p "$LT" get "$K1")" = "v${K1#k}" ] || fail "the tcp listener does not reach s1's master"
"$LBCTL" -s "$T/lb.sock" explain redis "$K1" >"$T/explain1.out" || fail "lbctl explain redis"
grep -q "^cache (127.0.0.1:$L): key $K1, cluster shards (maglev): shard s1 at 127.0.0.1:$M1, up" \
    "$T/explain1.out" || fail "explain before: $(cat "$T/explain1.out")"
"$LBCTL" -s "$T/lb.sock" explain redis "{$K2}.other" | grep -q "hash tag $K2.*shard s2 at" ||
    fail "explain with a hash tag: $("$LBCTL" -s "$T/lb.sock" explain redis "{$K2}.other")"
echo "ok: keys on both shards ($K1 on s1, $K2 on s2), the replica follows, explain names the shard"

# The client that runs through the failover.
python3 - "$L" "$K1" "$K2" "$T" >"$T/load.out" 2>&1 <<'EOF_PY' &
import os, socket, sys, time
port, k1, k2, t = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s, s.makefile("rb")
s, f = conn()
def ask(cmd):
    s.sendall(cmd)
    return f.readline()
s2_bad = s1_bad = s1_ok_after = n = 0
first_ok_after = None
end = time.time() + 60
while time.time() < end and not os.path.exists(t + "/stop"):
    n += 1
    r = ask(b"GET %s\r\n" % k2.encode())
    if r.startswith(b"$"):
        f.readline()
    else:
        s2_bad += 1
        print("s2 error:", r, flush=True)
    r = ask(b"SET %s x%d\r\n" % (k1.encode(), n))
    if r == b"+OK\r\n":
        if os.path.exists(t + "/promoted"):
            s1_ok_after += 1
            if first_ok_after is None:
                first_ok_after = time.time()
    else:
        s1_bad += 1
    time.sleep(0.002)
promoted = os.path.getmtime(t + "/promoted") if os.path.exists(t + "/promoted") else None
ms = -1 if first_ok_after is None or promoted is None else int((first_ok_after - promoted) * 1000)
print("rounds", n, "s2_errors", s2_bad, "s1_errors", s1_bad, "s1_ok_after", s1_ok_after,
      "ms_to_first_write", ms, flush=True)
EOF_PY
LOAD=$!
PIDS="$PIDS $LOAD"
sleep 1
kill -9 "$M1_PID"
wait_for 10 "lb sees s1's master down" grep -q 'msg="server down" cluster=shards server=s1 ' "$T/lb.log"
redis-cli -p "$R1" replicaof no one >/dev/null || fail "promote the replica"
touch "$T/promoted"
wait_for 10 "lb follows the promoted replica" \
    grep -q "msg=\"redis master moved\" cluster=shards server=s1 address=127.0.0.1:$R1 " "$T/lb.log"
sleep 1
touch "$T/stop"
wait "$LOAD" || fail "the load client: $(cat "$T/load.out")"
cat "$T/load.out"
set -- $(tail -n 1 "$T/load.out")
[ "$2" -gt 100 ] || fail "the load client made only $2 rounds"
[ "$4" = 0 ] || fail "keys of s2 saw $4 errors during s1's failover"
[ "$8" -gt 0 ] || fail "no write to s1 worked after the promotion"
[ "$(redis-cli -p "$R1" get "$K1" | cut -c1)" = x ] || fail "s1's key was not written on the new master"
[ "$(redis-cli -p "$LT" set via-tcp 1)" = OK ] || fail "the tcp listener after the failover"
[ "$(redis-cli -p "$R1" get via-tcp)" = 1 ] || fail "the tcp listener writes on the new master"
"$LBCTL" -s "$T/lb.sock" explain redis "$K1" | grep -q "shard s1 at 127.0.0.1:$R1, up" ||
    fail "explain after: $("$LBCTL" -s "$T/lb.sock" explain redis "$K1")"
"$LBCTL" -s "$T/lb.sock" status | grep -q "^shards  *s1  *127.0.0.1:$M1 (master: 127.0.0.1:$R1)" ||
    fail "lbctl status: $("$LBCTL" -s "$T/lb.sock" status)"
echo "ok: s1 followed its promoted replica ${10} ms after the promotion; s2 saw no error; tcp follows"
