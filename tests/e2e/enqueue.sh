# Enqueue routes with the real build/lb, redis-server and lbq:
#  - a burst of 20,000 POSTs at concurrency 200: every one answered 202 with a unique id, and
#    LLEN equal to the 202 count; lbq then delivers every id to a backend exactly once;
#  - the entry: id, method, URI, Content-Type, X-Forwarded-For with the client appended, the
#    route's headers: list, the body as a string, or base64 when it is not UTF-8;
#  - a full queue (max_length) answers 503 with Retry-After and stores nothing more;
#  - a body over max_body: 413; chunked (no length): 411; Expect: 100-continue answered;
#  - Redis killed: enqueue answers 503 at once (never a hang) while a normal route keeps
#    answering 200; Redis back: 202 again; lb_enqueue_total and lb_redis_up say it all;
#  - nothing leaks: slots, buffers and sockets back to zero.
. "$(dirname "$0")/lib.sh"
need python3 curl redis-server redis-cli
need_uring
LBQ="${LBQ:-$ROOT/build/lbq}"
[ -x "$LBQ" ] || fail "build/lbq is missing (make)"
R=$(free_port); L=$(free_port); MP=$(free_port); G=$(free_port); B=$(free_port)
bg redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
REDISPID=$LAST_PID
bg good "$DEMO" -l "127.0.0.1:$G" -n good
bg backend python3 "$ROOT/tests/e2e/lbq_backend.py" "$B" "$T/delivered.log"
cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
  metrics: { listen: 127.0.0.1:$MP }
  redis: { nodes: [127.0.0.1:$R], instance: lb-e2e, timeout: 500ms }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    routes:
      - match: { path_prefix: /flash/, methods: [POST] }
        enqueue: { redis_list: "flash:orders", max_length: 1000000, max_body: 4k, headers: [X-User] }
      - match: { path_prefix: /small/, methods: [POST] }
        enqueue: { redis_list: small, max_length: 10 }
      - { cluster: good }
