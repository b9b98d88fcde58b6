# L7 (protocol: http) end to end, with the real build/lb, nginx and our demo backend as
# origins, curl and python clients:
#  - keep-alive to clients and pooled connections to backends: 300 requests over one
#    client connection reach nginx over at most a handful of connections;
#  - X-Forwarded-For, X-Forwarded-Proto and Via added, hop-by-hop fields removed;
#  - routing by host, path prefix and method (404, 405 with Allow);
#  - hash_key header stickiness on maglev;
#  - 10 MiB download and upload (Content-Length and chunked) byte for byte;
#  - chunked responses; pipelined requests answered in order; Expect: 100-continue;
#  - WebSocket echo through lb after 101;
#  - every error lb answers itself: 400 (ambiguous framing), 408, 413, 414, 431, 501,
#    505, 502 (refused connect, malformed responses), 503 (no usable server), 504;
#  - SIGTERM: lb exits 0.
. "$(dirname "$0")/lib.sh"
need python3 curl nginx
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"
HC="python3 $ROOT/tests/e2e/httpc.py"

N1=$(free_port); N2=$(free_port); D1=$(free_port); D2=$(free_port); WS=$(free_port)
BAD1=$(free_port); BAD2=$(free_port); BAD3=$(free_port); BAD4=$(free_port); DEAD=$(free_port)
SLOW=$(free_port); L=$(free_port); LE=$(free_port)

mkdir -p "$T/www" "$T/nginx"
head -c 10485760 /dev/urandom >"$T/www/big.bin"
nginx_conf "$(cat <<EOC
    log_format conn '\$connection \$request_uri';
    access_log $T/nginx/access.log conn;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$N1;
        location / { return 200 "n1\n"; }
        location /big.bin { root $T/www; }
        location /hdr { return 200 "xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto via=\$http_via conn=\$http_connection te=\$http_te ka=\$http_keep_alive custom=\$http_x_custom\n"; }
    }
    server {
        listen 127.0.0.1:$N2;
        location / { return 200 "n2\n"; }
    }
EOC
)" >"$T/nginx.conf"
bg nginx nginx -c "$T/nginx.conf" -p "$T/nginx"
bg d1 "$DEMO" -l "127.0.0.1:$D1" -n d1
bg d2 "$DEMO" -l "127.0.0.1:$D2" -n d2
bg slow "$DEMO" -l "127.0.0.1:$SLOW" -n slow
bg ws $HC ws-server "$WS"
bg bad1 $HC bad-backend "$BAD1" garbage
bg bad2 $HC bad-backend "$BAD2" both-cl-te
bg bad3 $HC bad-backend "$BAD3" body-on-204
bg bad4 $HC bad-backend "$BAD4" huge-header

cat >"$T/lb.yaml" <<EOC
global:
  workers: 1
  admin: { socket: $T/lb.sock }
  log: { level: info, access: $T/access.log }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    timeouts: { header: 1s, idle: 30s }
    limits: { max_header_bytes: 16k, max_body_bytes: 20m }
    routes:
      - match: { host: api.test }
        cluster: api
      - match: { path_prefix: /demo/ }
        cluster: demo
      - match: { path_prefix: /echo }
        cluster: demo
      - match: { path_prefix: /chunked/ }
        cluster: demo
      - match: { path_prefix: /sticky/ }
        cluster: sticky
        hash_key: header:X-User
      - match: { path_prefix: /ws }
        cluster: ws
      - match: { path_prefix: /bad/garbage }
        cluster: bad1
      - match: { path_prefix: /bad/both }
        cluster: bad2
      - match: { path_prefix: /bad/204 }
        cluster: bad3
      - match: { path_prefix: /bad/huge }
        cluster: bad4
      - match: { path_prefix: /dead }
        cluster: dead
      - match: { host: slow.test }
        cluster: slow
      - match: { host: one.test }
        cluster: one
      - match: { path_prefix: /small/ }
        cluster: demo
      - match: { path_prefix: / }
        cluster: nginx
  - name: strict
    bind: 127.0.0.1:$LE
    protocol: http
    limits: { max_body_bytes: 1k }
    routes:
      - match: { path_prefix: /only/ }
        cluster: demo
      - match: { path_prefix: /ro/, methods: [GET, HEAD] }
        cluster: nginx
