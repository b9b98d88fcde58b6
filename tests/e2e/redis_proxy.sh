# `protocol: redis` end to end, with the real build/lb in front of three real redis-server
# shards that require a password (the cluster's `password:`):
#  - every key lands on exactly one shard, all three get keys, {hash tags} keep keys together;
#  - MSET, MGET, DEL, EXISTS across shards, merged in the client's order;
#  - redis-benchmark GET/SET through lb, pipelined (-P 16) and not, with zero errors, and
#    its keys found on the shards;
#  - commands a sharding proxy cannot serve get an -ERR naming them, the connection stays
#    usable; inline commands work;
#  - malformed RESP and an oversized bulk length get a protocol error and a close, and other
#    clients never notice;
#  - a shard killed: its keys get an error naming it, keys of the other shards work.
. "$(dirname "$0")/lib.sh"
need python3 redis-server redis-cli redis-benchmark
need_uring
PASS=s3cret-pw
S1=$(free_port); S2=$(free_port); S3=$(free_port); L=$(free_port); L2=$(free_port); MP=$(free_port)
for p in $S1 $S2 $S3; do
    bg "shard$p" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" \
        --requirepass "$PASS"
    [ "$p" = "$S2" ] && S2_PID=$LAST_PID
done
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock }, metrics: { listen: 127.0.0.1:$MP } }
listeners:
  - { name: cache, bind: 127.0.0.1:$L, protocol: redis, cluster: shards }
  - name: small
    bind: 127.0.0.1:$L2
    protocol: redis
    cluster: shards
    limits: { max_body_bytes: 1k }
clusters:
  shards:
    balance: maglev
    password: $PASS
    servers:
      - { name: s1, address: 127.0.0.1:$S1 }
      - { name: s2, address: 127.0.0.1:$S2 }
      - { name: s3, address: 127.0.0.1:$S3 }
EOC
"$LB" -t -c "$T/lb.yaml" >"$T/check.out" 2>&1 || fail "lb -t: $(cat "$T/check.out")"
bg lb "$LB" -c "$T/lb.yaml"
LB_PID=$LAST_PID
for p in $S1 $S2 $S3 $L $L2; do wait_port "$p"; done

cli() { redis-cli -p "$L" "$@"; }
on() { p=$1; shift; redis-cli -p "$p" -a "$PASS" --no-auth-warning "$@"; }

# ---- keys land on exactly one shard ----
[ "$(cli set hello world)" = OK ] || fail "set through lb"
[ "$(cli get hello)" = world ] || fail "get through lb"
for i in $(seq 1 300); do echo "SET key:$i v$i"; done | cli >/dev/null
c1=$(on "$S1" dbsize); c2=$(on "$S2" dbsize); c3=$(on "$S3" dbsize)
[ $((c1 + c2 + c3)) = 301 ] || fail "301 keys expected on the shards, got $c1+$c2+$c3"
[ "$c1" -gt 30 ] && [ "$c2" -gt 30 ] && [ "$c3" -gt 30 ] || fail "uneven shards: $c1 $c2 $c3"
for i in 1 17 150 299; do
    n=0
    for p in $S1 $S2 $S3; do [ "$(on "$p" exists "key:$i")" = 1 ] && n=$((n + 1)); done
    [ $n = 1 ] || fail "key:$i is on $n shards"
    [ "$(cli get "key:$i")" = "v$i" ] || fail "key:$i read back"
done
for i in $(seq 1 20); do cli set "{user42}.f$i" x >/dev/null; done
for p in $S1 $S2 $S3; do
    n=$(on "$p" eval "return #redis.call('keys', '{user42}*')" 0)
    [ "$n" = 0 ] || [ "$n" = 20 ] || fail "a hash tag split over shards ($n on one)"
done
echo "ok: keys on exactly one shard (301: $c1/$c2/$c3), hash tags keep keys together"

# ---- multi-key commands across shards ----
[ "$(cli mset a1 1 a2 2 a3 3 a4 4 a5 5 a6 6)" = OK ] || fail "mset"
got=$(cli mget a6 nosuch a1 a3 | tr '\n' ' ')
[ "$got" = "6  1 3 " ] || fail "mget order: '$got'"
[ "$(cli exists a1 a2 nosuch a3)" = 3 ] || fail "exists sum"
[ "$(cli del a1 a2 a3 nosuch)" = 3 ] || fail "del sum"
[ "$(cli exists a1 a2 a3 a4)" = 1 ] || fail "after del"
[ "$(cli mset odd)" != OK ] || fail "mset with a key and no value"
echo "ok: MSET, MGET, DEL, EXISTS across shards"

# ---- commands lb answers, refuses, or cannot know ----
[ "$(cli ping)" = PONG ] || fail "ping"
[ "$(cli echo 'two words')" = "two words" ] || fail "echo"
[ "$(cli select 0)" = OK ] || fail "select 0"
cli keys '*' 2>&1 | grep -q "'KEYS' is not supported through this proxy" || fail "keys: $(cli keys '*')"
cli multi 2>&1 | grep -q "'MULTI' is not supported" || fail "multi"
cli blpop q 1 2>&1 | grep -q "'BLPOP' is not supported" || fail "blpop"
cli frobnicate 2>&1 | grep -q "unknown command 'frobnicate'" || fail "unknown command"
cli rename a4 zz_other 2>&1 | grep -q -e "on different shards" -e '^OK$' || fail "rename"
cli get 2>&1 | grep -q "wrong number of arguments for 'GET'" || fail "arity"
python3 - "$L" <<'EOF_PY' || fail "one connection, errors and answers in order"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"PING\r\nKEYS *\r\nSET inline ok\r\nGET inline\r\n*1\r\n$4\r\nPING\r\n")
want = b"+PONG\r\n-ERR lb: 'KEYS' is not supported"
data = b""
while data.count(b"\r\n") < 6:
    chunk = s.recv(4096)
    assert chunk, data
    data += chunk
