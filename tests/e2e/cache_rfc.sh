# The route cache against RFC 9111, with the real build/lb, curl and a python3 origin
# (tests/e2e/cache_origin.py) that sets headers per path and counts the requests it gets:
#  - max-age is honoured (one origin request, then hits with Age and X-Cache: HIT);
#  - Expires in the past, or invalid, is not served from the cache; no-store is not stored;
#  - must-revalidate is never served stale;
#  - a stale answer with an ETag (or Last-Modified) is revalidated: one conditional request
#    reaches the origin, its 304 refreshes the stored answer (X-Cache: REVALIDATED, the stored
#    body, the 304's new fields), and the next request is a hit again; no-cache answers with
#    an ETag are revalidated at every use;
#  - stale-if-error: a stale answer is served (X-Cache: STALE) when the origin answers 500
#    and when it is down, never with must-revalidate;
#  - stale-while-revalidate: while one request refreshes a stale answer, another gets the
#    stale one at once, and the origin sees the refresh only;
#  - If-None-Match from a client gets 304 from memory only when it matches the stored ETag;
#  - Vary keeps one entry per Accept-Language; only-if-cached gets 504 when nothing is stored;
#  - ttl 0s stores nothing without freshness from the origin, ttl 2s is the heuristic;
#  - a POST invalidates its URI and its Location, on every worker (lb with two workers);
#  - lb_cache_requests_total counts hits and misses; lb -t checks max_ttl with FILE:LINE:COL.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring

O=$(free_port); L=$(free_port); M=$(free_port); L2=$(free_port)
bg origin python3 "$ROOT/tests/e2e/cache_origin.py" "$O"
OPID=$LAST_PID
cat >"$T/lb.yaml" <<EOC
global:
  workers: 1
  admin: { socket: $T/lb.sock }
  metrics: { listen: 127.0.0.1:$M }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    routes:
      - match: { path_prefix: /plain }
        cluster: origin
        cache: { ttl: 2s, debug_header: on }
      - cluster: origin
        cache: { debug_header: on }
clusters:
  origin:
    servers: [ { name: o1, address: 127.0.0.1:$O } ]
EOC
"$LB" -t -c "$T/lb.yaml" || fail "config rejected"
bg lb "$LB" -c "$T/lb.yaml"
wait_port "$O"; wait_port "$L"; wait_port "$M"
U="http://127.0.0.1:$L"

