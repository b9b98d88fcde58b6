#!/bin/sh
# Logs: rotation, JSON lines, request ids.
#  - X-Request-Id: a sane one from the client reaches the backend and comes back; a missing,
#    too long or non-ASCII one is replaced by a generated id (32 hex digits, different for every
#    request across both workers); the access log line carries the same id and the timings;
#  - log.format: json gives lines that python's json parses, with the fields documented;
#  - rotation while a python loop sends requests on 4 keep-alive connections (2 workers):
#    mv access.log and lb.log, SIGUSR1, and every answered request is logged exactly once
#    across the old and the new access log, the new one getting lines too; the error log
#    goes on in the new lb.log;
#  - a reload to log.format: text writes key=value lines with request_id and the timings.
. "$(dirname "$0")/lib.sh"
need curl python3
need_uring

L=$(free_port)
B=$(free_port)
M=$(free_port)

cat >"$T/backend.py" <<'EOF_PY'
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        rid = self.headers.get_all("X-Request-Id") or []
        body = ("|".join(rid) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF_PY
bg backend python3 "$T/backend.py" "$B"

conf() {
    cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
  metrics: { listen: 127.0.0.1:$M }
  log: { level: info, access: $T/access.log, format: $1 }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    routes:
      - cluster: app
clusters:
  app:
    servers:
      - { name: py, address: 127.0.0.1:$B }
EOC
}
conf json
"$LB" -t -c "$T/lb.yaml" >/dev/null || fail "config refused"
wait_port "$B"
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$L"

# ---- request ids ----
hdr() { curl -s -D - -o "$T/body" "$@" "http://127.0.0.1:$L/rid" | tr -d '\r'; }
hdr -H 'X-Request-Id: client-id_42.x' >"$T/h1"
[ "$(cat "$T/body")" = "client-id_42.x" ] || fail "backend saw '$(cat "$T/body")', not the client's id"
grep -qx 'X-Request-Id: client-id_42.x' "$T/h1" || fail "the client's id not echoed: $(cat "$T/h1")"

hdr >"$T/h2"
gen=$(cat "$T/body")
echo "$gen" | grep -Eqx '[0-9a-f]{32}' || fail "generated id '$gen' is not 32 hex digits"
grep -qx "X-Request-Id: $gen" "$T/h2" || fail "generated id not echoed: $(cat "$T/h2")"

long=$(python3 -c 'print("a" * 129)')
for bad in "$long" 'has space' "$(printf 'caf\303\251')"; do
    hdr -H "X-Request-Id: $bad" >"$T/h3"
    got=$(cat "$T/body")
    echo "$got" | grep -Eqx '[0-9a-f]{32}' || fail "id '$bad' was passed on as '$got'"
    [ "$got" != "$gen" ] || fail "the same id was generated twice"
done
ok128=$(python3 -c 'print("b" * 128)')
hdr -H "X-Request-Id: $ok128" >/dev/null
[ "$(cat "$T/body")" = "$ok128" ] || fail "a 128-byte id was not kept"
echo "ok: X-Request-Id kept when sane, generated otherwise, passed up and echoed"

# ---- JSON lines ----
logged() { [ "$(cat "$T"/access.log* 2>/dev/null | wc -l)" -ge "$1" ]; }
wait_for 10 "the 6 requests are not all in the access log" logged 6
python3 - "$T/access.log" "$gen" <<'EOF_PY' || fail "access log JSON check failed"
import json, re, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
recs = [json.loads(l) for l in lines]
need = {"ts", "request_id", "client", "method", "target", "status", "bytes_in", "bytes_out",
        "listener", "server", "connect_ms", "response_ms", "total_ms"}
for r in recs:
    missing = need - r.keys()
    assert not missing, "missing %s in %r" % (missing, r)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]), r["ts"]
    assert r["status"] == 200 and r["server"] == "py" and r["target"] == "/rid", r
    assert isinstance(r["connect_ms"], int) and isinstance(r["response_ms"], int), r
    assert r["total_ms"] >= r["response_ms"], r
ids = [r["request_id"] for r in recs]
assert "client-id_42.x" in ids and sys.argv[2] in ids, ids
assert len(set(ids)) == len(ids), "ids repeat: %r" % ids
EOF_PY
# An awkward target is escaped, and the line still parses.
curl -s -o /dev/null "http://127.0.0.1:$L/q?a=%22\"\\x" || true
wait_for 10 "the escaped request is not logged" logged 7
tail -n 1 "$T/access.log" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); assert r["target"] == "/q?a=%22\"\\x", r' ||
    fail "target not escaped: $(tail -n 1 "$T/access.log")"
