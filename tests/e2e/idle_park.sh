# Idle keep-alive clients at rest (lb/http/park.c) with the real build/lb: a client idle
# between requests lives in a compact object and comes back whole for its next request.
#  - one keep-alive connection: a request, a pause of several ticks, more requests on the
#    same connection, all answered 200;
#  - per_ip_connections: 1 with timeouts.idle: 3s: a connection idle after its request is
#    closed by the idle timeout while parked, and that close gives its per-address count
#    back (a new connection from the same address is answered 200, not 429);
#  - a client that closes a parked connection is seen (the next connection works too).
. "$(dirname "$0")/lib.sh"
need python3
need_uring
A=$(free_port); L=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
cat >"$T/lb.yaml" <<EOC
global: { workers: 1, admin: { socket: $T/lb.sock } }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    timeouts: { idle: 3s }
    limits: { per_ip_connections: 1 }
    routes: [ { cluster: app } ]
clusters:
  app: { servers: [ { name: a, address: 127.0.0.1:$A } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
wait_port "$A"; wait_port "$L"
grep -q "not enforced" "$T/lb.log" && skip "this kernel cannot tell lb client addresses"

python3 - "$L" >"$T/park.out" 2>&1 <<'EOF_PY' || fail "idle park: $(cat "$T/park.out")"
import socket, sys, time
port = int(sys.argv[1])
REQ = b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n"

def answer(s):
    f = s.makefile("rb")
    head = []
    while True:
        line = f.readline()
        if not line:
            return None
        if line == b"\r\n":
            break
        head.append(line.decode().strip())
    hdrs = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    f.read(int(hdrs.get("content-length", "0")))
    return head[0]

def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=10)

# Requests on one connection with pauses of several 100 ms ticks between them.
s = conn()
for i in range(3):
    s.sendall(REQ)
    st = answer(s)
    assert st and st.startswith("HTTP/1.1 200"), "request %d: %s" % (i, st)
    time.sleep(0.3)
# Idle past timeouts.idle: lb closes it (bounded wait, no timing asserted).
s.settimeout(15)
assert s.recv(10) == b"", "the idle connection was not closed"
s.close()
# Its per-address count was given back: a new connection is served.
s = conn()
s.sendall(REQ)
st = answer(s)
assert st and st.startswith("HTTP/1.1 200"), "after the idle close: %s" % st
# The client closes a parked connection; a new one is served once lb has seen the close.
s.close()
for attempt in range(100):
    s = conn()
    s.sendall(REQ)
    st = answer(s)
    s.close()
    if st and st.startswith("HTTP/1.1 200"):
        break
    assert st and st.startswith("HTTP/1.1 429"), "after the client's close: %s" % st
    time.sleep(0.1)
else:
    raise AssertionError("the closed connection's count never came back")
print("ok")
EOF_PY
echo PASS
