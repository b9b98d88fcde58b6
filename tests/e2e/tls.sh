# TLS termination with the real build/lb, curl, openssl s_client and nginx:
#  - SNI picks the exact name, then a wildcard, else the first certificate; RSA and ECDSA
#    for one name, the client's signature algorithms pick; ALPN says http/1.1;
#  - TLS 1.0 and 1.1 are refused; min_version: tls1.3 refuses 1.2;
#  - a ticket made on one connection resumes on twenty more (two workers, so on both);
#  - X-Forwarded-Proto: https reaches the server, the access log shows tls/cipher/sni;
#  - TLS on a tcp listener; a 50 MB download arrives intact; half-close passed on with
#    close_notify both ways;
#  - mutual TLS: a client certificate of the CA is accepted, none or another CA's refused
#    with a log line that says why;
#  - TLS to an nginx backend: the right CA answers 200, a wrong one 502 and a log line
#    "certificate verify failed";
#  - reload to a new certificate under new-connection load: zero failed requests, new
#    handshakes get the new certificate; a reload to a broken key keeps the old one;
#  - bad input never crashes or blocks: garbage bytes, a handshake left half done (closed
#    by the header timeout), a 16 KiB ClientHello.
. "$(dirname "$0")/lib.sh"
need python3 curl openssl nginx
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"

# ---- certificates ----
C="$T/certs"
mkdir -p "$C"
ssl() { openssl "$@" >>"$T/openssl.log" 2>&1 || fail "openssl $1 failed: $(tail -3 "$T/openssl.log")"; }
# leaf NAME SAN KEYTYPE CA [DAYS]: a key and a certificate signed by CA (ca or ca2).
leaf() {
    if [ "$3" = rsa ]; then ssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$C/$1.key"
    else ssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$C/$1.key"; fi
    ssl req -new -key "$C/$1.key" -subj "/CN=$1" -out "$C/$1.csr"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" >"$C/$1.ext"
    ssl x509 -req -in "$C/$1.csr" -CA "$C/$4.pem" -CAkey "$C/$4.key" -CAcreateserial \
        -days "${5:-30}" -extfile "$C/$1.ext" -out "$C/$1.pem"
}
for ca in ca ca2; do
    ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$ca.key" \
        -out "$C/$ca.pem" -days 30 -subj "/CN=test $ca"
done
leaf first DNS:first.test ec ca
leaf a-ec DNS:a.test,DNS:www.a.test ec ca
leaf a-rsa DNS:a.test,DNS:www.a.test rsa ca
leaf wild 'DNS:*.w.test' ec ca
leaf a-new DNS:a.test,DNS:www.a.test ec ca
leaf backend DNS:app.internal,IP:127.0.0.1 ec ca
leaf client DNS:client.test ec ca
leaf soon DNS:soon.test ec ca 5
leaf stranger DNS:stranger.test ec ca2

# ---- peers ----
A=$(free_port); NG=$(free_port)
MP=$(free_port); H=$(free_port); L4=$(free_port); M=$(free_port); V=$(free_port); G=$(free_port); B13=$(free_port)
R=$(free_port); P=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
nginx_conf "access_log off;
    keepalive_requests 5;
    server { listen 127.0.0.1:$NG ssl; ssl_certificate $C/backend.pem;
             ssl_certificate_key $C/backend.key; location / { return 200 'nginx-tls\n'; } }" \
    >"$T/nginx.conf"
bg nginx nginx -c "$T/nginx.conf" -p "$T/nginx"
wait_port "$A"; wait_port "$NG"

cp "$C/a-ec.pem" "$C/live.pem"; cp "$C/a-ec.key" "$C/live.key"
cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
  metrics: { listen: 127.0.0.1:$MP }
  log: { access: $T/access.log }
