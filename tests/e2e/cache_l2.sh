# The shared (L2) cache (`caches:` + route `cache: { shared: NAME }`) end to end: two real
# build/lb instances (A and B, two workers each) in front of tests/e2e/cache_origin.py, which
# counts the requests it gets, sharing three real redis-server shards:
#  - an answer fetched through A is a hit through B (X-Cache: HIT-L2), the origin not asked;
#  - keys spread over every shard (each shard's DBSIZE > 0 after 30 keys);
#  - a burst of 50 concurrent misses for one new key, half through A and half through B,
#    reaches the origin at most once per instance (the figure is printed);
#  - a POST through A deletes the URI's L2 entry: B, which never held it, asks the origin;
#  - a garbage value planted under a key is a miss (answered by the origin), not a crash;
#  - `lbctl cache purge PREFIX*` through A deletes the matching L2 keys on every shard (and
#    says how many): B, which never held them, asks the origin again;
#  - a shard killed mid-run fails no request (all 200) and lb_cache_l2_total counts errors.
. "$(dirname "$0")/lib.sh"
need python3 curl redis-server redis-cli
need_uring
S1=$(free_port); S2=$(free_port); S3=$(free_port); O=$(free_port)
LA=$(free_port); LB_=$(free_port); MA=$(free_port); MB=$(free_port)
for p in $S1 $S2 $S3; do
    bg "shard$p" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
    [ "$p" = "$S2" ] && S2_PID=$LAST_PID
done
bg origin python3 "$ROOT/tests/e2e/cache_origin.py" "$O"
for i in a b; do
    [ $i = a ] && { L=$LA; M=$MA; } || { L=$LB_; M=$MB; }
    cat >"$T/lb_$i.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb_$i.sock }
  metrics: { listen: 127.0.0.1:$M }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    routes:
      - cluster: origin
        cache: { ttl: 0s, max_ttl: 1h, shared: pages, debug_header: on }
clusters:
  origin:
    servers: [ { name: o1, address: 127.0.0.1:$O } ]
caches:
  pages:
    servers: [ 127.0.0.1:$S1, 127.0.0.1:$S2, 127.0.0.1:$S3 ]
    max_object: 1m
    timeout: 1s
    lock: 3s
EOC
    "$LB" -t -c "$T/lb_$i.yaml" >"$T/check.out" 2>&1 || fail "lb -t: $(cat "$T/check.out")"
    bg "lb_$i" "$LB" -c "$T/lb_$i.yaml"
    [ $i = a ] && LB_A_PID=$LAST_PID || LB_B_PID=$LAST_PID
