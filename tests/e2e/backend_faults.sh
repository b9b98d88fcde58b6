# Backend faults against the real build/lb, with a healthy cluster served meanwhile:
#  - garbage instead of a status line: 502; a backend that never answers and one slower than
#    timeouts.response: 504 (nothing was sent to the client yet);
#  - a reset in the middle of the body and a close after half the declared length: the client
#    got the status line already, so lb closes its connection (curl sees a short transfer,
#    never a hang and never a second response);
#  - passive checks eject the faulty server after consecutive failures (lb_server_state);
#  - requests to the healthy cluster all pass while the faults go on;
#  - nothing leaks: once every client is gone, lb's connection slots, buffers and sockets per
#    worker (lb_connections_active, lb_worker_buffers_in_use, lb_worker_files_open) return
#    to zero, and its descriptors in /proc to what they were after start-up.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
F=$(free_port); G=$(free_port); L=$(free_port); MP=$(free_port)
bg fault python3 "$ROOT/tests/e2e/fault_peer.py" "$F" 120 3
bg good "$DEMO" -l "127.0.0.1:$G" -n good
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock }, metrics: { listen: 127.0.0.1:$MP } }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    timeouts: { idle: 2s }
    routes:
      - { match: { path_prefix: /good }, cluster: good }
      - { cluster: faulty }
clusters:
  faulty:
    retries: 0
    passive: { consecutive_failures: 3, ejection: 60s, max_ejected_percent: 100 }
    timeouts: { connect: 1s, response: 1s, idle: 1s }
    servers: [ { name: f1, address: 127.0.0.1:$F } ]
  good:
    timeouts: { idle: 1s }
    servers: [ { name: g1, address: 127.0.0.1:$G } ]
EOC
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$F"; wait_port "$G"; wait_port "$L"; wait_port "$MP"
fds_start=$(ls "/proc/$LBPID/fd" | wc -l)

metrics() { curl -s "http://127.0.0.1:$MP/metrics"; }
sum() { metric_sum "$MP" "$1"; }

# The healthy cluster is asked all along, from its own client.
python3 - "$L" >"$T/good.out" 2>&1 <<'EOF_PY' &
import http.client, sys, time
ok = bad = 0
end = time.monotonic() + 8
while time.monotonic() < end:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
    for _ in range(20):
        try:
            c.request("GET", "/good/x")
            r = c.getresponse(); r.read()
            ok += r.status == 200; bad += r.status != 200
        except Exception as e:
            bad += 1; print("error", e); break
    c.close()
print("good", ok, bad)
EOF_PY
GOODPID=$!
PIDS="$PIDS $GOODPID"

# code PATH: prints "HTTP_CODE CURL_EXIT BYTES" for one request.
code() {
    rc=0
    out=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 20 "http://127.0.0.1:$L$1") || rc=$?
    echo "$out $rc $(wc -c <"$T/body")"
}

r=$(code /garbage); echo "garbage: $r"
[ "${r%% *}" = 502 ] || fail "garbage status line: want 502, got $r"
r=$(code /hang); echo "hang: $r"
[ "${r%% *}" = 504 ] || fail "backend that never answers: want 504, got $r"
r=$(code /slow); echo "slow: $r"
[ "${r%% *}" = 504 ] || fail "backend slower than timeouts.response: want 504, got $r"
# Three failures in a row: the server is ejected by passive checks.
wait_for 10 "f1 ejected after 3 failures" sh -c \
    "curl -s http://127.0.0.1:$MP/metrics | grep -q 'lb_server_state{cluster=\"faulty\",server=\"f1\",state=\"ejected\"} 1'"
r=$(code /ok); echo "while ejected: $r"
[ "${r%% *}" = 503 ] || fail "ejected server still picked: $r"

# Mid-body faults, on a second lb generation of the cluster so the ejection does not hide
# them: a reload brings the server back with a fresh passive state.
sed -i 's/consecutive_failures: 3, ejection: 60s, max_ejected_percent: 100/consecutive_failures: 100, ejection: 100ms, max_ejected_percent: 100/' "$T/lb.yaml"
"$LBCTL" -s "$T/lb.sock" reload >/dev/null || fail "reload refused"
# Until the old generation's workers have stopped accepting, a new connection may still land
# on one of them (the listening socket is shared) and meet the ejection: wait for it to finish.
wait_for 20 "the previous generation finished draining" \
    grep -q 'msg="previous generation finished draining"' "$T/lb.log"
wait_for 10 "f1 up after the reload" sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$L/ok | grep -qx 200"
for i in 1 2 3; do
    r=$(code /reset); echo "reset mid-body: $r"
    set -- $r
    [ "$1" = 200 ] || fail "reset mid-body: the status line was sent, want 200 then a close: $r"
    [ "$2" = 18 ] || [ "$2" = 56 ] || fail "reset mid-body: want a short transfer (curl 18/56): $r"
    [ "$3" -lt 100000 ] || fail "reset mid-body: a full body from a reset backend? $r"
    r=$(code /half); echo "half: $r"
    set -- $r
    [ "$1" = 200 ] && [ "$2" = 18 ] && [ "$3" = 500 ] ||
        fail "close after half the body: want 200, curl 18 and 500 bytes: $r"
done
# The same faults under concurrency, each on its own connection.
python3 - "$L" >"$T/burst.out" 2>&1 <<'EOF_PY' || fail "burst: $(cat "$T/burst.out")"
import concurrent.futures, http.client, sys
def one(path):
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
    try:
        c.request("GET", path)
        r = c.getresponse()
        try:
            r.read()
            return "%s %d full" % (path, r.status)
        except http.client.IncompleteRead:
            return "%s %d short" % (path, r.status)
    except Exception as e:
        return "%s error %s" % (path, type(e).__name__)
    finally:
        c.close()
paths = ["/reset", "/half", "/garbage", "/ok"] * 25
with concurrent.futures.ThreadPoolExecutor(32) as ex:
    res = list(ex.map(one, paths))
want = {"/reset": "200 short", "/half": "200 short", "/garbage": "502 full", "/ok": "200 full"}
bad = [r for r in res if r.split(" ", 1)[1] != want[r.split(" ")[0]]]
print(len(res), "requests,", len(bad), "unexpected:", bad[:5])
sys.exit(1 if bad else 0)
EOF_PY
cat "$T/burst.out"

wait "$GOODPID" || true
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$GOODPID" | tr '\n' ' ')
cat "$T/good.out"
read -r _ ok bad <"$T/good.out" || fail "no result from the healthy client"
[ "$bad" = 0 ] && [ "$ok" -gt 0 ] || fail "healthy cluster failed meanwhile: $(cat "$T/good.out")"

# Every client is gone and idle backend connections time out after 1 s: nothing is left.
idle() {
    holds_nothing "$MP" && [ "$(ls "/proc/$LBPID/fd" | wc -l)" -le "$fds_start" ]
}
wait_for 15 "resources back to zero" idle
echo "after: slots=$(sum lb_connections_active) buffers=$(sum lb_worker_buffers_in_use)" \
    "files=$(sum lb_worker_files_open) fds=$(ls "/proc/$LBPID/fd" | wc -l) (start $fds_start)"
metrics | grep -E '^lb_requests_total\{listener="web",cluster="faulty"' || true
kill -0 "$LBPID" || fail "lb died"
echo "PASS"
