# lbq, the queue consumer, against its own redis-server and python3 backends
# (tests/e2e/lbq_backend.py records every request; tests/e2e/lbq_push.py pushes entries the
# way lb's enqueue routes do, with \u escapes, surrogate pairs and binary bodies):
#  - usage errors exit 2, an unreachable Redis exits 1 with a message;
#  - stats: length, dead, processing, consumers and the oldest entry's age, with a dead
#    consumer's processing list (no heartbeat) that a starting lbq takes back; Redis found
#    through an lb config whose first node is closed;
#  - happy path: 3000 entries, every id delivered exactly once with its method, URI (under
#    the URL's path), Content-Type and body byte for byte; queue and processing lists empty;
#  - kill -9 mid-run, then a restart: every id delivered at least once, duplicates at most
#    the number of threads (entries in hand), nothing left behind;
#  - a backend answering 500 twice per id: retried, delivered once; ids always failing (500,
#    or malformed responses: NUL in the head, no status line, bad chunk size, two
#    Content-Lengths, a head over 64 KiB) go to Q:dead after --max-tries, with exactly that
#    many attempts; a malformed entry goes to
#    Q:dead with a log line; final --json figures checked;
#  - SIGTERM with entries in hand: they are finished (delivered), the rest stay queued, and a
#    stop during a retry wait puts the entry back with its try count.
. "$(dirname "$0")/lib.sh"
need python3 redis-server redis-cli
LBQ="${LBQ:-$ROOT/build/lbq}"
[ -x "$LBQ" ] || fail "build/lbq is missing (make)"
R=$(free_port); CLOSED=$(free_port); B=$(free_port); BF=$(free_port); BS=$(free_port)
bg redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
bg backend python3 "$ROOT/tests/e2e/lbq_backend.py" "$B" "$T/ok.log"
bg flaky python3 "$ROOT/tests/e2e/lbq_backend.py" "$BF" "$T/flaky.log" --fail-first 2 \
    --fail-ids dl-0,dl-1,bk-0 --bad-ids bad-0,bad-1
