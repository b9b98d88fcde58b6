# The L1 cache (route `cache: { ttl }`) with the real build/lb, nginx and the demo backend:
#  - a 200 GET without freshness information is fetched once and then answered from memory
#    until the route's ttl (the heuristic freshness) passes;
#  - Cache-Control no-store and private, and Set-Cookie, are never stored; the origin's
#    max-age wins over the route's ttl (max-age=2 rather than 1: Date has whole seconds, and a
#    second ticking between nginx's Date and lb's clock ages the answer by one);
#  - Vary: Accept-Encoding keeps one entry per variant;
#  - a burst of 1,000 concurrent clients on one cold key sends one request to the backend
#    (misses are coalesced), and every client gets the answer.
. "$(dirname "$0")/lib.sh"
need python3 curl nginx
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"

N=$(free_port); D=$(free_port); L=$(free_port)
mkdir -p "$T/nginx"
nginx_conf "$(cat <<EOC
    log_format uri '\$request_uri \$http_accept_encoding';
    access_log $T/nginx/access.log uri;
    server {
        listen 127.0.0.1:$N;
        location /plain { return 200 "plain \$msec\n"; }
        location /nostore { add_header Cache-Control no-store; return 200 "nostore \$msec\n"; }
        location /private { add_header Cache-Control "private, max-age=60"; return 200 "private \$msec\n"; }
        location /cookie { add_header Set-Cookie "a=b"; return 200 "cookie \$msec\n"; }
        location /short { add_header Cache-Control "max-age=2"; return 200 "short \$msec\n"; }
        location /vary { add_header Vary Accept-Encoding; return 200 "vary \$http_accept_encoding \$msec\n"; }
    }
EOC
)" >"$T/nginx.conf"
bg nginx nginx -c "$T/nginx.conf" -p "$T/nginx"
bg demo "$DEMO" -l "127.0.0.1:$D" -n d1 -c "$T/demo.count" -t 4
DEMOPID=$LAST_PID
cat >"$T/lb.yaml" <<EOC
global:
  workers: 1
  max_connections: 4000
  admin: { socket: $T/lb.sock }
  log: { level: info, access: $T/access.log }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    routes:
      - match: { path_prefix: /delay/ }
        cluster: demo
        cache: { ttl: 30s }
      - cluster: nginx
        cache: { ttl: 3s }
clusters:
  nginx:
    servers: [ { name: n1, address: 127.0.0.1:$N } ]
  demo:
    servers: [ { name: d1, address: 127.0.0.1:$D } ]
EOC
"$LB" -t -c "$T/lb.yaml" || fail "config rejected"
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$N"; wait_port "$D"; wait_port "$L"
U="http://127.0.0.1:$L"
seen() { grep -c "^$1 " "$T/nginx/access.log" || true; }
# nginx logs a request just after answering it: before counting, wait until the count has
# reached the value the test expects (a count that stays below it fails there, one that
# passes it fails at the check after).
seen_reaches() { [ "$(seen "$1")" -ge "$2" ]; }
logged() { wait_for 10 "nginx did not log $2 requests for $1" seen_reaches "$1" "$2"; }

echo "== fetched once, then from memory"
a=$(curl -s --max-time 5 "$U/plain"); b=$(curl -s --max-time 5 "$U/plain"); c=$(curl -s --max-time 5 "$U/plain")
echo "$a / $b / $c"
[ "$a" = "$b" ] && [ "$b" = "$c" ] || fail "answers differ: not served from the cache"
logged /plain 1
[ "$(seen /plain)" = 1 ] || fail "nginx saw $(seen /plain) requests for /plain, want 1"
grep -q 'target=/plain status=200 .*server=cache' "$T/access.log" || fail "no cache hit logged"

echo "== the route's ttl (3s) passes"
sleep 3.3
d=$(curl -s --max-time 5 "$U/plain")
[ "$d" != "$a" ] || fail "served after its ttl"
logged /plain 2
[ "$(seen /plain)" = 2 ] || fail "nginx saw $(seen /plain) requests after expiry, want 2"

echo "== never stored: no-store, private, Set-Cookie"
for p in /nostore /private /cookie; do
    curl -s --max-time 5 "$U$p" >/dev/null; curl -s --max-time 5 "$U$p" >/dev/null
    logged "$p" 2
    echo "$p: nginx saw $(seen $p)"
    [ "$(seen $p)" = 2 ] || fail "$p was cached"
done

echo "== max-age shorter than the ttl wins"
a=$(curl -s --max-time 5 "$U/short"); b=$(curl -s --max-time 5 "$U/short")
[ "$a" = "$b" ] || fail "/short not cached at all"
sleep 2.3
c=$(curl -s --max-time 5 "$U/short")
[ "$c" != "$a" ] || fail "/short served past its max-age=2"

echo "== Vary: one entry per Accept-Encoding"
g1=$(curl -s --max-time 5 -H 'Accept-Encoding: gzip' "$U/vary")
i1=$(curl -s --max-time 5 -H 'Accept-Encoding: identity' "$U/vary")
g2=$(curl -s --max-time 5 -H 'Accept-Encoding: gzip' "$U/vary")
i2=$(curl -s --max-time 5 -H 'Accept-Encoding: identity' "$U/vary")
echo "$g1 / $i1"
[ "$g1" = "$g2" ] && [ "$i1" = "$i2" ] && [ "$g1" != "$i1" ] || fail "Vary variants mixed up"
logged /vary 2
[ "$(seen /vary)" = 2 ] || fail "nginx saw $(seen /vary) requests for /vary, want 2"

echo "== 1,000 clients on one cold key: one backend request"
python3 - "$L" <<'EOF_PY' || fail "burst"
import socket, sys, threading
port = int(sys.argv[1])
n, ok, bad = 1000, [0], [0]
lock = threading.Lock()
conns = []
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    conns.append(c)
req = b"GET /delay/700 HTTP/1.1\r\nHost: t\r\n\r\n"
def run(c):
    try:
        c.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                break
            data += d
        good = data.startswith(b"HTTP/1.1 200")
    except OSError:
        good = False
    with lock:
        if good: ok[0] += 1
        else: bad[0] += 1
threads = [threading.Thread(target=run, args=(c,)) for c in conns]
for t in threads: t.start()
for t in threads: t.join(30)
print(f"clients={n} ok={ok[0]} failed={bad[0]}")
sys.exit(0 if ok[0] == n else 1)
EOF_PY
# The demo backend rewrites its count every 200 ms and once more when it stops: stop it and
# read the final count, rather than hoping a rewrite came after the last request.
stop "$DEMOPID"
[ "$STOP_RC" = 0 ] || fail "demo backend exited $STOP_RC"
count=$(cat "$T/demo.count" 2>/dev/null || echo "?")
echo "demo backend saw $count request(s)"
[ "$count" = 1 ] || fail "the burst sent $count requests to the backend, want 1"

echo "== SIGTERM"
stop "$LBPID"; rc=$STOP_RC
[ "$rc" = 0 ] || fail "lb exited $rc on SIGTERM"
echo "ok"