clusters:
  nginx:
    servers: [ { name: n1, address: 127.0.0.1:$N1 } ]
  api:
    servers: [ { name: n2, address: 127.0.0.1:$N2 } ]
  demo:
    servers: [ { name: d1, address: 127.0.0.1:$D1 } ]
  sticky:
    balance: maglev
    servers:
      - { name: d1, address: 127.0.0.1:$D1 }
      - { name: d2, address: 127.0.0.1:$D2 }
  ws:
    servers: [ { name: w1, address: 127.0.0.1:$WS } ]
  bad1:
    retries: 0
    servers: [ { name: bad1, address: 127.0.0.1:$BAD1 } ]
  bad2:
    retries: 0
    servers: [ { name: bad2, address: 127.0.0.1:$BAD2 } ]
  bad3:
    retries: 0
    servers: [ { name: bad3, address: 127.0.0.1:$BAD3 } ]
  bad4:
    retries: 0
    servers: [ { name: bad4, address: 127.0.0.1:$BAD4 } ]
  dead:
    retries: 1
    servers: [ { name: dead, address: 127.0.0.1:$DEAD } ]
  slow:
    timeouts: { response: 1s }
    servers: [ { name: slow, address: 127.0.0.1:$SLOW } ]
  one:
    max_connections_per_server: 1
    servers: [ { name: slow1, address: 127.0.0.1:$SLOW } ]
EOC
"$LB" -t -c "$T/lb.yaml" || fail "config rejected"
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
for p in $N1 $N2 $D1 $D2 $SLOW $WS $BAD1 $BAD2 $BAD3 $BAD4 $L $LE; do wait_port "$p"; done
U="http://127.0.0.1:$L"

echo "== keep-alive both ways: 300 requests on one client connection"
urls=""
for i in $(seq 1 300); do urls="$urls $U/ka?i=$i"; done
# shellcheck disable=SC2086
out=$(curl -s --max-time 30 $urls | sort | uniq -c)
echo "$out"
[ "$out" = "    300 n1" ] || fail "keep-alive requests failed"
# nginx logs a request after answering it: wait for all 300 lines rather than a while.
ka_logged() { [ "$(grep -c ' /ka?i=' "$T/nginx/access.log" || true)" -ge 300 ]; }
wait_for 10 "nginx did not log the 300 keep-alive requests" ka_logged
conns=$(grep -c ' /ka?i=' "$T/nginx/access.log" || true)
distinct=$(grep ' /ka?i=' "$T/nginx/access.log" | cut -d' ' -f1 | sort -u | wc -l)
echo "nginx saw $conns requests on $distinct connections"
[ "$conns" = 300 ] || fail "nginx saw $conns requests, want 300"
[ "$distinct" -le 2 ] || fail "backend connections not reused: $distinct for 300 requests"

echo "== forwarded headers, hop-by-hop removed"
out=$(curl -s --max-time 5 -H "Connection: keep-alive, X-Custom" -H "X-Custom: secret" \
      -H "Keep-Alive: timeout=5" -H "TE: trailers" -H "X-Forwarded-For: 10.1.1.1" "$U/hdr")
echo "$out"
[ "$out" = "xff=10.1.1.1, 127.0.0.1 proto=http via=1.1 lb conn= te= ka= custom=" ] ||
    fail "forwarded headers wrong"

