# lbctl cache purge and cache stats, with the real build/lb (two workers, so two L1 caches),
# lbctl and the counting python3 origin (tests/e2e/cache_origin.py; /day/* is max-age=86400):
#  - keys fetched on many separate connections land in both workers' caches (cache stats
#    shows entries on each), one origin request per worker that missed;
#  - purging one exact path removes it from every worker (lbctl says how many, the same as
#    the origin requests it took to fill them), the next request reaches the origin, other
#    keys stay hits;
#  - purging a prefix removes everything under it and nothing else; --host with another host
#    removes nothing, with the host the clients used (no port: any port) it does;
#  - cache stats: purged, misses and entries agree with what was done, --json for scripts,
#    lb_cache_purges_total on /metrics;
#  - bad arguments are usage errors (exit 2) from lbctl, and clear errors from lb's own parser
#    (exit 1 through lbctl, an error answer on the raw socket).
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring

O=$(free_port); L=$(free_port); M=$(free_port)
bg origin python3 "$ROOT/tests/e2e/cache_origin.py" "$O"
cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
  metrics: { listen: 127.0.0.1:$M }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    routes:
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
CTL() { "$LBCTL" -s "$T/lb.sock" "$@"; }
count() { curl -s --max-time 5 "http://127.0.0.1:$O/_count$1"; }
# Each curl is its own connection: SO_REUSEPORT spreads them over both workers.
fetch() { for _ in $(seq "$2"); do curl -s --max-time 5 -o /dev/null "$U$1" || fail "GET $1"; done; }
# js EXPR: evaluates EXPR on `lbctl cache stats --json` (as s).
js() { CTL cache stats --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
KEYS="/day/api/a /day/api/b /day/api/deep/c /day/other/d"
origin_total() { t=0; for k in $KEYS; do t=$((t + $(count "$k"))); done; echo "$t"; }
REQS=0
fill() { for k in $KEYS; do fetch "$k" 8; REQS=$((REQS + 8)); done; }

echo "== fill four keys through both workers"
fill
for k in $KEYS; do
    n=$(count "$k"); [ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "origin saw $n requests for $k"
done
# Counters are published at each worker's tick (100 ms): wait until they add up.
misses_add_up() { [ "$(js "s['total']['misses']")" = "$(origin_total)" ] &&
    [ "$(js "s['total']['hits'] + s['total']['misses']")" = "$REQS" ]; }
wait_for 10 "cache stats never agreed with the origin's counts" misses_add_up
[ "$(js "s['total']['entries']")" = "$(origin_total)" ] || fail "entries != origin fetches"
[ "$(js "min(w['entries'] for w in s['workers'])")" -ge 1 ] || fail "a worker holds nothing"
CTL cache stats

echo "== purge one exact path"
A=$(count /day/api/a)
out=$(CTL cache purge /day/api/a) || fail "purge failed: $out"
echo "$out"
echo "$out" | grep -q "^/day/api/a: removed $A entries (worker 0: [0-9]*, worker 1: [0-9]*)$" ||
    fail "purge said '$out', want $A removed"
fetch /day/api/a 1
[ "$(count /day/api/a)" = $((A + 1)) ] || fail "the request after the purge was not a miss"
B=$(count /day/api/b); D=$(count /day/other/d)
fetch /day/api/b 6; fetch /day/other/d 6
[ "$(count /day/api/b)" = "$B" ] && [ "$(count /day/other/d)" = "$D" ] ||
    fail "other keys were purged too"
[ "$(js "s['total']['purged']")" = "$A" ] || fail "stats purged != $A"

echo "== purge a prefix; --host"
under=$(( 1 + $(count /day/api/b) + $(count /day/api/deep/c) ))
out=$(CTL cache purge '/day/api/*' --host elsewhere.example) || fail "purge failed: $out"
echo "$out"
echo "$out" | grep -q "removed 0 entries" || fail "another host's purge removed entries"
out=$(CTL cache purge '/day/api/*' --host 127.0.0.1) || fail "purge failed: $out"
echo "$out"
echo "$out" | grep -q "^/day/api/\* on host 127.0.0.1: removed $under entries" ||
    fail "prefix purge said '$out', want $under removed"
before=$(origin_total)
for k in /day/api/a /day/api/b /day/api/deep/c; do
    n=$(count "$k"); fetch "$k" 1
    [ "$(count "$k")" = $((n + 1)) ] || fail "$k was still cached after the prefix purge"
done
fetch /day/other/d 6
[ "$(count /day/other/d)" = "$D" ] || fail "/day/other/d was purged by /day/api/*"
[ "$(origin_total)" = $((before + 3)) ] || fail "origin counts moved unexpectedly"
[ "$(js "s['total']['purged']")" = $((A + under)) ] || fail "stats purged != $((A + under))"
[ "$(js "s['purges']")" = 3 ] || fail "stats purges != 3"
CTL cache purge '/day/api/*' --json | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert a["ok"] and a["prefix"] and a["path"] == "/day/api/" and a["workers"] == 2, a
assert a["applied"] == 2 and a["pending"] == 0 and sum(a["per_worker"]) == a["removed"], a
' || fail "purge --json"
curl -s --max-time 5 "http://127.0.0.1:$M/metrics" | grep -q '^lb_cache_purges_total 4$' ||
    fail "lb_cache_purges_total is not 4"
CTL cache stats

echo "== bad arguments"
bad() { # bad WANT_EXIT WORDS...
    want=$1; shift
    if out=$(CTL "$@" 2>&1); then fail "lbctl $* succeeded"; else rc=$?; fi
    [ "$rc" = "$want" ] || fail "lbctl $*: exit $rc, want $want"
    echo "lbctl $*: $(echo "$out" | head -1)"
}
bad 2 cache
bad 2 cache purge
bad 2 cache purge maxage/a
bad 2 cache purge '/a*b'
bad 2 cache purge /a /b
bad 2 cache purge /a --host 'bad host'
bad 2 cache stats --host x
bad 2 cache frob
bad 2 status --host x
# lb's own parser (lbctl checks first; a raw client does not).
raw() { python3 - "$T/lb.sock" "$1" <<'EOP'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode("latin-1") + b"\n")
print(s.makefile("rb").readline().decode().strip())
EOP
}
for line in "cache" "cache purge" "cache purge rel/path" "cache purge /a*b" "cache purge /a --host" \
    "cache purge /a --host b@d" "cache stats now" "cache purge /a /b" "cache purge $(printf '/\001')"; do
    a=$(raw "$line"); echo "'$line' -> $a"
    echo "$a" | grep -q '"ok":false,"error":"' || fail "lb accepted '$line': $a"
done
a=$(raw "cache stats"); echo "$a" | grep -q '"ok":true' || fail "raw cache stats: $a"
echo "PASS"