listeners:
  - name: https
    bind: 127.0.0.1:$H
    protocol: http
    timeouts: { header: 1s }
    tls:
      certificates:
        - { cert: $C/first.pem, key: $C/first.key }
        - { cert: $C/live.pem, key: $C/live.key }
        - { cert: $C/a-rsa.pem, key: $C/a-rsa.key }
        - { cert: $C/wild.pem, key: $C/wild.key }
        - { cert: $C/soon.pem, key: $C/soon.key }
    routes: [ { cluster: app } ]
  - name: l4
    bind: 127.0.0.1:$L4
    protocol: tcp
    cluster: app
    tls: { certificates: [ { cert: $C/a-ec.pem, key: $C/a-ec.key } ] }
  - name: mtls
    bind: 127.0.0.1:$M
    protocol: http
    tls: { certificates: [ { cert: $C/a-ec.pem, key: $C/a-ec.key } ], client_ca: $C/ca.pem }
    routes: [ { cluster: app } ]
  - name: tls13
    bind: 127.0.0.1:$B13
    protocol: http
    tls: { certificates: [ { cert: $C/a-ec.pem, key: $C/a-ec.key } ], min_version: tls1.3 }
    routes: [ { cluster: app } ]
  - { name: verified, bind: 127.0.0.1:$V, protocol: http, routes: [ { cluster: secure } ] }
  - { name: wrongca, bind: 127.0.0.1:$G, protocol: http, routes: [ { cluster: wrong } ] }
  - name: plain
    bind: 127.0.0.1:$R
    routes:
      - { match: { path_prefix: /legacy/ }, redirect: { host: www.a.test, scheme: https, port: $H, code: 301 } }
      - redirect: { scheme: https, port: $H }
  - name: probes
    bind: 127.0.0.1:$P
    routes:
      - { match: { path_prefix: /a }, cluster: probed }
      - { match: { path_prefix: /b }, cluster: probed_tcp }
      - cluster: probed_bad
clusters:
  app: { servers: [ { name: a, address: 127.0.0.1:$A } ] }
  secure:
    tls: { ca: $C/ca.pem, verify: on, sni: app.internal }
    retries: 0
    servers: [ { name: n1, address: 127.0.0.1:$NG } ]
  wrong:
    tls: { ca: $C/ca2.pem, verify: on, sni: app.internal }
    retries: 0
    servers: [ { name: n1, address: 127.0.0.1:$NG } ]
  probed:   # nginx answers plain HTTP on its TLS port with 400: a pass means TLS
    tls: { ca: $C/ca.pem, verify: on, sni: app.internal }
    health: { check: http, path: /, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }
    servers: [ { name: h1, address: 127.0.0.1:$NG } ]
  probed_tcp:
    tls: { ca: $C/ca.pem, verify: on }   # no SNI: the certificate's IP is verified
    health: { check: tcp, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }
    servers: [ { name: t1, address: 127.0.0.1:$NG } ]
  probed_bad:
    tls: { ca: $C/ca2.pem, verify: on, sni: app.internal }
    health: { check: http, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }
    servers: [ { name: b1, address: 127.0.0.1:$NG } ]
EOC
"$LB" -t -c "$T/lb.yaml" >"$T/check.out" 2>&1 || fail "lb -t: $(cat "$T/check.out")"
bg lb "$LB" -c "$T/lb.yaml"
LB_PID=$LAST_PID
wait_port "$H"

# subject_of PORT NAME [s_client options]: the CN of the certificate served for SNI NAME.
subject_of() {
    port=$1; name=$2; shift 2
    sni="-servername $name"; [ "$name" = - ] && sni="-noservername"
    # shellcheck disable=SC2086
    openssl s_client -connect "127.0.0.1:$port" $sni "$@" </dev/null 2>/dev/null |
        sed -n 's/^subject=.*CN *= *\([^,]*\).*/\1/p' | head -n 1
}

