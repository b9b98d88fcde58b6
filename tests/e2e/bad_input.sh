# Bad input at every kind of listener, with the real build/lb: random bytes and mutated real
# requests (bits flipped, bytes cut, inserted and repeated) against an http listener, a TLS
# listener and a redis listener. Every connection must end in an answer, an error or a
# close within the listener's timeouts (no stall), lb must never crash, and a good request
# must work on each listener afterwards.
. "$(dirname "$0")/lib.sh"
need python3 curl openssl redis-server
need_uring
A=$(free_port); R=$(free_port); H=$(free_port); S=$(free_port); D=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
bg redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bad.test \
    -keyout "$T/k.pem" -out "$T/c.pem" >"$T/openssl.log" 2>&1 || fail "openssl"
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock } }
listeners:
  - { name: web, bind: 127.0.0.1:$H, timeouts: { header: 300ms, idle: 300ms, body: 300ms }, routes: [ { cluster: app } ] }
  - name: secure
    bind: 127.0.0.1:$S
    timeouts: { header: 300ms, idle: 300ms, body: 300ms }
    tls: { certificates: [ { cert: $T/c.pem, key: $T/k.pem } ] }
    routes: [ { cluster: app } ]
  - { name: cache, bind: 127.0.0.1:$D, protocol: redis, cluster: shards, timeouts: { idle: 300ms } }
clusters:
  app: { servers: [ { name: a, address: 127.0.0.1:$A } ] }
  shards: { balance: maglev, servers: [ { name: r, address: 127.0.0.1:$R } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
LB_PID=$LAST_PID
for p in $A $R $H $S $D; do wait_port "$p"; done

python3 - "$H" "$S" "$D" >"$T/bad.out" 2>&1 <<'EOF_PY' || fail "bad input: $(tail -5 "$T/bad.out")"
import random, socket, ssl, sys, time
http, tls, rds = (int(x) for x in sys.argv[1:4])
rng = random.Random(1234)
seeds = {
    "http": [b"GET /headers HTTP/1.1\r\nHost: a\r\n\r\n",
             b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
             b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
    "redis": [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
              b"MGET a b c\r\n", b"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"],
}
def mutate(b):
    b = bytearray(b)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[i:i + rng.randint(1, 8)]
        elif op == 2:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[min(i, j):max(i, j)] * rng.randint(1, 3)
        else:
            b[i:i] = rng.choice([b"\r\n", b"\n", b"\x00", b":", b"$-1\r\n", b"*99999999\r\n"])
    return bytes(b)
def inputs(kind):
    for _ in range(150):
        yield bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
    for _ in range(250):
        yield mutate(rng.choice(seeds[kind]))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def one(kind, port, wrap, data):
        t0 = time.time()
        answered = 0
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            if wrap:
                s = ctx.wrap_socket(s, server_hostname="bad.test")
            s.sendall(data)
            if data[-1:] == b"\n" and len(data) % 3 == 0:
                s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answered += 1
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            pass
        except socket.timeout:
            print("%s: a connection stalled past 10 s on %r" % (kind, data[:80]), flush=True)
            raise
        finally:
            s.close()
        return answered, time.time() - t0
def run(kind, port, wrap):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(32) as pool:
        res = list(pool.map(lambda d: one(kind, port, wrap, d), list(inputs(kind))))
    print("%s: %d connections ended (%d reads with data), slowest %.1f s"
          % (kind, len(res), sum(r[0] for r in res), max(r[1] for r in res)), flush=True)
run("http", http, False)
run("http", tls, True)
run("redis", rds, False)
EOF_PY
cat "$T/bad.out"
kill -0 "$LB_PID" || fail "lb died"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$H/headers")" = 200 ] || fail "http after"
[ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$S/headers")" = 200 ] || fail "https after"
[ "$(redis-cli -p "$D" ping)" = PONG ] || fail "redis after"
echo "ok: random and mutated input at http, TLS and redis listeners: every connection ended, lb serves on"
