#!/bin/sh
# End-to-end test of build/demo-backend itself. Every proxy e2e test trusts this origin, so it
# is checked on its own first, with real clients:
#   - each endpoint: /, unknown paths, /healthz (file toggle and /admin/health/down|up),
#     /status/NNN, /delay/MS (and that a delayed answer does not hold up other connections),
#     /bytes/N and /chunked/N (exact deterministic content), /echo (Content-Length and
#     chunked uploads, any method), /headers, /stats
#   - keep-alive: one curl invocation fetching several URLs uses one connection
#   - pipelining: three requests in one write are answered in order
#   - bad input (garbage, missing Host, smuggling-style framing) gets 4xx + close, and the
#     process keeps serving
#   - wrk -t1 -c16 -d2s finishes with zero errors (speed is not asserted)
#   - SIGTERM: exit 0 and the counter file (-c) holds the final request count
. "$(dirname "$0")/lib.sh"
need curl wrk python3
[ -x "$DEMO" ] || fail "$DEMO is not built (run make)"

port=$(free_port)
down="$T/down"
bg app1 "$DEMO" -l "127.0.0.1:$port" -n app1 -c "$T/count" -H "$down"
pid=$LAST_PID
wait_port "$port"
U="http://127.0.0.1:$port"

# expect WHAT GOT WANT
expect() {
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
    echo "ok   $1"
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# --- plain endpoints
expect "/ body" "$(curl -s "$U/")" "app1"
xs=$(curl -s -D - -o /dev/null "$U/" | tr -d '\r' | sed -n 's/^X-Server: //p')
expect "/ X-Server" "$xs" app1
expect "unknown path" "$(curl -s "$U/no/such/path?q=1")" "app1"
expect "HEAD has no body" "$(curl -s -I "$U/" | tr -d '\r' | sed -n 's/^Content-Length: //p')" 5

# --- health: file toggle, then the admin endpoints
expect "/healthz up" "$(code "$U/healthz")" 200
expect "/healthz body" "$(curl -s "$U/healthz")" "ok"
touch "$down"
expect "/healthz with -H file" "$(code "$U/healthz")" 500
rm -f "$down"
expect "/healthz file gone" "$(code "$U/healthz")" 200
curl -s -X POST "$U/admin/health/down" >/dev/null
expect "/healthz after admin down" "$(code "$U/healthz")" 500
curl -s "$U/admin/health/up" >/dev/null
expect "/healthz after admin up" "$(code "$U/healthz")" 200

# --- status
expect "/status/503" "$(code "$U/status/503")" 503
expect "/status/204" "$(code "$U/status/204")" 204
expect "/status/404" "$(code "$U/status/404")" 404
expect "/status/99 is refused" "$(code "$U/status/99")" 400

# --- delay: takes at least MS, and does not block another connection meanwhile
t0=$(date +%s%N)
expect "/delay/300 body" "$(curl -s "$U/delay/300")" "app1"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -ge 290 ] || fail "/delay/300 answered after ${ms}ms"
echo "ok   /delay/300 took ${ms}ms"
curl -s "$U/delay/1500" >"$T/slow.out" &
slow=$!
sleep 0.2
t0=$(date +%s%N)
curl -s "$U/" >/dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 1000 ] || fail "a request waited ${ms}ms behind another connection's /delay"
echo "ok   / answered in ${ms}ms while a /delay/1500 was pending"
wait "$slow"
expect "the delayed answer arrived" "$(cat "$T/slow.out")" "app1"