# ---- SNI, key types, ALPN ----
[ "$(subject_of "$H" a.test)" = a-ec ] || fail "a.test: got '$(subject_of "$H" a.test)'"
[ "$(subject_of "$H" WWW.A.TEST)" = a-ec ] || fail "names are caseless"
[ "$(subject_of "$H" x.w.test)" = wild ] || fail "wildcard: got '$(subject_of "$H" x.w.test)'"
[ "$(subject_of "$H" y.x.w.test)" = first ] || fail "a wildcard covers one label only"
[ "$(subject_of "$H" -)" = first ] || fail "no SNI: got '$(subject_of "$H" -)'"
[ "$(subject_of "$H" nobody.test)" = first ] || fail "unknown name: the first certificate"
[ "$(subject_of "$H" a.test -sigalgs RSA-PSS+SHA256)" = a-rsa ] ||
    fail "an RSA-only client gets the RSA certificate"
[ "$(subject_of "$H" a.test -sigalgs ECDSA+SHA256)" = a-ec ] || fail "ECDSA client"
echo "ok: SNI exact, wildcard, default; RSA and ECDSA for one name"

curl -sv --cacert "$C/ca.pem" --resolve "a.test:$H:127.0.0.1" "https://a.test:$H/headers" \
    >"$T/h.out" 2>"$T/h.err" || fail "curl https: $(tail -5 "$T/h.err")"
grep -q 'ALPN: server accepted http/1.1' "$T/h.err" || fail "ALPN: $(grep ALPN "$T/h.err")"
grep -qi '^x-forwarded-proto: https' "$T/h.out" || fail "X-Forwarded-Proto: $(cat "$T/h.out")"
# ---- redirects from the plain listener ----
curl -s -D "$T/r.hdr" -o /dev/null --resolve "a.test:$R:127.0.0.1" \
    "http://a.test:$R/x/y?z=1" || fail "redirect request"
grep -q '^HTTP/1.1 308 ' "$T/r.hdr" || fail "redirect status: $(cat "$T/r.hdr")"
grep -qi "^location: https://a.test:$H/x/y?z=1\s*$" "$T/r.hdr" || fail "location: $(cat "$T/r.hdr")"
# curl follows it over TLS, with the same method and body (308).
got=$(curl -sL --cacert "$C/ca.pem" --resolve "a.test:$R:127.0.0.1" \
    --resolve "a.test:$H:127.0.0.1" --data-binary hello "http://a.test:$R/echo")
[ "$got" = hello ] || fail "308 followed with the body: '$got'"
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$R/legacy/p")
[ "$code" = "301 https://www.a.test:$H/legacy/p" ] || fail "301 to another host: '$code'"
# A request with no Host (HTTP/1.0) cannot be redirected: 400, and lb keeps serving.
printf 'GET /x HTTP/1.0\r\n\r\n' | timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read()); print(s.recv(200).split(b"\r\n")[0].decode())' "$R" \
    >"$T/r10.out"
grep -q '^HTTP/1.1 400 ' "$T/r10.out" || fail "HTTP/1.0 without Host: $(cat "$T/r10.out")"
echo "ok: redirects keep the URI, 308 keeps the method, 301 to another host"

openssl s_client -connect "127.0.0.1:$H" -servername a.test -alpn h2 </dev/null >"$T/alpn.out" 2>&1
grep -q 'No ALPN negotiated' "$T/alpn.out" || fail "h2 only: $(grep -i alpn "$T/alpn.out")"
wait_for 10 "access log line" grep -q 'tls=TLSv1.3 cipher=TLS_.* sni=a.test' "$T/access.log"
echo "ok: ALPN http/1.1, X-Forwarded-Proto https, access log"

# ---- versions ----
for v in tls1 tls1_1; do
    if openssl s_client -connect "127.0.0.1:$H" -"$v" -cipher 'DEFAULT:@SECLEVEL=0' \
        </dev/null >"$T/$v.out" 2>&1; then fail "$v accepted"; fi
    grep -q 'Cipher is (NONE)\|alert protocol version\|no protocols available' "$T/$v.out" ||
        fail "$v: $(tail -5 "$T/$v.out")"
done
if openssl s_client -connect "127.0.0.1:$B13" -tls1_2 </dev/null >"$T/v12.out" 2>&1; then
    fail "min_version tls1.3 accepted TLS 1.2"