clusters:
  good: { timeouts: { idle: 1s }, servers: [ { name: g1, address: 127.0.0.1:$G } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
for p in $R $G $B $L $MP; do wait_port "$p"; done
rc() { redis-cli -p "$R" "$@"; }
sum() { metric_sum "$MP" "$1"; }
enq() { curl -s "http://127.0.0.1:$MP/metrics" | awk -v r="$1" '$1 ~ "^lb_enqueue_total" && $1 ~ "result=\""r"\"" { s += $2 } END { print s + 0 }'; }
wait_for 10 "lb sees Redis up" sh -c "curl -s http://127.0.0.1:$MP/metrics | grep -qx 'lb_redis_up 1'"

echo "== one entry, as stored"
curl -s -D "$T/h1" -o "$T/b1" -X POST -H 'Content-Type: application/json' -H 'X-User: u-1' \
    -H 'X-Forwarded-For: 10.0.0.1' -H 'X-Other: not kept' --data-binary '{"sku":"a\"b"}' \
    "http://127.0.0.1:$L/flash/buy?item=7"
head -1 "$T/h1" | grep -q '^HTTP/1.1 202' || fail "want 202: $(cat "$T/h1")"
grep -qi '^content-type: application/json' "$T/h1" || fail "202 not JSON: $(cat "$T/h1")"
rc lpop flash:orders >"$T/e1"
python3 - "$T/b1" "$T/e1" <<'EOF_PY' || fail "entry: $(cat "$T/e1") answer: $(cat "$T/b1")"
import json, sys
a = json.load(open(sys.argv[1])); e = json.load(open(sys.argv[2]))
assert a["queue"] == "flash:orders" and a["id"] == e["id"] and e["id"].startswith("lb-e2e-"), (a, e)
assert e["method"] == "POST" and e["uri"] == "/flash/buy?item=7", e
assert e["headers"] == {"content-type": "application/json", "x-forwarded-for": "10.0.0.1, 127.0.0.1",
                        "x-user": "u-1"}, e["headers"]
assert e["body"] == '{"sku":"a\\"b"}' and "body_b64" not in e, e
assert isinstance(e["ts"], int) and e["ts"] > 1.7e12, e
EOF_PY
printf 'bin\377\000ary' >"$T/bin"
curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$T/bin" "http://127.0.0.1:$L/flash/b" | grep -qx 202 ||
    fail "binary body refused"
rc lpop flash:orders | python3 -c "import json,sys,base64; e=json.load(sys.stdin); assert base64.b64decode(e['body_b64']) == b'bin\xff\x00ary' and 'body' not in e, e" ||
    fail "binary body not stored as body_b64"
echo ok

echo "== refusals: 413, 411, 100-continue"
head -c 5000 /dev/zero | tr '\0' x >"$T/big"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$T/big" "http://127.0.0.1:$L/flash/x")
[ "$code" = 413 ] || fail "body over max_body: want 413, got $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' -d abc "http://127.0.0.1:$L/flash/x")
[ "$code" = 411 ] || fail "chunked body: want 411, got $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --expect100-timeout 30 -H 'Expect: 100-continue' -X POST -d 'go ahead' \
    "http://127.0.0.1:$L/flash/c")
[ "$code" = 202 ] || fail "Expect: 100-continue: want 202, got $code"
[ "$(rc llen flash:orders)" = 1 ] || fail "refused requests were stored: LLEN $(rc llen flash:orders)"
rc del flash:orders >/dev/null
echo ok

echo "== a full queue"
for i in $(seq 1 15); do
    curl -s -o /dev/null -D "$T/hs" -w '%{http_code}\n' -X POST -d "n=$i" "http://127.0.0.1:$L/small/x" >>"$T/small"
done
[ "$(grep -c '^202$' "$T/small")" = 10 ] && [ "$(grep -c '^503$' "$T/small")" = 5 ] ||
    fail "max_length 10: $(sort "$T/small" | uniq -c | tr '\n' ' ')"
grep -qi '^retry-after: 1' "$T/hs" || fail "503 without Retry-After: $(cat "$T/hs")"
[ "$(rc llen small)" = 10 ] || fail "full queue grew: LLEN $(rc llen small)"
[ "$(enq full)" = 5 ] || fail "lb_enqueue_total full: $(enq full)"
echo ok

echo "== burst: 20,000 POSTs at concurrency 200"
python3 "$ROOT/tests/e2e/post_burst.py" "$L" /flash/burst 20000 200 "$T/burst" >"$T/burst.json"
cat "$T/burst.json"
n202=$(grep -c '^202 ' "$T/burst" || true)
[ "$n202" = 20000 ] || fail "burst: $n202 of 20000 answered 202: $(cat "$T/burst.json")"
[ "$(rc llen flash:orders)" = "$n202" ] || fail "burst: LLEN $(rc llen flash:orders) != $n202 answered 202"
sed -n 's/^202 {"id":"\([^"]*\)".*/\1/p' "$T/burst" | sort >"$T/ids"
[ "$(uniq "$T/ids" | wc -l)" = 20000 ] || fail "burst: ids are not unique"

echo "== lbctl queue stats"
CTL="$LBCTL -s $T/lb.sock"
$CTL queue stats >"$T/qs.txt" || fail "lbctl queue stats: $(cat "$T/qs.txt")"
cat "$T/qs.txt"
grep -Eq '^flash:orders +20000 +0 +0 ' "$T/qs.txt" || fail "queue stats: flash:orders not at 20000"
grep -Eq '^small +10 ' "$T/qs.txt" || fail "queue stats: small not at 10"
grep -q '^listener web: pushed 20013, refused: full 5, redis down 0, too large 2$' "$T/qs.txt" ||
    fail "queue stats: lb's counts"
$CTL --json queue stats flash:orders | python3 -c '
import json, sys
d = json.load(sys.stdin)["queues"]
assert len(d) == 1 and d[0]["queue"] == "flash:orders" and d[0]["length"] == 20000, d
assert d[0]["oldest_age_ms"] >= 0 and d[0]["listener"] == "web", d' || fail "queue stats --json"
rc=0; $CTL queue stats nosuch >"$T/qs.err" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "no enqueue route pushes onto 'nosuch'" "$T/qs.err" || fail "unknown queue: $rc $(cat "$T/qs.err")"
rc=0; $CTL queue frob >"$T/qs.err" 2>&1 || rc=$?
[ $rc = 2 ] || fail "queue frob: exit $rc"
echo ok

echo "== lbq delivers each id exactly once"
bg lbq "$LBQ" -c "$T/lb.yaml" consume flash:orders --to "http://127.0.0.1:$B/app/" --threads 8 --json
LBQPID=$LAST_PID
wait_for 240 "20000 entries delivered" sh -c "[ \$(wc -l <'$T/delivered.log') -ge 20000 ]"
wait_for 10 "queue drained" sh -c "[ \$(redis-cli -p $R llen flash:orders) = 0 ]"
stop "$LBQPID"
awk '$2 == 200 { print $1 }' "$T/delivered.log" | sort >"$T/got"
cmp -s "$T/ids" "$T/got" || fail "delivered ids differ from the 202 ids: $(comm -3 "$T/ids" "$T/got" | head -5)"
python3 - "$T/delivered.log" <<'EOF_PY' || fail "delivery lost a method, URI, Content-Type or body"
import hashlib, json, sys
want = {hashlib.md5(json.dumps({"n": i}).encode()).hexdigest() for i in range(20000)}
got = set()
for line in open(sys.argv[1]):
    ident, status, method, path, md5, ctype = line.split()
    assert (status, method, path, ctype) == ("200", "POST", "/app/flash/burst", "application/json"), line
    got.add(md5)
assert got == want, "%d bodies differ" % len(got ^ want)
EOF_PY
echo ok

echo "== Redis killed"
stop "$REDISPID"
code=$(curl -s -o /dev/null -D "$T/hd" -w '%{http_code}' --max-time 10 -X POST -d x "http://127.0.0.1:$L/flash/down")
[ "$code" = 503 ] || fail "Redis down: want 503, got $code"
grep -qi '^retry-after:' "$T/hd" || fail "Redis down: 503 without Retry-After"
python3 "$ROOT/tests/e2e/post_burst.py" "$L" /flash/down 500 50 "$T/down" >"$T/down.json"
[ "$(grep -c '^503 ' "$T/down")" = 500 ] || fail "Redis down: $(cat "$T/down.json")"
for i in 1 2 3 4 5; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$L/other")
    [ "$code" = 200 ] || fail "the cluster route failed while Redis was down: $code"
done
wait_for 10 "lb_redis_up 0" sh -c "curl -s http://127.0.0.1:$MP/metrics | grep -qx 'lb_redis_up 0'"
[ "$(enq redis_down)" -ge 501 ] || fail "lb_enqueue_total redis_down: $(enq redis_down)"
[ "$(grep -c 'enqueue failed' "$T/lb.log")" -lt 100 ] || fail "one log line per failed request"
bg redis2 redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
wait_port "$R"
wait_for 20 "202 once Redis is back" sh -c \
    "curl -s -o /dev/null -w '%{http_code}' -X POST -d back http://127.0.0.1:$L/flash/back | grep -qx 202"
[ "$(rc llen flash:orders)" -ge 1 ] || fail "no entry after Redis came back"
echo ok

echo "pushed=$(enq pushed) full=$(enq full) redis_down=$(enq redis_down) too_large=$(enq too_large)"
[ "$(enq too_large)" = 2 ] || fail "lb_enqueue_total too_large: $(enq too_large)"
pushes=$(curl -s "http://127.0.0.1:$MP/metrics" |
    awk '$1 == "lb_redis_command_duration_seconds_count{cluster=\"lb:redis\",server=\"redis\"}" { print $2 }')
[ "${pushes:-0}" -ge 20013 ] || fail "push latency histogram: count ${pushes:-none}"
# What stays: at most one connection to Redis per worker (kept open for the next push).
settled() {
    holds_nothing "$MP" 2>/dev/null && return 0
    [ "$(sum lb_worker_buffers_in_use)" = 0 ] && [ "$(sum lb_connections_active)" -le 2 ] &&
        [ "$(sum lb_worker_files_open)" -le 2 ] &&
        [ "$(sum lb_connections_active)" = "$(sum lb_worker_files_open)" ]
}
i=0; until settled; do i=$((i + 1)); [ $i -lt 150 ] || break; sleep 0.1; done
settled || fail "not back to zero (at most one Redis connection per worker may stay): $(curl -s "http://127.0.0.1:$MP/metrics" | grep -E '^lb_(connections_active|worker_buffers_in_use|worker_files_open)' | tr '\n' ' ')"
echo "after: slots=$(sum lb_connections_active) buffers=$(sum lb_worker_buffers_in_use) files=$(sum lb_worker_files_open)"
kill -0 "$LBPID" || fail "lb died"
stop "$LBPID"
[ "$STOP_RC" = 0 ] || fail "lb exit $STOP_RC at SIGTERM (a sanitizer report?): $(tail -5 "$T/lb.log")"
echo "PASS"
