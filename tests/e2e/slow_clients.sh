# Slow clients against the real build/lb (timeouts.header 1s, timeouts.body 2s):
#  - a header sent a byte at a time is answered 408 by the header timeout;
#  - a body sent a byte at a time is answered 408 once it falls behind timeouts.body plus a
#    second per KiB received, and lb logs it;
#  - a 20 MB upload at full speed and requests of other clients pass meanwhile;
#  - lb's client connection count returns to zero.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
A=$(free_port); L=$(free_port); MP=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock }, metrics: { listen: 127.0.0.1:$MP } }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    timeouts: { header: 1s, body: 2s }
    limits: { max_body_bytes: 64m }
    routes: [ { cluster: app } ]
clusters:
  app: { servers: [ { name: a, address: 127.0.0.1:$A } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
wait_port "$A"; wait_port "$L"

python3 - "$L" >"$T/slow.out" 2>&1 <<'EOF_PY' &
import socket, sys, time
port = int(sys.argv[1])
def status(s):
    s.settimeout(15)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        return "error %s" % e
    return data.split(b"\r\n")[0].decode()
# Header a byte at a time.
h = socket.create_connection(("127.0.0.1", port))
t0 = time.time()
for ch in b"GET /headers HTTP/1.1\r\nHost: x\r\n":
    try:
        h.send(bytes([ch]))
    except OSError:
        break
    time.sleep(0.1)
print("header", status(h), round(time.time() - t0, 1), flush=True)
# Body a byte at a time, after a fast header.
b = socket.create_connection(("127.0.0.1", port))
b.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
t0 = time.time()
sent = 0
b.setblocking(False)
while time.time() - t0 < 15:
    try:
        sent += b.send(b"x")
    except BlockingIOError:
        pass
    except OSError:
        break
    try:
        if b.recv(1, socket.MSG_PEEK):
            break
    except BlockingIOError:
        pass
    except OSError:
        break
    time.sleep(0.2)
b.setblocking(True)
print("body", status(b), sent, round(time.time() - t0, 1), flush=True)
EOF_PY
SLOW=$!
PIDS="$PIDS $SLOW"
# Meanwhile: a fast 20 MB upload and plain requests pass.
head -c 20000000 /dev/urandom >"$T/up.bin"
got=$(curl -s --data-binary @"$T/up.bin" -H 'Content-Type: application/octet-stream' \
    "http://127.0.0.1:$L/echo" | wc -c)
[ "$got" = 20000000 ] || fail "a fast upload came back with $got bytes"
for i in $(seq 20); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$L/headers")" = 200 ] ||
        fail "a normal request failed while slow clients wait"
done
wait "$SLOW" || fail "slow client script: $(cat "$T/slow.out")"
cat "$T/slow.out"
grep -q '^header HTTP/1.1 408 ' "$T/slow.out" || fail "slow header: $(cat "$T/slow.out")"
grep -q '^body HTTP/1.1 408 ' "$T/slow.out" || fail "slow body: $(cat "$T/slow.out")"
wait_for 10 "the slow body in the log" grep -q 'msg="request body too slow" listener=web' "$T/lb.log"
zero() {
    curl -s "http://127.0.0.1:$MP/metrics" |
        grep -q '^lb_listener_connections_active{listener="web",protocol="http"} 0$'
}
wait_for 10 "no client connection left" zero
echo "ok: slow header and slow body answered 408; a fast 20 MB upload and others passed"
