# Static snapshots served by the real build/lb from memory, checked with curl:
#  - 200 with Content-Type, ETag, Last-Modified, Cache-Control; HEAD without a body;
#  - If-None-Match and If-Modified-Since give 304; a single Range gives 206, a range past
#    the end 416; POST gives 405 with Allow;
#  - a .gz sibling is served to clients that accept gzip, with Vary;
#  - index.html answers for its directory;
#  - a miss goes to the set's fallback cluster; a set without fallback answers 404;
#  - dot segments and percent-encoded escapes never leave the set;
#  - lbctl snapshots reload [SET]; a load that fails (file over max_file_size) keeps the
#    published set and says which file;
#  - republishing (SIGHUP) under continuous load: no failed request, and every answer is
#    wholly the old or wholly the new version of the file, never a mix.
. "$(dirname "$0")/lib.sh"
need python3 curl gzip
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"

mkdir -p "$T/snap/sub" "$T/plain"
printf '{"price": 10}\n' >"$T/snap/a.json"
printf '<h1>sub index</h1>\n' >"$T/snap/sub/index.html"
python3 -c 'print("[" + ",".join(["1234567"] * 300) + "]")' >"$T/snap/big.json"
gzip -k -9 "$T/snap/big.json"
printf 'v1' >"$T/plain/only.txt"
# The file republished under load: 2.4 KiB of one digit, so a mix of versions shows.
python3 -c 'import sys; sys.stdout.write("1" * 2400)' >"$T/snap/ver.json"

A=$(free_port); L=$(free_port)
bg app "$DEMO" -l "127.0.0.1:$A" -n app1
cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
  log: { level: info }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    routes:
      - match: { path_prefix: /s/ }
        static: catalog
      - match: { path_prefix: /p/ }
        static: plain
      - cluster: app
clusters:
  app:
    servers: [ { name: app1, address: 127.0.0.1:$A } ]
static:
  catalog: { dir: $T/snap, fallback: app }
  plain: { dir: $T/plain, max_file_size: 50 }
EOC
"$LB" -t -c "$T/lb.yaml" || fail "config rejected"
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$A"; wait_port "$L"
U="http://127.0.0.1:$L"

hdrs() { curl -s --max-time 5 -D - -o /dev/null "$@" | tr -d '\r'; }
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }

echo "== 200 with validators"
h=$(hdrs "$U/s/a.json")
echo "$h"
echo "$h" | head -1 | grep -q ' 200 ' || fail "not 200"
echo "$h" | grep -q '^Content-Type: application/json' || fail "Content-Type"
echo "$h" | grep -q '^Content-Length: 14$' || fail "Content-Length"
echo "$h" | grep -q '^Cache-Control: max-age=' || fail "Cache-Control"
etag=$(echo "$h" | sed -n 's/^ETag: //p')
lm=$(echo "$h" | sed -n 's/^Last-Modified: //p')
[ -n "$etag" ] && [ -n "$lm" ] || fail "ETag or Last-Modified missing"
[ "$(curl -s --max-time 5 "$U/s/a.json")" = '{"price": 10}' ] || fail "body"

echo "== HEAD, conditionals, ranges, methods"
[ "$(curl -s --max-time 5 -I "$U/s/a.json" -o /dev/null -w '%{size_download}')" = 0 ] ||
    fail "HEAD carried a body"
[ "$(code -H "If-None-Match: $etag" "$U/s/a.json")" = 304 ] || fail "If-None-Match"
[ "$(code -H 'If-None-Match: "other"' "$U/s/a.json")" = 200 ] || fail "If-None-Match other"
[ "$(code -H "If-Modified-Since: $lm" "$U/s/a.json")" = 304 ] || fail "If-Modified-Since"
[ "$(curl -s --max-time 5 -H 'Range: bytes=2-6' "$U/s/a.json")" = 'price' ] || fail "Range body"
[ "$(code -H 'Range: bytes=2-6' "$U/s/a.json")" = 206 ] || fail "Range status"
[ "$(code -H 'Range: bytes=100-' "$U/s/a.json")" = 416 ] || fail "unsatisfiable range"
h=$(hdrs -X POST -d x "$U/s/a.json")
echo "$h" | head -1 | grep -q ' 405 ' || fail "POST: $h"
echo "$h" | grep -q '^Allow: GET, HEAD' || fail "405 without Allow"

echo "== gzip sibling"
h=$(hdrs -H 'Accept-Encoding: gzip' "$U/s/big.json")
echo "$h" | grep -q '^Content-Encoding: gzip' || fail "gzip not chosen: $h"
echo "$h" | grep -q '^Vary: Accept-Encoding' || fail "Vary missing"
curl -s --max-time 5 -H 'Accept-Encoding: gzip' "$U/s/big.json" | gunzip | cmp - "$T/snap/big.json" ||
    fail "gzip body differs"