fi
openssl s_client -connect "127.0.0.1:$B13" -tls1_3 </dev/null 2>&1 | grep -q 'TLSv1.3' ||
    fail "min_version tls1.3 refuses TLS 1.3"
echo "ok: TLS 1.0/1.1 refused, min_version"

# ---- resumption, on both workers ----
# Each connection comes from a new source port, and SO_REUSEPORT spreads them over the two
# workers by hash: twenty resumed connections all landing on one worker would be a 1 in 2^19
# event, so all of them resuming means tickets resume on both.
# A request per connection, read to the server's close (-ign_eof): a TLS 1.3 ticket comes
# after the handshake, and a client that leaves at once may not have it yet.
printf 'GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n' >"$T/req"
for v in tls1_2 tls1_3; do
    openssl s_client -connect "127.0.0.1:$H" -servername a.test -"$v" -sess_out "$T/$v.sess" \
        -ign_eof <"$T/req" >/dev/null 2>&1 || fail "$v: first handshake"
    n=0
    for i in $(seq 20); do
        openssl s_client -connect "127.0.0.1:$H" -servername a.test -"$v" -sess_in "$T/$v.sess" \
            -ign_eof <"$T/req" 2>/dev/null | grep -q '^Reused' && n=$((n + 1))
    done
    [ "$n" -eq 20 ] || fail "$v: $n of 20 connections resumed"
done
echo "ok: TLS 1.2 and 1.3 sessions resume (20 of 20, both workers)"

# ---- TLS on a tcp listener; a large transfer ----
curl -s --cacert "$C/ca.pem" --resolve "a.test:$L4:127.0.0.1" "https://a.test:$L4/bytes/52428800" \
    -o "$T/big.out" || fail "download over the tcp listener"
[ "$(stat -c %s "$T/big.out")" -eq 52428800 ] || fail "download: $(stat -c %s "$T/big.out") bytes"
head -c 8000000 "$T/big.out" >"$T/up.bin" # under the listener's 10m body limit
curl -s --cacert "$C/ca.pem" --resolve "a.test:$H:127.0.0.1" -X POST --data-binary @"$T/up.bin" \
    "https://a.test:$H/echo" -o "$T/echo.out" || fail "upload"
cmp -s "$T/up.bin" "$T/echo.out" || fail "8 MB echoed through TLS differ"
echo "ok: TLS on tcp; 50 MB down, 8 MB up and back, intact"

# Half-close through TLS on the tcp listener: the client's close_notify and FIN reach the
# server as a FIN, its answer still comes back, then lb's close_notify and FIN.
python3 - "$L4" <<'EOF_PY' || fail "half-close over TLS"
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
o = ctx.wrap_bio(inc, out, server_hostname="a.test")
def pump():
    d = out.read()
    if d:
        raw.sendall(d)
while True:
    try:
        o.do_handshake()
        break
    except ssl.SSLWantReadError:
        pump()
        inc.write(raw.recv(65536))