# body PATH [CURL ARGS...]; head PATH [CURL ARGS...] (the response header, CRs removed)
body() { p=$1; shift; curl -s --max-time 5 "$@" "$U$p"; }
head_of() { p=$1; shift; curl -s --max-time 5 -o /dev/null -D - "$@" "$U$p" | tr -d '\r'; }
count() { curl -s --max-time 5 "http://127.0.0.1:$O/_count$1"; }
status() { p=$1; shift; curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@" "$U$p"; }
want_count() { [ "$(count "$1")" = "$2" ] || fail "$3: origin saw $(count "$1") requests for $1, want $2"; }

echo "== max-age=60: one origin request, then hits with Age"
a=$(body /maxage/a); b=$(body /maxage/a)
[ "$a" = "/maxage/a 1" ] && [ "$b" = "$a" ] || fail "max-age: got '$a' then '$b'"
want_count /maxage/a 1 "max-age"
h=$(head_of /maxage/a)
echo "$h" | grep -q '^X-Cache: HIT$' || fail "no X-Cache: HIT on a hit: $h"
echo "$h" | grep -Eq '^Age: [0-9]+$' || fail "no Age on a hit: $h"
[ "$(echo "$h" | grep -c '^Age:')" = 1 ] || fail "Age twice: $h"
head_of /maxage/miss | grep -q '^X-Cache: MISS$' || fail "no X-Cache: MISS on a miss"

echo "== Expires in the past, Expires invalid, no-store: never from the cache"
for p in /expired /badexpires /nostore; do
    x=$(body $p); y=$(body $p)
    [ "$x" = "$p 1" ] && [ "$y" = "$p 2" ] || fail "$p served from the cache: '$x' then '$y'"
done

echo "== must-revalidate, max-age=2: never served stale"
a=$(body /mustreval); b=$(body /mustreval)
[ "$a" = "$b" ] || fail "/mustreval not cached while fresh: '$a' then '$b'"
n=$(count /mustreval)
# Wait until the origin's 2 s have passed for certain (Date has whole seconds: 3 s), polling
# the origin's answer rather than sleeping a guess: once stale, lb must ask the origin.
stale_refetched() { [ "$(body /mustreval)" != "$a" ]; }
wait_for 10 "/mustreval served from the cache after max-age" stale_refetched
[ "$(count /mustreval)" -gt "$n" ] || fail "/mustreval answer changed without the origin"

echo "== revalidation: stale with an ETag, then with Last-Modified"
for p in /reval /reval-lm; do
    a=$(body $p)
    [ "$a" = "$p 1" ] || fail "$p: got '$a'"
    # max-age=1: poll (each poll a hit, the origin untouched) until the answer is stale
    revalidated() { head_of "$p" >"$T/h"; grep -q '^X-Cache: REVALIDATED$' "$T/h"; }
    wait_for 10 "$p never revalidated" revalidated
    want_count "$p" 2 "$p: one conditional request"
    grep -q '^HTTP/1.1 200' "$T/h" || fail "$p: the client did not get 200: $(cat "$T/h")"
    [ "$(body $p)" = "$p 1" ] || fail "$p: the stored body was not kept"
done
head_of /reval | grep -q '^X-Refreshed: ' || fail "the 304's fields did not refresh /reval"
echo "== no-cache with an ETag: revalidated at every use"
for i in 1 2 3; do
    x=$(body /nocache)
    [ "$x" = "/nocache 1" ] || fail "/nocache: got '$x'"
done
want_count /nocache 3 "no-cache: one full request then two conditional ones"
head_of /nocache | grep -q '^X-Cache: REVALIDATED$' || fail "/nocache not revalidated"

echo "== stale-if-error: the origin answers 500"
[ "$(body /sie)" = "/sie 1" ] || fail "/sie: first answer"
[ "$(body /sie-mr)" = "/sie-mr 1" ] || fail "/sie-mr: first answer"
[ "$(body /sie-down)" = "/sie-down 1" ] || fail "/sie-down: first answer"
served_stale() { head_of /sie >"$T/h"; grep -q '^X-Cache: STALE$' "$T/h"; }
wait_for 10 "/sie never served stale on the origin's 500" served_stale
grep -q '^HTTP/1.1 200' "$T/h" || fail "stale answer not 200: $(cat "$T/h")"
[ "$(body /sie)" = "/sie 1" ] || fail "/sie: not the stale body"
# must-revalidate: once stale, the 500 reaches the client
mr_fails() { [ "$(status /sie-mr)" = 500 ]; }
wait_for 10 "/sie-mr: must-revalidate served stale" mr_fails

echo "== stale-while-revalidate: one slow refresh, the others served stale"
[ "$(body /swr)" = "/swr 1" ] || fail "/swr: first answer"
sleep 5.2 # max-age=4 (Date has whole seconds): stale from here on, whatever the load
curl -s --max-time 10 -o "$T/swr.a" "$U/swr" &
APID=$!
swr_refreshing() { [ "$(count /swr)" = 2 ]; }
wait_for 10 "the refresh of /swr did not reach the origin" swr_refreshing
head_of /swr >"$T/h"
grep -q '^X-Cache: STALE$' "$T/h" || { wait "$APID"; fail "/swr during its refresh: $(cat "$T/h")"; }
[ "$(body /swr)" = "/swr 1" ] || { wait "$APID"; fail "/swr during its refresh: not the stale body"; }
wait "$APID" || fail "the refreshing request failed"
[ "$(cat "$T/swr.a")" = "/swr 2" ] || fail "the refreshing request got '$(cat "$T/swr.a")'"
[ "$(body /swr)" = "/swr 2" ] || fail "/swr not refreshed"
want_count /swr 2 "stale-while-revalidate: one refresh"

echo "== If-None-Match from a client: 304 only on a match"
e=$(body /etag)
[ "$e" = "/etag 1" ] || fail "/etag: got '$e'"
[ "$(status /etag -H 'If-None-Match: "v1"')" = 304 ] || fail "matching If-None-Match not 304"
[ "$(status /etag -H 'If-None-Match: W/"v1"')" = 304 ] || fail "weak If-None-Match not 304"
[ "$(status /etag -H 'If-None-Match: "v0", "v1"')" = 304 ] || fail "list If-None-Match not 304"
x=$(body /etag -H 'If-None-Match: "v2"')
[ "$x" = "/etag 1" ] || fail "non-matching If-None-Match: got '$x', want the stored 200"
head_of /etag -H 'If-None-Match: "v1"' | grep -q '^ETag: "v1"$' || fail "304 without its ETag"
want_count /etag 1 "conditional requests answered from memory"

echo "== Vary: Accept-Language"
fr=$(body /vary -H 'Accept-Language: fr'); de=$(body /vary -H 'Accept-Language: de')
fr2=$(body /vary -H 'Accept-Language: fr'); de2=$(body /vary -H 'Accept-Language: de')
echo "$fr / $de"
[ "$fr" = "$fr2" ] && [ "$de" = "$de2" ] && [ "$fr" != "$de" ] || fail "Vary variants mixed up"
want_count /vary 2 "Vary"

echo "== only-if-cached"
[ "$(status /maxage/a -H 'Cache-Control: only-if-cached')" = 200 ] || fail "only-if-cached hit"
[ "$(status /maxage/none -H 'Cache-Control: only-if-cached')" = 504 ] || fail "only-if-cached not 504"
want_count /maxage/none 0 "only-if-cached"
x=$(body /maxage/a -H 'Cache-Control: no-cache')
[ "$x" = "/maxage/a 2" ] || fail "request no-cache served from the cache: '$x'"

echo "== ttl: 0s stores nothing unmarked, 2s is the heuristic"
x=$(body /unmarked); y=$(body /unmarked)
[ "$y" = "/unmarked 2" ] || fail "an answer without freshness was stored with ttl 0s: '$x' '$y'"
x=$(body /plain); y=$(body /plain)
[ "$x" = "$y" ] || fail "heuristic ttl 2s: '$x' then '$y'"

echo "== POST invalidates the URI and its Location"
body /maxage/p >/dev/null; body /maxage/loc >/dev/null
[ "$(body /maxage/p)" = "/maxage/p 1" ] || fail "/maxage/p not cached"
[ "$(status "/maxage/p?loc=/maxage/loc" -X POST -d x)" = 200 ] || fail "POST failed"
# the POST went to /maxage/p?loc=..., a different target: /maxage/p itself stays
[ "$(body /maxage/loc)" = "/maxage/loc 2" ] || fail "Location not invalidated"
[ "$(status /maxage/p -X POST -d x)" = 200 ] || fail "POST failed"
[ "$(body /maxage/p)" = "/maxage/p 2" ] || fail "POST did not invalidate /maxage/p"
[ "$(body /maxage/p)" = "/maxage/p 2" ] || fail "/maxage/p not cached again after the POST"

echo "== metrics"
curl -s "http://127.0.0.1:$M/metrics" | grep '^lb_cache_' | tee "$T/cache.metrics"
hits=$(awk '/result="hit"/ { print $2 }' "$T/cache.metrics")
misses=$(awk '/result="miss"/ { print $2 }' "$T/cache.metrics")
nm=$(awk '/result="not_modified"/ { print $2 }' "$T/cache.metrics")
rv=$(awk '/result="revalidated"/ { print $2 }' "$T/cache.metrics")
st=$(awk '/result="stale"/ { print $2 }' "$T/cache.metrics")
[ "${hits:-0}" -ge 8 ] && [ "${misses:-0}" -ge 10 ] && [ "${nm:-0}" -ge 3 ] &&
    [ "${rv:-0}" -ge 5 ] && [ "${st:-0}" -ge 2 ] ||
    fail "cache metrics: hit=$hits miss=$misses not_modified=$nm revalidated=$rv stale=$st"
[ "$(metric_sum "$M" lb_cache_invalidations_total)" = 2 ] || fail "invalidations not counted"

echo "== two workers: a POST through one invalidates the other's copy"
sed -e "s/workers: 1/workers: 2/" -e "s/127.0.0.1:$L/127.0.0.1:$L2/" \
    -e "/metrics:/d" -e "s#$T/lb.sock#$T/lb2.sock#" "$T/lb.yaml" >"$T/lb2.yaml"
bg lb2 "$LB" -c "$T/lb2.yaml"
wait_port "$L2"
U2="http://127.0.0.1:$L2"
# fresh connections land on either worker: ask until both have fetched (and stored) it
both_cached() { curl -s --max-time 5 "$U2/maxage/w" >/dev/null; [ "$(count /maxage/w)" = 2 ]; }
wait_for 30 "the two workers did not both fetch /maxage/w" both_cached
for i in 1 2 3 4 5 6 7 8 9 10; do
    x=$(curl -s --max-time 5 "$U2/maxage/w")
    case "$x" in "/maxage/w 1" | "/maxage/w 2") ;; *) fail "unexpected answer '$x'" ;; esac