bg slow python3 "$ROOT/tests/e2e/lbq_backend.py" "$BS" "$T/slow.log" --delay-ms 1500
for p in $R $B $BF $BS; do wait_port "$p"; done
rc() { redis-cli -p "$R" "$@"; }
push() { python3 "$ROOT/tests/e2e/lbq_push.py" "$R" "$@"; }
# jget FILE KEY: a number from the last JSON line of FILE.
jget() { tail -n 1 "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
# count FILE PREFIX STATUS: requests logged for ids PREFIX-* with STATUS.
count() { grep -c "^$2-[0-9]* $3 " "$1" || true; }

# --- usage and unreachable Redis
for args in "consume q" "consume q --to https://x:1" "consume q --to http://127.0.0.1:1 --threads 0" \
    "stats" "frob q" "stats q --rate x" "consume q --to http://h:99999"; do
    set +e; "$LBQ" --redis 127.0.0.1:"$R" $args >"$T/usage.out" 2>&1; st=$?; set -e
    [ $st = 2 ] || fail "lbq $args: exit $st, not 2 ($(cat "$T/usage.out"))"
done
set +e; "$LBQ" --redis 127.0.0.1:"$CLOSED" stats q >"$T/down.out" 2>&1; st=$?; set -e
[ $st = 1 ] && grep -q "redis 127.0.0.1:$CLOSED" "$T/down.out" || fail "unreachable redis: exit $st: $(cat "$T/down.out")"
echo "ok: usage errors exit 2, an unreachable redis exits 1 and says which"

# --- stats, and a dead consumer's list taken back at start
cat >"$T/lb.yaml" <<EOC
global: { redis: { nodes: [127.0.0.1:$CLOSED, 127.0.0.1:$R] } }
listeners:
  - { name: web, bind: 127.0.0.1:$CLOSED, protocol: http, routes: [ { cluster: app } ] }
clusters:
  app: { servers: [ { name: a1, address: 127.0.0.1:$CLOSED } ] }
EOC
push sq st 5 "$T/manifest" --ts-ago 120000
rc lmove sq sq:processing:ghost RIGHT LEFT >/dev/null
rc sadd sq:consumers ghost >/dev/null
push dq --raw 'not json' # a dead letter of another queue must not count
rc lmove dq sq:dead RIGHT LEFT >/dev/null
"$LBQ" -c "$T/lb.yaml" stats sq --json >"$T/stats1.json" || fail "lbq stats: $(cat "$T/stats1.json")"
for kv in length=4 dead=1 processing=1 consumers=1 live_consumers=0; do
    [ "$(jget "$T/stats1.json" "${kv%=*}")" = "${kv#*=}" ] || fail "stats ${kv%=*}: $(cat "$T/stats1.json")"
done
age=$(jget "$T/stats1.json" oldest_age_ms)
[ "$age" -ge 120000 ] && [ "$age" -lt 3600000 ] || fail "oldest_age_ms $age for entries pushed 120s old"
"$LBQ" -c "$T/lb.yaml" stats sq | grep -q '^processing  1$' || fail "stats text: $("$LBQ" -c "$T/lb.yaml" stats sq)"
bg lbq_sq "$LBQ" -c "$T/lb.yaml" consume sq --to "http://127.0.0.1:$B" --threads 2 --json
SQ=$LAST_PID
wait_for 30 "5 sq entries delivered" sh -c "[ \$(grep -c '^st-' '$T/ok.log') -ge 5 ]"
stop "$SQ"
[ "$STOP_RC" = 0 ] || fail "lbq exit $STOP_RC after SIGTERM"
grep -q "took back 1 entries of consumer ghost" "$T/lbq_sq.log" || fail "no take-back of ghost's list"
"$LBQ" --redis "127.0.0.1:$R" stats sq --json >"$T/stats2.json"
for kv in length=0 processing=0 consumers=0 dead=1; do
    [ "$(jget "$T/stats2.json" "${kv%=*}")" = "${kv#*=}" ] || fail "stats after: $(cat "$T/stats2.json")"
done
echo "ok: stats figures (age ${age}ms), a dead consumer's entry taken back, redis from -c"

# check_log LOG PREFIX COUNT MAXDUP: every id PREFIX-0..COUNT-1 answered 200 at least once
# and at most MAXDUP+1 times in all, no unknown id, bodies equal to what was pushed; prints
# the number of duplicate deliveries.
check_log() {
    python3 - "$1" "$2" "$3" "$4" "$T/manifest" <<'EOF_PY'
import sys, collections
log, prefix, n, maxdup, manifest = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
want = dict(l.split() for l in open(manifest) if l.startswith(prefix + "-"))
got = collections.Counter()
for line in open(log):
    ident, status, method, path, md5, ctype = line.split()
    if not ident.startswith(prefix + "-") or status != "200":
        continue
    num = ident[len(prefix) + 1:]
    if ident not in want:
        sys.exit("unknown id %s" % ident)
    if md5 != want[ident]:
        sys.exit("%s: body md5 %s, pushed %s" % (ident, md5, want[ident]))
    if method != "POST" or not path.endswith("/flash/%s?n=%s" % (prefix, num)):
        sys.exit("%s: %s %s" % (ident, method, path))
    want_ct = "application/octet-stream" if int(num) % 7 == 3 else "application/json"
    if ctype != want_ct:
        sys.exit("%s: content-type %s" % (ident, ctype))
    got[ident] += 1
missing = [i for i in range(n) if got["%s-%d" % (prefix, i)] == 0]
if missing:
    sys.exit("%d ids never delivered, e.g. %s-%d" % (len(missing), prefix, missing[0]))
dups = sum(c - 1 for c in got.values())
if dups > maxdup:
    sys.exit("%d duplicate deliveries (at most %d allowed)" % (dups, maxdup))
print(dups)
EOF_PY
}
leftovers() { # QUEUE: entries still in the queue or any processing list
    echo $(( $(rc llen "$1") + $(rc eval "local n=0 for _,k in ipairs(redis.call('KEYS', ARGV[1]..':processing:*')) do n=n+redis.call('LLEN',k) end return n" 0 "$1") ))
}

# --- happy path
push hp hp 3000 "$T/manifest"
bg lbq_hp "$LBQ" --redis "127.0.0.1:$R" consume hp --to "http://127.0.0.1:$B/app/" --threads 4 --json
HP=$LAST_PID
wait_for 120 "3000 hp entries delivered" sh -c "[ \$(grep -c '^hp-' '$T/ok.log') -ge 3000 ]"
wait_for 10 "hp drained" sh -c "[ \$(redis-cli -p $R llen hp) = 0 ]"
stop "$HP"
[ "$STOP_RC" = 0 ] || fail "lbq exit $STOP_RC after SIGTERM"
grep -q '^hp-[0-9]* 200 POST /app/flash/hp?n=' "$T/ok.log" || fail "URL path not put before the URI"
dups=$(check_log "$T/ok.log" hp 3000 0) || fail "happy path: $dups"
[ "$(leftovers hp)" = 0 ] || fail "hp: $(leftovers hp) entries left"
[ "$(jget "$T/lbq_hp.log" delivered)" = 3000 ] || fail "final json: $(tail -n 1 "$T/lbq_hp.log")"
[ "$(jget "$T/lbq_hp.log" final)" = True ] || fail "no final json line"
[ -z "$(rc keys 'hp:heartbeat:*')" ] && [ "$(rc scard hp:consumers)" = 0 ] || fail "hp: heartbeats left after a clean stop"
echo "ok: happy path, 3000 ids delivered exactly once, bodies byte for byte, nothing left"

# --- kill -9 mid-run, restart
push kq kq 3000 "$T/manifest"
bg lbq_kq1 "$LBQ" --redis "127.0.0.1:$R" consume kq --to "http://127.0.0.1:$B" --threads 4 \
    --rate 600 --heartbeat-ttl 1s
K1=$LAST_PID
wait_for 60 "500 kq entries delivered" sh -c "[ \$(grep -c '^kq-' '$T/ok.log') -ge 500 ]"
kill -9 "$K1"
wait "$K1" 2>/dev/null || true
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$K1" | tr '\n' ' ')
before=$(grep -c '^kq-' "$T/ok.log")
[ "$before" -lt 3000 ] || fail "lbq finished before the kill; nothing tested"
bg lbq_kq2 "$LBQ" --redis "127.0.0.1:$R" consume kq --to "http://127.0.0.1:$B" --threads 4 \
    --heartbeat-ttl 1s
K2=$LAST_PID
wait_for 120 "kq drained" sh -c "[ \$(redis-cli -p $R llen kq) = 0 ] && [ \$(grep -c '^kq-' '$T/ok.log') -ge 3000 ] && [ -z \"\$(redis-cli -p $R keys 'kq:processing:*')\" ]"
stop "$K2"
[ "$STOP_RC" = 0 ] || fail "lbq exit $STOP_RC after SIGTERM"
dups=$(check_log "$T/ok.log" kq 3000 4) || fail "kill -9: $dups"
[ "$(leftovers kq)" = 0 ] || fail "kq: $(leftovers kq) entries left"
grep -q "took back [1-4] entries of consumer" "$T/lbq_kq2.log" || fail "the restart took nothing back"
echo "ok: kill -9 after $before deliveries, restart: every id delivered, $dups duplicates (<= 4 in hand)"

# --- retries, dead letters, malformed entry
push rt rt 20 "$T/manifest"
push rt dl 2 "$T/manifest"
push rt bad 2 "$T/manifest"
push rt --raw '{"id":"m","ts":1,"method":"POST","uri":"/","body":"\ud800"}'
bg lbq_rt "$LBQ" --redis "127.0.0.1:$R" consume rt --to "http://127.0.0.1:$BF" --threads 3 \
    --max-tries 4 --backoff 5ms --json
RT=$LAST_PID
wait_for 60 "rt settled" sh -c "[ \$(redis-cli -p $R llen rt:dead) = 5 ] && [ \$(grep -c '^rt-[0-9]* 200 ' '$T/flaky.log') = 20 ]"
stop "$RT"
[ "$STOP_RC" = 0 ] || fail "lbq exit $STOP_RC after SIGTERM"
dups=$(check_log "$T/flaky.log" rt 20 0) || fail "retries: $dups"
[ "$(count "$T/flaky.log" rt 500)" = 40 ] || fail "rt: $(count "$T/flaky.log" rt 500) answers 500, not 2 per id"
[ "$(count "$T/flaky.log" dl 500)" = 8 ] || fail "dl: $(count "$T/flaky.log" dl 500) tries, not 4 per id"
[ "$(count "$T/flaky.log" dl 200)" = 0 ] || fail "dl delivered?"
[ "$(count "$T/flaky.log" bad bad)" = 8 ] || fail "bad: $(count "$T/flaky.log" bad bad) tries, not 4 per id"
rc lrange rt:dead 0 -1 >"$T/dead.out"
grep -q '"id": "dl-0"' "$T/dead.out" && grep -q '"id": "dl-1"' "$T/dead.out" &&
    grep -q '"id":"m"' "$T/dead.out" && grep -q '"id": "bad-1"' "$T/dead.out" || fail "rt:dead: $(cat "$T/dead.out")"
grep -q "malformed entry .* moved to rt:dead: byte .*surrogate" "$T/lbq_rt.log" || fail "no malformed log line"
for kv in delivered=20 dead=5 malformed=1 retried=52 failed=56; do
    [ "$(jget "$T/lbq_rt.log" "${kv%=*}")" = "${kv#*=}" ] || fail "rt ${kv%=*}: $(tail -n 1 "$T/lbq_rt.log")"
done
[ "$(rc hlen rt:tries)" = 0 ] || fail "rt:tries not emptied"
[ "$(leftovers rt)" = 0 ] || fail "rt: $(leftovers rt) entries left"
echo "ok: retries after 500, dead letters after --max-tries 4 (500s and malformed responses), a malformed entry dead-lettered"

# --- SIGTERM: in-hand entries finished, the rest stay; a retry wait puts its entry back
push st sg 10 "$T/manifest"
bg lbq_st "$LBQ" --redis "127.0.0.1:$R" consume st --to "http://127.0.0.1:$BS" --threads 4
ST=$LAST_PID
wait_for 30 "4 st entries in hand" sh -c "[ \$('$LBQ' --redis 127.0.0.1:$R stats st --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"processing\"])') = 4 ]"
stop "$ST"
[ "$STOP_RC" = 0 ] || fail "lbq exit $STOP_RC after SIGTERM"
[ "$(count "$T/slow.log" sg 200)" = 4 ] || fail "SIGTERM: $(count "$T/slow.log" sg 200) of 4 in hand delivered"
[ "$(rc llen st)" = 6 ] && [ "$(leftovers st)" = 6 ] || fail "st after SIGTERM: $(rc llen st) queued, $(leftovers st) in all"
push bk bk 1 "$T/manifest"
bg lbq_bk "$LBQ" --redis "127.0.0.1:$R" consume bk --to "http://127.0.0.1:$BF" --threads 1 --backoff 60s
BK=$LAST_PID
wait_for 30 "bk-0 tried" sh -c "grep -q '^bk-0 500' '$T/flaky.log'"
stop "$BK"
[ "$STOP_RC" = 0 ] || fail "lbq exit $STOP_RC after SIGTERM in a retry wait"
[ "$(rc llen bk)" = 1 ] && [ "$(rc hget bk:tries bk-0)" = 1 ] || fail "bk: $(rc llen bk) queued, tries $(rc hget bk:tries bk-0)"
echo "ok: SIGTERM finished the 4 entries in hand, 6 stay queued; a retry wait hands its entry back"

# --- --rate: 300 entries at 150/s cannot take less than 299/150 s (a bound that a slow
# machine only makes looser); progress on a terminal (script(1) gives lbq a pty)
push rq rq 300 "$T/manifest"
bg lbq_rq "$LBQ" --redis "127.0.0.1:$R" consume rq --to "http://127.0.0.1:$B" --threads 4 --rate 150 --json
RQ=$LAST_PID
wait_for 60 "rq drained" sh -c "[ \$(grep -c '^rq-' '$T/ok.log') -ge 300 ]"
stop "$RQ"
python3 - "$T/lbq_rq.log" <<'EOF_PY' || fail "--rate 150: $(tail -n 1 "$T/lbq_rq.log")"
import json, sys
last = json.loads(open(sys.argv[1]).read().splitlines()[-1])
sys.exit(0 if last["final"] and last["delivered"] == 300 and last["elapsed_s"] >= 299 / 150 else 1)
EOF_PY
if command -v script >/dev/null 2>&1; then
    push pq pq 5 "$T/manifest"
    script -qec "timeout -s INT 3 '$LBQ' --redis 127.0.0.1:$R consume pq --to http://127.0.0.1:$B" \
        "$T/tty.out" >/dev/null </dev/null || true
    grep -q "delivered 5  failed 0  retried 0  dead 0  .*/s  queue 0" "$T/tty.out" ||
        fail "no progress line on a terminal: $(tr '\r' '\n' <"$T/tty.out" | head -5)"
    echo "ok: --rate bounds deliveries, progress line on a terminal"
else
    echo "ok: --rate bounds deliveries (script(1) missing: terminal progress not checked)"
fi
