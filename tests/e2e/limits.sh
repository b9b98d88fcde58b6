# Per-address limits (listener `limits: { per_ip_connections, per_ip_rate }`) with the real
# build/lb: an http listener (3 connections, 20 requests/s per address) and a tcp listener
# (2 connections per address).
#  - http: a 4th connection's request is answered 429 with Retry-After and closed; once one
#    of the three closes, a new connection works;
#  - http: 60 requests as fast as one keep-alive connection can send them get some 429s
#    (Retry-After) and at most two seconds' worth of 200s, and the connection stays usable;
#  - other addresses (127.0.0.2) are not affected;
#  - tcp: a 3rd connection is closed before any server is asked;
#  - lb_listener_limited_total counts both reasons.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
A=$(free_port); L=$(free_port); LT=$(free_port); E=$(free_port); MP=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
bg echo python3 "$ROOT/tests/e2e/peer.py" echo "$E"
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock }, metrics: { listen: 127.0.0.1:$MP } }
listeners:
  - name: web
    bind: 0.0.0.0:$L
    limits: { per_ip_connections: 3, per_ip_rate: 20/s }
    routes: [ { cluster: app } ]
  - name: raw
    bind: 127.0.0.1:$LT
    protocol: tcp
    cluster: echo
    limits: { per_ip_connections: 2 }
clusters:
  app: { servers: [ { name: a, address: 127.0.0.1:$A } ] }
  echo: { servers: [ { name: e, address: 127.0.0.1:$E } ] }
EOC
"$LB" -t -c "$T/lb.yaml" >"$T/check.out" 2>&1 || fail "lb -t: $(cat "$T/check.out")"
bg lb "$LB" -c "$T/lb.yaml"
wait_port "$A"; wait_port "$E"; wait_port "$L"; wait_port "$LT"
grep -q "not enforced" "$T/lb.log" && skip "this kernel cannot tell lb client addresses"

python3 - "$L" "$LT" >"$T/limits.out" 2>&1 <<'EOF_PY' || fail "limits: $(cat "$T/limits.out")"
import socket, sys, time
port, tport = int(sys.argv[1]), int(sys.argv[2])
REQ = b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n"

def answer(s):
    """Status line and headers of one response (the demo's /headers body is skipped)."""
    f = s.makefile("rb")
    head = []
    while True:
        line = f.readline()
        if not line:
            return None, {}
        if line == b"\r\n":
            break
        head.append(line.decode().strip())
    hdrs = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    n = int(hdrs.get("content-length", "0"))
    f.read(n)
    return head[0], hdrs

def conn(src="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
    return s

held = [conn() for _ in range(3)]
for s in held:
    s.sendall(REQ)
    st, _ = answer(s)
    assert st.startswith("HTTP/1.1 200"), st
fourth = conn()
fourth.sendall(REQ)
st, h = answer(fourth)
assert st.startswith("HTTP/1.1 429"), st
assert h.get("retry-after") == "1", h
assert fourth.recv(10) == b"", "the 4th connection stays open"
other = conn("127.0.0.2")
other.sendall(REQ)
st, _ = answer(other)
assert st.startswith("HTTP/1.1 200"), "another address: %s" % st
held[0].close()
time.sleep(0.3)
again = conn()
again.sendall(REQ)
st, _ = answer(again)
assert st.startswith("HTTP/1.1 200"), "after one closed: %s" % st
print("connections ok")

# Rate: 60 requests on one connection, sent one after another as fast as they are answered.
time.sleep(1.1)
ok = limited = 0
t0 = time.time()
for _ in range(60):
    held[1].sendall(REQ)
    st, h = answer(held[1])
    if st.startswith("HTTP/1.1 200"):
        ok += 1
    elif st.startswith("HTTP/1.1 429") and h.get("retry-after") == "1":
        limited += 1
    else:
        raise SystemExit("unexpected %s" % st)
took = time.time() - t0
assert limited > 0, "no 429 in 60 requests (%.2fs)" % took
assert ok <= 20 * (int(took) + 2), "%d answered 200 in %.2fs" % (ok, took)
print("rate ok: %d 200, %d 429 in %.2fs" % (ok, limited, took))

# tcp: two connections echo, the third is closed at once.
t1 = socket.create_connection(("127.0.0.1", tport), timeout=10)
t2 = socket.create_connection(("127.0.0.1", tport), timeout=10)
for t in (t1, t2):
    t.sendall(b"ping")
    assert t.recv(10) == b"ping"
t3 = socket.create_connection(("127.0.0.1", tport), timeout=10)
try:
    t3.sendall(b"ping")
    got = t3.recv(10)
except ConnectionResetError:
    got = b""
assert got == b"", "the 3rd tcp connection echoed %r" % got
print("tcp ok")
EOF_PY
cat "$T/limits.out"
curl -s "http://127.0.0.1:$MP/metrics" >"$T/metrics.out"
grep -q '^lb_listener_limited_total{listener="web",reason="connections"} [1-9]' "$T/metrics.out" ||
    fail "metrics: $(grep limited "$T/metrics.out")"
grep -q '^lb_listener_limited_total{listener="web",reason="rate"} [1-9]' "$T/metrics.out" ||
    fail "metrics: $(grep limited "$T/metrics.out")"
grep -q '^lb_listener_limited_total{listener="raw",reason="connections"} 1$' "$T/metrics.out" ||
    fail "metrics: $(grep limited "$T/metrics.out")"
echo "ok: per-address connection and rate limits on http (429, Retry-After) and tcp (close)"