done
want_count /maxage/w 2 "two workers, before the POST"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "$U2/maxage/w")" = 200 ] || fail "POST"
for i in $(seq 1 20); do
    x=$(curl -s --max-time 5 "$U2/maxage/w")
    case "$x" in "/maxage/w 1" | "/maxage/w 2") fail "answer from before the POST: '$x'" ;; esac
done
n=$(count /maxage/w)
[ "$n" -ge 3 ] && [ "$n" -le 4 ] || fail "after the POST the origin saw $n requests, want 3 or 4"

echo "== stale-if-error: the origin is down"
stop "$OPID"
down_stale() { head_of /sie-down >"$T/h"; grep -q '^X-Cache: STALE$' "$T/h"; }
wait_for 10 "/sie-down not served stale with the origin down" down_stale
[ "$(body /sie-down)" = "/sie-down 1" ] || fail "/sie-down: not the stale body"
[ "$(status /maxage/never-stored)" = 502 ] || fail "origin down: a miss is not 502"

echo "== lb -t checks the new keys"
sed "s/cache: { debug_header: on }/cache: { max_ttl: 1y }/" "$T/lb.yaml" >"$T/bad.yaml"
if "$LB" -t -c "$T/bad.yaml" 2>"$T/bad.err"; then fail "max_ttl: 1y accepted"; fi
grep -q "bad.yaml:[0-9]*:[0-9]*: .*max_ttl" "$T/bad.err" || fail "no FILE:LINE:COL: $(cat "$T/bad.err")"
echo "ok"