echo "== routing: host, path prefix, method"
[ "$(curl -s --max-time 5 -H 'Host: api.test' "$U/")" = n2 ] || fail "host route"
[ "$(curl -s --max-time 5 -H 'Host: API.TEST:8080' "$U/")" = n2 ] || fail "host route, case and port"
[ "$(curl -s --max-time 5 "$U/demo/")" = d1 ] || fail "path route"
[ "$(curl -s --max-time 5 "http://127.0.0.1:$LE/ro/x")" = n1 ] || fail "GET on a GET-only route"
out=$(curl -s --max-time 5 -o /dev/null -D - -X POST -d x "http://127.0.0.1:$LE/ro/x" | tr -d '\r')
echo "$out" | head -1 | grep -q ' 405 ' || fail "POST on a GET-only route: $out"
echo "$out" | grep -q '^Allow: GET, HEAD$' || fail "405 without Allow: $out"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LE/elsewhere")
[ "$code" = 404 ] || fail "no route: got $code, want 404"

echo "== hash_key header stickiness (maglev)"
for u in alice bob carol dave erin frank; do
    s=$(for i in 1 2 3 4 5 6 7 8; do curl -s --max-time 5 -H "X-User: $u" "$U/sticky/"; done | sort -u)
    echo "$u -> $s"
    [ "$(echo "$s" | wc -l)" = 1 ] || fail "user $u moved between servers: $s"
    echo "$s" >>"$T/sticky"
done
[ "$(sort -u "$T/sticky" | wc -l)" = 2 ] || fail "six users all landed on one server"

echo "== lbctl explain says where a request goes"
for u in alice bob carol; do
    got=$(curl -s --max-time 5 -H "X-User: $u" "$U/sticky/")
    said=$("$LBCTL" -s "$T/lb.sock" explain GET "http://127.0.0.1/sticky/" X-User: "$u")
    echo "$u -> $got; explain: $said"
    case "$said" in *"route 4 "*"cluster sticky (maglev, key header:X-User=$u): server $got,"*) ;;
        *) fail "explain disagrees with where $u went ($got)" ;; esac
done
said=$("$LBCTL" -s "$T/lb.sock" explain POST http://127.0.0.1:$LE/ro/x)
echo "$said" | grep -q 'strict (127.0.0.1:'"$LE"'): no route: lb answers 405' || fail "explain 405: $said"
"$LBCTL" -s "$T/lb.sock" --json explain GET /nothing-here >"$T/explain.json" || fail "explain --json"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["ok"] and v["listeners"]' "$T/explain.json" ||
    fail "explain --json is not the expected JSON"
# What lb answers itself before any server explain says too, with the same Allow and close
# (both ask route_decide).
explain_answer() { # LISTENER ARGS...: "answer allow close route cluster" of that listener
    l=$1; shift
    "$LBCTL" -s "$T/lb.sock" --json explain "$@" | python3 -c '
import json, sys
x = [x for x in json.load(sys.stdin)["listeners"] if x["listener"] == sys.argv[1]][0]
print(x.get("answer"), x.get("allow"), x.get("close"), x.get("route"), x.get("cluster"))' "$l"
}
said=$(explain_answer strict POST "http://127.0.0.1:$LE/only/" Content-Length: 2000)
echo "explain 413: $said"
[ "$said" = "413 None True 0 demo" ] || fail "explain 413: $said"
# (CONNECT's 405 is in tests/unit/test_route.c: lbctl's URL cannot be authority-form.)
said=$(explain_answer strict PUT "http://127.0.0.1:$LE/ro/x" Content-Length: 5)
echo "explain 405: $said"
[ "$said" = "405 GET, HEAD True None None" ] || fail "explain 405: $said"

echo "== 10 MiB download and upload"
curl -s --max-time 30 -o "$T/down.bin" "$U/big.bin" || fail "download failed"
cmp "$T/down.bin" "$T/www/big.bin" || fail "download corrupted"
out=$(curl -s --max-time 30 --data-binary @"$T/www/big.bin" "$U/echo" | sha256sum)
[ "$out" = "$(sha256sum <"$T/www/big.bin")" ] || fail "Content-Length upload corrupted"
out=$(curl -s --max-time 30 -H 'Transfer-Encoding: chunked' --data-binary @"$T/www/big.bin" \
      "$U/echo" | sha256sum)
[ "$out" = "$(sha256sum <"$T/www/big.bin")" ] || fail "chunked upload corrupted"
n=$(curl -s --max-time 30 "$U/chunked/1000000" | wc -c)
[ "$n" = 1000000 ] || fail "chunked download: $n bytes, want 1000000"
out=$(curl -s --max-time 10 -H 'Expect: 100-continue' --data-binary @"$T/www/big.bin" \
      "$U/echo" | sha256sum)
[ "$out" = "$(sha256sum <"$T/www/big.bin")" ] || fail "upload with Expect: 100-continue"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -I "$U/big.bin")
[ "$code" = 200 ] || fail "HEAD: $code"

echo "== pipelining"
out=$($HC pipeline "$L" 20) || fail "pipelined requests: $out"
echo "$out"

echo "== WebSocket through lb"
$HC ws-client "$L" 30 || fail "websocket echo failed"