lines = data.split(b"\r\n")
assert lines[0] == b"+PONG", lines
assert lines[1].startswith(b"-ERR lb: 'KEYS' is not supported"), lines
assert lines[2] == b"+OK" and lines[3] == b"$2" and lines[4] == b"ok" and lines[5] == b"+PONG", lines
EOF_PY
echo "ok: local answers, refused and unknown commands with clear errors, inline commands"

# ---- bad input ----
python3 - "$L" "$L2" <<'EOF_PY' || fail "bad input"
import socket, sys
port, small = int(sys.argv[1]), int(sys.argv[2])
def ask(p, data):
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(data)
    out = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return out
        out += chunk
bystander = socket.create_connection(("127.0.0.1", port), timeout=10)
bystander.sendall(b"SET bystander 1\r\n")
assert bystander.recv(100) == b"+OK\r\n"
for bad in (b"*2\r\n$3\r\nGET\r\n$99999999999999\r\n", b"*1\r\n:5\r\n",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nvXX\r\n", b"*x\r\n", b"*1\r\n$-1\r\n"):
    out = ask(port, b"PING\r\n" + bad)
    assert out.startswith(b"+PONG\r\n-ERR Protocol error"), (bad, out)
out = ask(small, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n" + b"x" * 2000 + b"\r\n")
assert out.startswith(b"-ERR Protocol error: request too big"), out
bystander.sendall(b"GET bystander\r\n")
assert bystander.recv(100) == b"$1\r\n1\r\n"
EOF_PY
kill -0 "$LB_PID" || fail "lb died"
echo "ok: malformed RESP and oversized requests refused and closed; others unaffected"

# ---- redis-benchmark, pipelined and not ----
for P in 1 16; do
    redis-benchmark -p "$L" -t get,set -n 20000 -c 20 -P "$P" -r 10000 --csv >"$T/bench$P.csv" \
        2>"$T/bench$P.err" || fail "redis-benchmark -P $P: $(tail -3 "$T/bench$P.err")"
    grep -q '"SET"' "$T/bench$P.csv" && grep -q '"GET"' "$T/bench$P.csv" ||
        fail "redis-benchmark -P $P: $(cat "$T/bench$P.csv" "$T/bench$P.err")"
    grep -qi error "$T/bench$P.err" && fail "redis-benchmark -P $P errors: $(head -3 "$T/bench$P.err")"
done
k=$(cli get key:__rand_int__ >/dev/null; for p in $S1 $S2 $S3; do on "$p" dbsize; done |
    awk '{ s += $1 } END { print s }')
[ "$k" -gt 5000 ] || fail "redis-benchmark's keys did not reach the shards ($k keys)"
echo "ok: redis-benchmark GET/SET through lb, -P 1 and -P 16, no errors ($k keys on the shards)"

# ---- a shard dies: only its keys fail ----
kill -9 "$S2_PID"
ok=0 bad=0
for i in $(seq 1 300); do
    out=$(cli get "key:$i" 2>&1)
    case $out in
        "v$i") ok=$((ok + 1)) ;;
        *"shard s2"*) bad=$((bad + 1)) ;;
        *) fail "key:$i: unexpected '$out'" ;;
    esac
done
[ $bad -gt 30 ] && [ $ok -gt 100 ] || fail "after s2 died: $ok answered, $bad failed"
[ "$(cli ping)" = PONG ] || fail "lb after a shard died"
echo "ok: with s2 dead its $bad keys fail naming it, the other $ok answer"

# ---- per-shard metrics ----
curl -s "http://127.0.0.1:$MP/metrics" >"$T/metrics.out" || fail "metrics"
metric() { sed -n "s/^$1 \([0-9.e+]*\)\$/\1/p" "$T/metrics.out"; }
for sv in s1 s2 s3; do
    n=$(metric "lb_redis_commands_total{cluster=\"shards\",server=\"$sv\"}")
    [ "${n:-0}" -gt 5000 ] || fail "commands on $sv: '$n': $(grep lb_redis_commands "$T/metrics.out")"
    c=$(metric "lb_redis_command_duration_seconds_count{cluster=\"shards\",server=\"$sv\"}")
    [ "${c:-0}" -gt 5000 ] || fail "latency count on $sv: '$c'"
done
e=$(metric 'lb_redis_errors_total{cluster="shards",server="s2"}')
[ "${e:-0}" -ge "$bad" ] || fail "errors on s2: '$e', $bad seen by the client: $(grep -e lb_redis_errors -e lb_redis_commands "$T/metrics.out")"
e1=$(metric 'lb_redis_errors_total{cluster="shards",server="s1"}')
[ "${e1:-1}" -lt 10 ] || fail "errors on s1: '$e1'"
echo "ok: per-shard commands, errors ($e on s2) and round-trip histograms in /metrics"

stop "$LB_PID"
[ "$STOP_RC" = 0 ] || fail "lb exited $STOP_RC on SIGTERM"