# --- generated bodies: byte i is PATTERN[i % 64]
python3 -c '
import sys
p = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n"
n = int(sys.argv[1])
sys.stdout.buffer.write((p * (n // 64 + 1))[:n])' 100000 >"$T/want.bin"
curl -s -o "$T/bytes.bin" "$U/bytes/100000"
cmp -s "$T/bytes.bin" "$T/want.bin" || fail "/bytes/100000 content differs"
echo "ok   /bytes/100000 content"
hdrs=$(curl -s -D - -o "$T/chunked.bin" "$U/chunked/100000" | tr -d '\r')
echo "$hdrs" | grep -qi '^Transfer-Encoding: chunked$' || fail "/chunked is not chunked: $hdrs"
cmp -s "$T/chunked.bin" "$T/want.bin" || fail "/chunked/100000 content differs"
echo "ok   /chunked/100000 content and framing"
expect "/bytes/0 length" "$(curl -s "$U/bytes/0" | wc -c)" 0
expect "/chunked/0 length" "$(curl -s "$U/chunked/0" | wc -c)" 0

# --- echo: Content-Length and chunked uploads, other methods
head -c 300000 /dev/urandom >"$T/up.bin"
curl -s --data-binary @"$T/up.bin" -o "$T/echo1.bin" "$U/echo"
cmp -s "$T/up.bin" "$T/echo1.bin" || fail "/echo with Content-Length differs"
echo "ok   /echo Content-Length upload (300000 bytes)"
curl -s -H 'Transfer-Encoding: chunked' --data-binary @"$T/up.bin" -o "$T/echo2.bin" "$U/echo"
cmp -s "$T/up.bin" "$T/echo2.bin" || fail "/echo with a chunked upload differs"
echo "ok   /echo chunked upload"
expect "/echo with PUT" "$(curl -s -X PUT --data-binary 'put body' "$U/echo")" "put body"
expect "/echo without a body" "$(curl -s "$U/echo" | wc -c)" 0

# --- headers: the request head as received
h=$(curl -s -H 'X-Forwarded-For: 192.0.2.7' -H 'Via: 1.1 test' "$U/headers" | tr -d '\r')
echo "$h" | grep -q '^GET /headers HTTP/1.1$' || fail "/headers lacks the request line: $h"
echo "$h" | grep -q '^X-Forwarded-For: 192.0.2.7$' || fail "/headers lacks X-Forwarded-For: $h"
echo "$h" | grep -q '^Via: 1.1 test$' || fail "/headers lacks Via: $h"
echo "ok   /headers"

# --- keep-alive: five URLs in one curl invocation share one connection
stats=$(curl -s "$U/stats" "$U/" "$U/a" "$U/b" "$U/stats")
first=$(echo "$stats" | head -n 1)
last=$(echo "$stats" | tail -n 1)
field() { echo "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
expect "stats name" "$(field "$first" name)" app1
expect "connections during one curl" "$(field "$last" connections)" "$(field "$first" connections)"
expect "requests during one curl" "$(field "$last" requests)" $(( $(field "$first" requests) + 4 ))

# --- pipelining and bad input, on raw sockets
python3 - "$port" <<'EOF' || fail "raw socket checks"
import re, socket, sys
port = int(sys.argv[1])

def talk(data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d

r = talk(b"GET /delay/100 HTTP/1.1\r\nHost: t\r\n\r\n"
         b"GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\n"
         b"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz")
codes = re.findall(rb"HTTP/1\.1 (\d{3}) ", r)
assert codes == [b"200", b"201", b"200"], codes
assert r.endswith(b"xyz"), r
print("ok   pipelined requests answered in order")

bad = {
    b"GARBAGE\r\n\r\n": b"400",
    b"GET / HTTP/1.1\r\n\r\n": b"400",  # no Host
    b"GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n": b"400",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n": b"400",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 2\r\n\r\nab": b"400",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n": b"400",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03": b"400",  # a TLS hello
    b"GET / HTTP/9.9\r\nHost: t\r\n\r\n": b"505",
}
for req, want in bad.items():
    r = talk(req)
    line = r.split(b"\r\n")[0]
    assert line.startswith(b"HTTP/1.1 " + want), (req, r)
    assert b"\r\nConnection: close\r\n" in r, (req, r)
print("ok   bad requests get 4xx/5xx and a close")
EOF
kill -0 "$pid" 2>/dev/null || fail "demo-backend died"
expect "still serving after bad input" "$(curl -s "$U/")" "app1"

# --- load: zero errors; the rate is printed, not asserted
wrk -t1 -c16 -d2s "$U/" >"$T/wrk.log" 2>&1 || fail "wrk failed: $(cat "$T/wrk.log")"
cat "$T/wrk.log"
grep -q 'requests in' "$T/wrk.log" || fail "wrk printed no result"
! grep -Eq 'Socket errors|Non-2xx' "$T/wrk.log" || fail "wrk saw errors"
echo "ok   wrk -t1 -c16 -d2s without errors"

# --- SIGTERM: clean exit, final count written
n=$(field "$(curl -s "$U/stats")" requests)
stop "$pid"
expect "exit status after SIGTERM" "$STOP_RC" 0
expect "counter file" "$(cat "$T/count")" "$n"
echo "PASS"