echo "== errors lb answers itself"
expect() { # WANT LABEL CMD...
    want=$1; label=$2; shift 2
    got=$("$@" 2>&1 | head -1)
    echo "$label: $got"
    case "$got" in *" $want "*) ;; *) fail "$label: want $want, got '$got'" ;; esac
}
expect 400 "CL with TE" $HC raw "$L" 'POST /demo/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
expect 400 "two Content-Lengths" $HC raw "$L" 'POST /demo/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'
expect 400 "no Host" $HC raw "$L" 'GET / HTTP/1.1\r\n\r\n'
expect 400 "obs-fold" $HC raw "$L" 'GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n  2\r\n\r\n'
expect 501 "unknown coding" $HC raw "$L" 'POST /demo/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'
expect 505 "HTTP/2.0" $HC raw "$L" 'GET / HTTP/2.0\r\nHost: t\r\n\r\n'
expect 408 "header timeout" $HC stall "$L" 'GET / HTTP/1.1\r\nHost: t\r\n'
long=$(python3 -c 'print("/" + "a" * 9000)')
expect 414 "long target" $HC raw "$L" "GET $long HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n"
big=$(python3 -c 'print("X-Big: " + "b" * 17000)')
expect 431 "header too large" $HC raw "$L" "GET / HTTP/1.1\\r\\nHost: t\\r\\n$big\\r\\n\\r\\n"
expect 413 "body too large" $HC raw "$LE" 'POST /only/ HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n'
expect 405 "CONNECT" $HC raw "$L" 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n'
expect 502 "refused connect" $HC raw "$L" 'GET /dead HTTP/1.1\r\nHost: t\r\n\r\n'
expect 502 "garbage response" $HC raw "$L" 'GET /bad/garbage HTTP/1.1\r\nHost: t\r\n\r\n'
expect 502 "CL and TE in a response" $HC raw "$L" 'GET /bad/both HTTP/1.1\r\nHost: t\r\n\r\n'
expect 502 "body on a 204" $HC raw "$L" 'GET /bad/204 HTTP/1.1\r\nHost: t\r\n\r\n'
expect 502 "response header too large" $HC raw "$L" 'GET /bad/huge HTTP/1.1\r\nHost: t\r\n\r\n'
# The log names the reason with its numbers, not "malformed response".
wait_for 5 "the log does not say why bad4's answer was refused" \
    grep -q 'server=bad4 reason="response header too large ([0-9]* bytes, limit [0-9]*)"' "$T/lb.log"
expect 504 "response timeout" $HC raw "$L" 'GET /delay/3000 HTTP/1.1\r\nHost: slow.test\r\n\r\n' 5
# max_connections_per_server: 1 and one request holding it: the next has no usable server.
# The next is sent once lb counts the holder's connection to slow1 (not after a fixed sleep,
# which a busy machine can outlast before the holder even connects); the holder's 3 s delay
# leaves room for that wait.
$HC raw "$L" 'GET /delay/3000 HTTP/1.1\r\nHost: one.test\r\n\r\n' 10 >"$T/holder.out" &
HOLDER=$!; PIDS="$PIDS $HOLDER"
slow1_busy() {
    "$LBCTL" -s "$T/lb.sock" status --json | python3 -c 'import json, sys
v = json.load(sys.stdin)
sys.exit(0 if any(s["active"] >= 1 for c in v["clusters"] if c["name"] == "one"
                  for s in c["servers"]) else 1)'
}
wait_for 10 "the holder's request never reached slow1" slow1_busy
out=$(curl -s --max-time 5 -D - -o /dev/null -H 'Host: one.test' "$U/x" | tr -d '\r')
echo "$out" | head -1 | grep -q ' 503 ' || fail "no usable server: $out"
echo "$out" | grep -q '^Retry-After: ' || fail "503 without Retry-After"
wait "$HOLDER" || true
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$HOLDER" | tr '\n' ' ')
grep -q ' 200 ' "$T/holder.out" || fail "the request holding the server failed"

echo "== lb still serves after all that"
[ "$(curl -s --max-time 5 "$U/")" = n1 ] || fail "lb stopped serving"
grep -q 'method=GET target=/hdr status=200' "$T/access.log" || fail "access log line missing"

echo "== SIGTERM"
stop "$LBPID"; rc=$STOP_RC
[ "$rc" = 0 ] || fail "lb exited $rc on SIGTERM"
echo "ok"