done
for p in $S1 $S2 $S3 $O $LA $LB_ $MA $MB; do wait_port "$p"; done
A="http://127.0.0.1:$LA"; B="http://127.0.0.1:$LB_"
H="Host: www.example"
count() { curl -s "http://127.0.0.1:$O/_count$1"; }
l2() { # PORT RESULT: lb_cache_l2_total for that result
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v r="result=\"$2\"" '$1 ~ /^lb_cache_l2_total/ && index($1, r) { s += $2 } END { print s + 0 }'
}
stores_at_least() { [ "$(l2 "$1" store)" -ge "$2" ]; }
shards_up() { # every lb:cache:pages shard up for instance PORT
    [ "$(curl -s "http://127.0.0.1:$1/metrics" | grep -c '^lb_server_up{cluster="lb:cache:pages".* 1$')" -eq 3 ]
}
wait_for 20 "A sees the shards up" shards_up "$MA"
wait_for 20 "B sees the shards up" shards_up "$MB"

# 1. A fetches; B gets it from L2.
curl -s -H "$H" "$A/maxage/one" >"$T/a1" || fail "GET through A"
grep -q "^/maxage/one 1$" "$T/a1" || fail "A's answer: $(cat "$T/a1")"
wait_for 10 "A stores the answer in L2" stores_at_least "$MA" 1
curl -s -D "$T/h1" -H "$H" "$B/maxage/one" >"$T/b1" || fail "GET through B"
grep -q "^/maxage/one 1$" "$T/b1" || fail "B's answer: $(cat "$T/b1")"
grep -qi "^X-Cache: HIT-L2" "$T/h1" || fail "B's answer is not an L2 hit: $(cat "$T/h1")"
grep -qi "^Age: " "$T/h1" || fail "no Age on an L2 hit"
[ "$(count /maxage/one)" = 1 ] || fail "the origin was asked $(count /maxage/one) times"
echo "A fetched, B hit L2; origin asked once"

# 2. Keys over every shard.
for i in $(seq 1 30); do curl -sf -o /dev/null -H "$H" "$A/maxage/k$i" || fail "GET k$i"; done
wait_for 10 "31 stores" stores_at_least "$MA" 31
for p in $S1 $S2 $S3; do
    n=$(redis-cli -p "$p" DBSIZE)
    echo "shard $p: $n keys"
    [ "$n" -gt 0 ] || fail "shard $p holds no key"
done

# 3. The stampede: 50 concurrent misses for one new key, over A and B.
CURLS=""
for i in $(seq 1 50); do
    [ $((i % 2)) = 0 ] && U=$A || U=$B
    curl -s -o "$T/st$i" -w '%{http_code}\n' --max-time 30 -H "$H" "$U/slow/burst" >"$T/st$i.code" &
    CURLS="$CURLS $!"
done
for p in $CURLS; do wait "$p" || true; done
for i in $(seq 1 50); do
    [ "$(cat "$T/st$i.code")" = 200 ] || fail "stampede request $i: $(cat "$T/st$i.code")"
    grep -q "^/slow/burst [12]$" "$T/st$i" || fail "stampede answer $i: $(cat "$T/st$i")"
done
ORIGIN=$(count /slow/burst)
echo "stampede: 50 concurrent misses over 2 instances (4 workers) reached the origin $ORIGIN time(s)"
[ "$ORIGIN" -ge 1 ] && [ "$ORIGIN" -le 2 ] || fail "the origin got $ORIGIN requests"
echo "locked_wait: A $(l2 "$MA" locked_wait), B $(l2 "$MB" locked_wait)"

# 4. A POST through A invalidates for B.
curl -sf -o /dev/null -H "$H" "$A/maxage/inv" || fail "GET inv"
S=$(l2 "$MA" store)
wait_for 10 "inv stored" stores_at_least "$MA" "$S"
curl -sf -o /dev/null -X POST -H "$H" -d x "$A/maxage/inv" || fail "POST inv"
inv_sent() { [ "$(l2 "$MA" invalidate)" -ge 1 ]; }
wait_for 10 "the invalidation is sent" inv_sent
gone() { ! redis-cli -p "$S1" --raw KEYS 'lb:c:pages:www.example/maxage/inv' | grep -q . &&
    ! redis-cli -p "$S2" --raw KEYS 'lb:c:pages:www.example/maxage/inv' | grep -q . &&
    ! redis-cli -p "$S3" --raw KEYS 'lb:c:pages:www.example/maxage/inv' | grep -q .; }
wait_for 10 "the key is deleted on its shard" gone
curl -s -H "$H" "$B/maxage/inv" >"$T/inv" || fail "GET inv through B"
grep -q "^/maxage/inv 2$" "$T/inv" || fail "B served an invalidated answer: $(cat "$T/inv")"
echo "POST through A invalidated the entry for B"

# 5. Garbage under a key: a miss, logged and counted, never a crash.
E0=$(l2 "$MB" error)
for p in $S1 $S2 $S3; do
    redis-cli -p "$p" SET 'lb:c:pages:www.example/maxage/junk' 'LBC1 not an entry at all' >/dev/null
done
curl -s -o "$T/junk" -w '%{http_code}' -H "$H" "$B/maxage/junk" >"$T/junk.code"
[ "$(cat "$T/junk.code")" = 200 ] || fail "garbage entry: status $(cat "$T/junk.code")"
grep -q "^/maxage/junk 1$" "$T/junk" || fail "garbage entry answered $(cat "$T/junk")"
[ "$(l2 "$MB" error)" -gt "$E0" ] || fail "the malformed entry was not counted as an error"
echo "a planted garbage value was a miss"

# 5b. lbctl cache purge through A: L1 of A, and L2 on every shard.
"$LBCTL" -s "$T/lb_a.sock" cache purge '/maxage/k1*' >"$T/purge.out" 2>&1 ||
    fail "lbctl cache purge: $(cat "$T/purge.out")"
cat "$T/purge.out"
grep -q "^l2: 11 keys$" "$T/purge.out" || fail "the purge of /maxage/k1* did not delete 11 L2 keys"
for p in $S1 $S2 $S3; do
    redis-cli -p "$p" --raw KEYS 'lb:c:pages:www.example/maxage/k1*' | grep -q . &&
        fail "shard $p still holds a purged key"
done
[ "$(count /maxage/k2)" = 1 ] || fail "k2 was fetched $(count /maxage/k2) times before the purge"
curl -s -H "$H" "$B/maxage/k15" >"$T/k15" || fail "GET k15 through B"
grep -q "^/maxage/k15 2$" "$T/k15" || fail "after the purge B answered $(cat "$T/k15") for k15"
curl -s -D "$T/hk2" -o /dev/null -H "$H" "$B/maxage/k2" || fail "GET k2 through B"
grep -qi "^X-Cache: HIT-L2" "$T/hk2" || fail "k2, not purged, is no longer an L2 hit"
echo "lbctl cache purge deleted the 11 L2 keys under /maxage/k1 on every shard"

# 6. A shard killed mid-run: no request fails.
E0=$(( $(l2 "$MA" error) + $(l2 "$MB" error) ))
bad=0
for i in $(seq 1 60); do
    [ "$i" = 20 ] && stop "$S2_PID"
    [ $((i % 2)) = 0 ] && U=$A || U=$B
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "$H" "$U/maxage/kill$((i % 30))")
    [ "$code" = 200 ] || bad=$((bad + 1))
done
[ "$bad" = 0 ] || fail "$bad requests failed with a shard down"
E1=$(( $(l2 "$MA" error) + $(l2 "$MB" error) ))
echo "shard killed: 60 requests, all 200; L2 errors counted: $((E1 - E0))"
[ "$E1" -gt "$E0" ] || fail "no L2 error counted with a shard down"
curl -sf -o /dev/null "http://127.0.0.1:$MA/metrics" || fail "A died"
curl -sf -o /dev/null "http://127.0.0.1:$MB/metrics" || fail "B died"
# Both stop cleanly (under sanitizers: no leak, no report).
stop "$LB_A_PID"; [ "$STOP_RC" = 0 ] || fail "A exited $STOP_RC"
stop "$LB_B_PID"; [ "$STOP_RC" = 0 ] || fail "B exited $STOP_RC"
echo "PASS"