h=$(hdrs -H 'Accept-Encoding: gzip;q=0' "$U/s/big.json")
echo "$h" | grep -q '^Content-Encoding' && fail "gzip sent to a client that refused it"

echo "== index.html, fallback, 404"
[ "$(curl -s --max-time 5 "$U/s/sub/")" = '<h1>sub index</h1>' ] || fail "index.html"
[ "$(curl -s --max-time 5 "$U/s/missing.json")" = app1 ] || fail "fallback cluster"
[ "$(code "$U/p/missing.txt")" = 404 ] || fail "no fallback: want 404"
[ "$(curl -s --max-time 5 "$U/p/only.txt")" = v1 ] || fail "second set"

echo "== escapes stay inside the set"
for p in '/s/../../../../etc/passwd' '/s/%2e%2e/%2e%2e/%2e%2e/etc/passwd' '/s/sub/..%2f..%2f..%2fetc/passwd' \
         '/s/%252e%252e/etc/passwd' '/s/a.json%00.html' '/s/./sub/../a.json'; do
    body=$(curl -s --max-time 5 --path-as-is "$U$p")
    c=$(curl -s --max-time 5 --path-as-is -o /dev/null -w '%{http_code}' "$U$p")
    echo "$p -> $c"
    case "$body" in *root:*) fail "$p served a file outside the set" ;; esac
done
[ "$(curl -s --max-time 5 --path-as-is "$U/s/./sub/../a.json")" = '{"price": 10}' ] ||
    fail "dot segments inside the set not resolved"

echo "== republish under load"
python3 - "$L" "$LBPID" "$T/snap" >"$T/republish.out" <<'EOF_PY' || { cat "$T/republish.out"; fail "republish"; }
import http.client, os, signal, sys, threading, time
port, lbpid, snap = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
stop = time.monotonic() + 4
stats = {"ok": 0, "bad": 0, "mixed": 0, "versions": set()}
lock = threading.Lock()
def client():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while time.monotonic() < stop:
        try:
            conn.request("GET", "/s/ver.json")
            r = conn.getresponse()
            body = r.read()
            with lock:
                if r.status != 200 or len(body) != 2400:
                    stats["bad"] += 1
                elif len(set(body)) != 1:
                    stats["mixed"] += 1
                else:
                    stats["ok"] += 1
                    stats["versions"].add(body[:1].decode())
        except Exception:
            with lock:
                stats["bad"] += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
threads = [threading.Thread(target=client) for _ in range(8)]
for t in threads: t.start()
v = 1
while time.monotonic() < stop - 0.5:
    time.sleep(0.25)
    v = v % 9 + 1
    tmp = os.path.join(snap, ".ver.tmp")
    with open(tmp, "w") as f:
        f.write(str(v) * 2400)
    os.rename(tmp, os.path.join(snap, "ver.json"))
    os.kill(lbpid, signal.SIGHUP)
for t in threads: t.join()
print(f"ok={stats['ok']} bad={stats['bad']} mixed={stats['mixed']} versions_seen={len(stats['versions'])}")
sys.exit(0 if stats["bad"] == 0 and stats["mixed"] == 0 and len(stats["versions"]) > 2 else 1)
EOF_PY
cat "$T/republish.out"
[ "$(grep -c 'msg="snapshots loaded" set=catalog' "$T/lb.log")" -gt 2 ] || fail "no reload logged"

echo "== lbctl snapshots reload"
printf 'v2' >"$T/plain/only.txt"
"$LBCTL" -s "$T/lb.sock" snapshots reload plain || fail "lbctl snapshots reload plain"
[ "$(curl -s --max-time 5 "$U/p/only.txt")" = v2 ] || fail "plain not republished"
"$LBCTL" -s "$T/lb.sock" snapshots reload nosuch >"$T/ctl.out" 2>&1 && fail "unknown set accepted"
grep -q 'no snapshot set named nosuch' "$T/ctl.out" || { cat "$T/ctl.out"; fail "unknown set: no names"; }
echo "== a failed load keeps the published set"
python3 -c 'import sys; sys.stdout.write("x" * 100)' >"$T/plain/huge.txt"
printf 'v3' >"$T/plain/only.txt"
"$LBCTL" -s "$T/lb.sock" snapshots reload plain >"$T/ctl.out" 2>&1 && fail "an oversized file was accepted"
cat "$T/ctl.out"
grep -q 'huge.txt' "$T/ctl.out" || fail "the failure does not name the file"
[ "$(curl -s --max-time 5 "$U/p/only.txt")" = v2 ] || fail "the old set was not kept"

echo "== SIGTERM"
stop "$LBPID"; rc=$STOP_RC
[ "$rc" = 0 ] || fail "lb exited $rc on SIGTERM"
echo "ok"