pump()
o.write(b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
try:
    o.unwrap()
except ssl.SSLWantReadError:
    pass
pump()
raw.shutdown(socket.SHUT_WR)
data, notify, fin = b"", False, False
while not fin:
    chunk = raw.recv(65536)
    fin = not chunk
    inc.write(chunk)
    try:
        while True:
            data += o.read(65536)
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLZeroReturnError:
        notify = True
assert data.endswith(b"\r\n\r\nhello"), data
assert notify, "no close_notify from lb"
EOF_PY
echo "ok: half-close passed on through TLS (close_notify both ways)"

# ---- mutual TLS ----
curl -s --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key" \
    --resolve "a.test:$M:127.0.0.1" "https://a.test:$M/headers" >/dev/null ||
    fail "mTLS: a client certificate of the CA was refused"
if curl -s --cacert "$C/ca.pem" --resolve "a.test:$M:127.0.0.1" "https://a.test:$M/headers" \
    >/dev/null 2>&1; then fail "mTLS: no client certificate accepted"; fi
if curl -s --cacert "$C/ca.pem" --cert "$C/stranger.pem" --key "$C/stranger.key" \
    --resolve "a.test:$M:127.0.0.1" "https://a.test:$M/headers" >/dev/null 2>&1; then
    fail "mTLS: another CA's client certificate accepted"
fi
wait_for 10 "a log line for the refused client" \
    grep -q 'tls client certificate rejected.*reason="unable to get local issuer' "$T/lb.log"
wait_for 10 "a log line for the missing client certificate" \
    grep -q 'reason=client_certificate' "$T/lb.log"
echo "ok: mutual TLS accepts the CA's client, refuses others with a reason"

# ---- TLS to servers ----
[ "$(curl -s "http://127.0.0.1:$V/")" = nginx-tls ] || fail "TLS to nginx with the right CA"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$G/")" = 502 ] ||
    fail "a wrong CA must give 502"
wait_for 10 "certificate verify failed in the log" \
    grep -q 'tls to server failed.*certificate verify failed: unable to get local issuer certificate' "$T/lb.log"
# nginx closes a backend connection after 5 requests: the next ones resume its session.
for i in $(seq 30); do curl -s -o /dev/null "http://127.0.0.1:$V/"; done
curl -s "http://127.0.0.1:$MP/metrics" >"$T/metrics.out"
resumed=$(sed -n 's/^lb_tls_upstream_resumptions_total \([0-9]*\)$/\1/p' "$T/metrics.out")
[ "${resumed:-0}" -gt 0 ] || fail "no session to nginx was resumed: $(grep upstream "$T/metrics.out")"
grep -q '^lb_tls_upstream_handshakes_total{result="verify_failed"} [1-9]' "$T/metrics.out" ||
    fail "verify failures not counted: $(grep upstream "$T/metrics.out")"
echo "ok: TLS to nginx: right CA 200, wrong CA 502 with the reason; sessions resumed ($resumed)"

# ---- health probes over TLS ----
probe_ok() { # CLUSTER SERVER VALUE: the last probe's result in /metrics
    curl -s "http://127.0.0.1:$MP/metrics" |
        grep -q "^lb_server_check_success{cluster=\"$1\",server=\"$2\"} $3\$"
}
wait_for 10 "the https probe of h1 passes" probe_ok probed h1 1
wait_for 10 "the TLS handshake probe of t1 passes" probe_ok probed_tcp t1 1
wait_for 10 "the probe of b1 (wrong CA) fails" probe_ok probed_bad b1 0
wait_for 10 "b1 down with the reason" grep -q \
    'msg="server down" cluster=probed_bad server=b1 .*certificate verify failed: unable to get local issuer' \
    "$T/lb.log"
! grep -q 'msg="server down" cluster=probed\(_tcp\)\? ' "$T/lb.log" || fail "$(grep 'server down' "$T/lb.log")"
[ "$(curl -s "http://127.0.0.1:$P/a")" = nginx-tls ] || fail "probed cluster serves"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/x")" = 503 ] ||
    fail "the cluster whose only server is down answers 503"
echo "ok: health probes over TLS: https and handshake checks pass, a wrong CA marks the server down"

# ---- operators: metrics, lbctl tls, the status page ----
grep -q '^lb_tls_handshakes_total{version="TLSv1.3"} [1-9]' "$T/metrics.out" || fail "handshakes"
grep -q '^lb_tls_resumptions_total [1-9]' "$T/metrics.out" || fail "resumptions"
grep -q '^lb_tls_handshake_failures_total{reason="version"} [1-9]' "$T/metrics.out" ||
    fail "version failures: $(grep failures "$T/metrics.out")"
grep -q '^lb_tls_handshake_failures_total{reason="client_certificate"} [1-9]' "$T/metrics.out" ||
    fail "client certificate failures"
grep -q "^lb_tls_cert_expiry_seconds{listener=\"https\",file=\"$C/wild.pem\",names=\"\*.w.test\"} [0-9]" \
    "$T/metrics.out" || fail "cert expiry: $(grep expiry "$T/metrics.out")"
"$LBCTL" -s "$T/lb.sock" tls >"$T/tls.out" || fail "lbctl tls"
grep -q '^https  *\*\.w\.test  *EC 256  *20[0-9-]*T[0-9:]*Z  *2[0-9]  ' "$T/tls.out" ||
    fail "lbctl tls: $(cat "$T/tls.out")"
"$LBCTL" -s "$T/lb.sock" tls --json | grep -q '"days_left":2[0-9]' || fail "lbctl tls --json"
grep -q '^https  *soon\.test  .*  4  ' "$T/tls.out" || fail "lbctl tls, 5-day cert: $(cat "$T/tls.out")"
echo "ok: TLS metrics, lbctl tls"

# The status page lists the certificate that expires within 14 days, and only that one.
CHROME=$(command -v chromium || command -v chromium-browser || true)
mkdir -p "$T/home"
if [ -n "$CHROME" ] && HOME="$T/home" timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu \
    --no-first-run --user-data-dir="$T/home/profile" --virtual-time-budget=3000 \
    --dump-dom "http://127.0.0.1:$MP/" >"$T/dom.html" 2>"$T/chromium.log"; then
    grep -q '<tr class="cert"><td>https</td><td>soon.test</td>' "$T/dom.html" ||
        fail "status page: soon.test not listed"
    [ "$(grep -o "<tr class=.cert.><td>[a-z0-9-]*</td>" "$T/dom.html" | wc -l)" -eq 1 ] ||
        fail "status page lists certificates that do not expire soon"
    echo "ok: the status page lists the one certificate expiring within 14 days"
else
    echo "note: chromium cannot run here; the status page's certificate list was not rendered"
fi

# ---- bad input ----
python3 - "$H" <<'EOF_PY' || fail "bad input"
import os, socket, ssl, struct, sys, time
port = int(sys.argv[1])

def still_serving():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="a.test") as t:
            t.sendall(b"GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            assert t.recv(100).startswith(b"HTTP/1.1 200"), "no answer"

def closed_by_peer(s, limit):
    s.settimeout(limit)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True

# Garbage instead of a ClientHello: the connection ends, nothing else notices.
s = socket.create_connection(("127.0.0.1", port))
s.sendall(os.urandom(3000))
closed_by_peer(s, 10)
s.close()
still_serving()

# A handshake left half done: the header timeout (1 s) closes it; meanwhile others are served.
half = socket.create_connection(("127.0.0.1", port))
half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
still_serving()
closed_by_peer(half, 15)
half.close()

# A 16 KiB ClientHello (a TLS 1.3 hello with a padding extension), in two records.
def ext(t, body):
    return struct.pack(">HH", t, len(body)) + body
exts = (ext(0x002b, b"\x02\x03\x04") + ext(0x000a, b"\x00\x02\x00\x1d") +
        ext(0x000d, b"\x00\x04\x04\x03\x08\x04") +
        ext(0x0033, struct.pack(">HHH", 36, 0x001d, 32) + os.urandom(32)) +
        ext(0x0000, struct.pack(">HBH", 9, 0, 6) + b"a.test") +
        ext(0x0015, bytes(16600)))
body = (b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" +
        struct.pack(">H", len(exts)) + exts)
hello = b"\x01" + struct.pack(">I", len(body))[1:] + body
assert len(hello) > 16384
recs = b""
for i in range(0, len(hello), 16384):
    part = hello[i:i + 16384]
    recs += b"\x16\x03\x01" + struct.pack(">H", len(part)) + part
big = socket.create_connection(("127.0.0.1", port))
big.sendall(recs)
big.settimeout(15)
first = big.recv(5)
assert first[:1] in (b"\x16", b"\x15"), "no ServerHello and no alert: %r" % first
big.close()
still_serving()
EOF_PY
kill -0 "$LB_PID" || fail "lb died"
echo "ok: garbage, a half handshake (timed out), a 16 KiB ClientHello: lb serves on"

# Clients that leave right after the handshake, before lb's session tickets go out (so
# their send fails): every such connection must end, none left reading a dead socket.
openssl s_time -connect "127.0.0.1:$H" -new -time 1 >"$T/stime.out" 2>&1 ||
    fail "s_time: $(tail -3 "$T/stime.out")"
grep -q 'connections in' "$T/stime.out" || fail "s_time made no connection"
python3 - "$H" <<'EOF_PY'
import socket, ssl, struct, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for _ in range(20):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                        server_hostname="a.test")
    raw = s.detach() if hasattr(s, "detach") else s
    so = socket.socket(fileno=raw) if isinstance(raw, int) else raw
    so.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    so.close()  # a reset, no close_notify
EOF_PY
active_zero() {
    curl -s "http://127.0.0.1:$MP/metrics" |
        grep -q '^lb_listener_connections_active{listener="https",protocol="http"} 0$'
}
wait_for 10 "every connection that left after the handshake is closed" active_zero
echo "ok: clients leaving right after the handshake leave no connection behind"

# ---- reload to a new certificate under load ----
python3 - "$H" "$T/load.out" <<'EOF_PY' &
import socket, ssl, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ok = failed = 0
end = time.monotonic() + 6
while time.monotonic() < end:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="a.test") as t:
                t.sendall(b"GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                ok += data.startswith(b"HTTP/1.1 200")
                failed += not data.startswith(b"HTTP/1.1 200")
    except Exception as e:
        failed += 1
        print("error:", e, file=sys.stderr)
open(out, "w").write("%d %d\n" % (ok, failed))
EOF_PY
LOAD=$!
sleep 1
serial_old=$(openssl x509 -in "$C/a-ec.pem" -noout -serial)
cp "$C/a-new.pem" "$C/live.pem"; cp "$C/a-new.key" "$C/live.key"
"$LBCTL" -s "$T/lb.sock" reload >"$T/reload.out" 2>&1 || fail "lbctl reload: $(cat "$T/reload.out")"
sleep 1
kill -HUP "$LB_PID"
wait "$LOAD" || fail "load client"
read -r ok failed <"$T/load.out"
[ "$failed" -eq 0 ] || fail "reload under load: $failed of $((ok + failed)) requests failed"
[ "$ok" -gt 20 ] || fail "reload under load: only $ok requests"
new=$(openssl s_client -connect "127.0.0.1:$H" -servername a.test </dev/null 2>/dev/null |
      openssl x509 -noout -serial)
[ "$new" = "$(openssl x509 -in "$C/a-new.pem" -noout -serial)" ] ||
    fail "after reload: $new, was $serial_old"
# A broken file: the reload is refused with the position, the running certificate stays.
cp "$C/a-ec.key" "$C/live.key"
if "$LBCTL" -s "$T/lb.sock" reload >"$T/reload2.out" 2>&1; then fail "a mismatched key reloaded"; fi
grep -q 'does not match certificate' "$T/reload2.out" "$T/lb.log" ||
    fail "reload with a bad key: $(cat "$T/reload2.out")"
new=$(openssl s_client -connect "127.0.0.1:$H" -servername a.test </dev/null 2>/dev/null |
      openssl x509 -noout -serial)
[ "$new" = "$(openssl x509 -in "$C/a-new.pem" -noout -serial)" ] || fail "bad reload changed the certificate"
echo "ok: reload under load ($ok requests, 0 failed), new certificate served; bad key refused"

# lb -t on the same mistake: an error at the key's line.
"$LB" -t -c "$T/lb.yaml" >"$T/t.out" 2>&1 && fail "lb -t accepted a mismatched key"
grep -q "^$T/lb.yaml:[0-9]*:[0-9]*: key $C/live.key does not match certificate" "$T/t.out" ||
    fail "lb -t: $(cat "$T/t.out")"
echo "ok: lb -t reports the mismatched key at FILE:LINE:COL"

stop "$LB_PID"
[ "$STOP_RC" -eq 0 ] || fail "lb exit $STOP_RC"
echo "PASS"
