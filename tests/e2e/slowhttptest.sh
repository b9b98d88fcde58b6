# Debian's slowhttptest against the real build/lb (2 workers), thousands of connections:
# slowloris (3,000 connections sending their headers a piece at a time), slow bodies
# (1,000 connections), and slow readers of a 1 MiB answer (200 connections). Meanwhile a
# normal client asks every 50 ms and must never fail. The header, body and idle timeouts
# close the slow ones; during slowloris lb holds no receive buffer of its ring for them (a
# partial header waits in the connection's header buffer); afterwards slots, buffers and
# sockets return to zero.
. "$(dirname "$0")/lib.sh"
need python3 curl slowhttptest
need_uring
[ "$(ulimit -Hn)" -gt 8000 ] || skip "hard open-file limit $(ulimit -Hn) is too low for 3,000 connections"
ulimit -n "$(ulimit -Hn)"
A=$(free_port); L=$(free_port); MP=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock }, metrics: { listen: 127.0.0.1:$MP } }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    timeouts: { header: 3s, body: 3s, idle: 4s }
    routes: [ { cluster: app } ]
clusters:
  app: { timeouts: { idle: 1s }, servers: [ { name: a, address: 127.0.0.1:$A } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$A"; wait_port "$L"; wait_port "$MP"
metrics() { curl -s "http://127.0.0.1:$MP/metrics"; }

# The normal client: a new connection every 50 ms for as long as the attacks last.
python3 - "$L" "$T/probe.stop" >"$T/probe.out" 2>&1 <<'EOF_PY' &
import http.client, os, sys, time
ok = bad = 0
end = time.monotonic() + 120
while time.monotonic() < end and not os.path.exists(sys.argv[2]):
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
        c.request("GET", "/bytes/100")
        r = c.getresponse(); r.read()
        ok += r.status == 200; bad += r.status != 200
        c.close()
    except Exception as e:
        bad += 1; print("error", e, flush=True)
    time.sleep(0.05)
print("probe", ok, bad)
EOF_PY
PROBE=$!
PIDS="$PIDS $PROBE"

# attack NAME ARGS...: runs slowhttptest, bounded, and keeps its summary.
attack() {
    name=$1; shift
    timeout 60 slowhttptest "$@" -p 5 -g -o "$T/$name" >"$T/$name.out" 2>&1 ||
        fail "slowhttptest $name: $(tail -5 "$T/$name.out")"
    # The CSV's last column says whether the probe of slowhttptest itself was served.
    grep -q "NO" "$T/$name.csv" && fail "$name: slowhttptest found the service unavailable"
    echo "$name: peak connected $(awk -F, 'NR > 1 && $4 > m { m = $4 } END { print m + 0 }' "$T/$name.csv")"
}

# Slowloris, with the buffers per connection watched while it holds its connections.
( peak_c=0; peak_b=0; while [ ! -f "$T/loris.done" ]; do
      m=$(metrics)
      c=$(echo "$m" | awk '/^lb_listener_connections_active\{listener="web"/ { print $2 }')
      b=$(echo "$m" | awk '/^lb_worker_buffers_in_use/ { s += $2 } END { print s + 0 }')
      [ "${c:-0}" -gt "$peak_c" ] && peak_c=$c
      [ "$b" -gt "$peak_b" ] && peak_b=$b
      echo "$peak_c $peak_b" >"$T/loris.peak"
      sleep 0.2
  done ) &
PIDS="$PIDS $!"
attack loris -H -c 3000 -r 1000 -i 1 -x 10 -l 12 -u "http://127.0.0.1:$L/"
touch "$T/loris.done"
read -r peak_c peak_b <"$T/loris.peak"
echo "slowloris: peak $peak_c connections, peak $peak_b buffers held"
[ "$peak_c" -ge 1000 ] || fail "slowloris reached only $peak_c connections"
# A header that trickles in is kept in the connection's header buffer and leaves the ring
# at once: thousands of them hold no receive buffer (a few for the normal client and slack).
[ "$peak_b" -le 64 ] || fail "slowloris: $peak_b ring buffers held for $peak_c connections"

attack body -B -c 1000 -r 500 -i 1 -s 100000 -l 12 -u "http://127.0.0.1:$L/echo"
attack read -X -c 200 -r 200 -k 2 -n 1 -w 512 -y 1024 -z 32 -l 12 -u "http://127.0.0.1:$L/bytes/1048576"

touch "$T/probe.stop"
wait "$PROBE" || true
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$PROBE" | tr '\n' ' ')
cat "$T/probe.out"
read -r _ ok bad <"$T/probe.out" || fail "no result from the normal client"
[ "$bad" = 0 ] && [ "$ok" -gt 50 ] || fail "the normal client failed during the attacks: $(cat "$T/probe.out")"

wait_for 20 "slots, buffers and sockets back to zero" holds_nothing "$MP"
kill -0 "$LBPID" || fail "lb died"
echo "PASS"
