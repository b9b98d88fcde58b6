# Big bodies through the real build/lb with its resident memory watched: a 1 GiB download at
# full speed, a 256 MiB download read slowly (the backend is far faster than the client, so
# lb must hold the backend back rather than buffer), and a 100 MiB upload to a backend that
# answers the body's sha256 (the demo backend keeps at most 64 MiB of a body). Each
# arrives whole, and lb's peak RSS stays within a bound set by its buffers (a few MiB), far
# below the body sizes: memory does not grow with what passes through.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
A=$(free_port); S=$(free_port); L=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
# The sink: reads one request's body (Content-Length) and answers its sha256, streaming.
cat >"$T/sink.py" <<'EOF_PY'
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
s.settimeout(300)
while True:
    c, _ = s.accept()
    c.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    h = hashlib.sha256(body)
    left = n - len(body)
    while left > 0:
        chunk = c.recv(min(left, 1 << 20))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    out = (h.hexdigest() + "  -\n").encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(out) + out)
    c.close()
EOF_PY
bg sink python3 "$T/sink.py" "$S"
cat >"$T/lb.yaml" <<EOC
global: { workers: 1, admin: { socket: $T/lb.sock } }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    limits: { max_body_bytes: 128m }
    routes:
      - { match: { path_prefix: /sink }, cluster: sink }
      - { cluster: app }
clusters:
  app: { servers: [ { name: a, address: 127.0.0.1:$A } ] }
  sink: { servers: [ { name: s, address: 127.0.0.1:$S } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$A"; wait_port "$S"; wait_port "$L"

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$LBPID/status"; }
# Warm up: buffers that lb keeps once used are part of the baseline, not growth.
for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$L/bytes/8388608"; done
base=$(rss)
# Watch the peak RSS (KiB) of lb in the background for as long as the transfers take.
( peak=0; while kill -0 "$LBPID" 2>/dev/null && [ ! -f "$T/done" ]; do
      r=$(rss); [ "${r:-0}" -gt "$peak" ] && { peak=$r; echo "$peak" >"$T/peak"; }
      sleep 0.05
  done ) &
WATCH=$!
PIDS="$PIDS $WATCH"

size() { curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 120 "$@"; }
r=$(size "http://127.0.0.1:$L/bytes/1073741824"); echo "1 GiB download: $r"
[ "$r" = "200 1073741824" ] || fail "1 GiB download: $r"
r=$(size --limit-rate 40M "http://127.0.0.1:$L/bytes/268435456"); echo "256 MiB slow read: $r"
[ "$r" = "200 268435456" ] || fail "slow 256 MiB download: $r"
head -c 104857600 /dev/urandom >"$T/up.bin"
sum_in=$(sha256sum <"$T/up.bin")
sum_out=$(curl -s --max-time 120 --data-binary @"$T/up.bin" -H 'Content-Type: application/octet-stream' \
    "http://127.0.0.1:$L/sink")
echo "100 MiB upload: $([ "$sum_in" = "$sum_out" ] && echo same bytes || echo "DIFFERENT ($sum_out)")"
[ "$sum_in" = "$sum_out" ] || fail "100 MiB upload: the backend got other bytes"
rm -f "$T/up.bin"
touch "$T/done"
wait "$WATCH" 2>/dev/null || true
peak=$(cat "$T/peak")
growth=$(( (peak - base) / 1024 ))
echo "lb RSS: base $((base / 1024)) MiB, peak $((peak / 1024)) MiB, growth $growth MiB over 1.4 GiB of bodies"
# 32 MiB: the per-worker receive buffers that can fill under load, with room to spare; a
# proxy that held bodies would grow by hundreds of MiB here.
[ "$growth" -le 32 ] || fail "lb grew by $growth MiB while bodies passed: memory follows body size"
kill -0 "$LBPID" || fail "lb died"
echo "PASS"