# lb's own answers carry an id too: the same in the answer, the error log and the access log.
curl -s -D "$T/h4" -o /dev/null -H 'Transfer-Encoding: chunked' -H 'Content-Length: 5' \
    -H 'X-Request-Id: bad-framing-1' "http://127.0.0.1:$L/bad" || true
grep -q '^HTTP/1.1 400' "$T/h4" || fail "ambiguous framing was not answered 400: $(head -n 1 "$T/h4")"
own=$(tr -d '\r' <"$T/h4" | sed -n 's/^X-Request-Id: //p')
echo "$own" | grep -Eqx '[0-9a-f]{32}|bad-framing-1' || fail "lb's 400 has no request id: $(cat "$T/h4")"
wait_for 10 "the 400 is not in the access log" grep -q "\"request_id\":\"$own\".*\"status\":400" "$T/access.log"
wait_for 10 "the 400 is not in the error log with its id" grep -q "status=400 request_id=$own" "$T/lb.log"
echo "ok: JSON access log lines parse, with timestamp, request id and timings"

# ---- rotation under load ----
cat >"$T/load.py" <<'EOF_PY'
import http.client, os, sys, threading
port, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
done, lock, errors = [], threading.Lock(), []
def run(t):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while not os.path.exists(stop) and i < 200000:
        rid = "load-%d-%d" % (t, i)
        try:
            c.request("GET", "/load", headers={"X-Request-Id": rid})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                with lock:
                    done.append(rid)
        except Exception as e:  # count it, reconnect, go on: the check needs the answered ones
            errors.append(repr(e))
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i += 1
        if i % 50 == 0:
            with lock:
                open(out + ".count", "w").write(str(len(done)))
ts = [threading.Thread(target=run, args=(t,)) for t in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
open(out, "w").write("\n".join(done) + "\n")
print("answered", len(done), "errors", len(errors), errors[:3])
EOF_PY
bg load python3 "$T/load.py" "$L" "$T/stop" "$T/done"
LOADPID=$LAST_PID
sent_at_least() { [ "$(cat "$T/done.count" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_for 60 "the load did not get going" sent_at_least 300
mv "$T/access.log" "$T/access.log.1"
mv "$T/lb.log" "$T/lb.log.1"
kill -USR1 "$LBPID"
new_lines() { [ -s "$T/access.log" ] && [ "$(grep -c '"load-' "$T/access.log")" -ge 300 ]; }
wait_for 60 "no load lines in the new access log after SIGUSR1" new_lines
touch "$T/stop"
i=0
while kill -0 "$LOADPID" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 600 ] || fail "the load did not stop"
    sleep 0.1
done
wait "$LOADPID" || fail "the load failed"
cat "$T/load.log"
n=$(wc -l <"$T/done")
wait_for 20 "not every answered request is logged" \
    sh -c "[ \$(cat '$T/access.log' '$T/access.log.1' | grep -c '\"load-') -ge $n ]"
python3 - "$T/done" "$T/access.log.1" "$T/access.log" <<'EOF_PY' || fail "rotation check failed"
import collections, json, sys
done = open(sys.argv[1]).read().split()
seen = collections.Counter()
per_file = []
for f in sys.argv[2:]:
    k = 0
    for line in open(f, encoding="utf-8"):
        r = json.loads(line)  # a torn line would not parse
        if r["request_id"].startswith("load-"):
            seen[r["request_id"]] += 1
            k += 1
    per_file.append(k)
dups = [i for i, c in seen.items() if c > 1]
lost = [i for i in done if seen[i] == 0]
assert not dups, "logged twice: %r" % dups[:5]
assert not lost, "%d answered requests not logged: %r" % (len(lost), lost[:5])
assert all(per_file), "a file got no lines: %r" % per_file
print("rotation: %d requests, %d + %d lines" % (len(done), per_file[0], per_file[1]))
EOF_PY
grep -q 'SIGUSR1: logs reopened' "$T/lb.log" || fail "the error log did not move to the new lb.log"
echo "ok: SIGUSR1 reopened both logs under load, every request logged exactly once"

# ---- a reload to the text format ----
conf text
kill -HUP "$LBPID"
wait_for 20 "no reload" grep -q 'reloaded' "$T/lb.log"
text_line() {
    curl -s -o /dev/null -H 'X-Request-Id: text-1' "http://127.0.0.1:$L/t" &&
        grep -Eq " request_id=text-1 client=127.0.0.1 method=GET target=/t status=200 .* server=py connect_ms=[0-9]+ response_ms=[0-9]+ total_ms=[0-9]+$" "$T/access.log"
}
wait_for 20 "no text access line after the reload" text_line
echo "ok: log.format: text after a reload"
stop "$LBPID"
[ "$STOP_RC" = 0 ] || fail "lb exited with $STOP_RC"
echo "PASS"
