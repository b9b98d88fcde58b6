# 10,000 idle keep-alive client connections held by the real build/lb (2 workers) while wrk
# runs beside them: wrk sees no error, no idle connection is dropped, and afterwards all
# 10,000 ask again at once and every one gets its 200.
. "$(dirname "$0")/lib.sh"
need python3 curl wrk
need_uring
N=10000
[ "$(ulimit -Hn)" -gt $((N + 500)) ] || skip "hard open-file limit $(ulimit -Hn) is below $N connections"
ulimit -n "$(ulimit -Hn)"
A=$(free_port); L=$(free_port); MP=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a
cat >"$T/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $T/lb.sock }, metrics: { listen: 127.0.0.1:$MP } }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    timeouts: { idle: 10m }
    routes: [ { cluster: app } ]
clusters:
  # connect: 10s: on a starved machine (an ASan build beside other load) the single-threaded
  # backend's accept queue can overflow while 10,000 clients start; a dropped SYN is resent
  # after 1 s and 3 s, and the default 1 s connect timeout would turn that into a 502.
  app: { timeouts: { connect: 10s }, servers: [ { name: a, address: 127.0.0.1:$A } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$A"; wait_port "$L"; wait_port "$MP"

idle_clients "$L" "$N"
active=$(curl -s "http://127.0.0.1:$MP/metrics" |
    awk '/^lb_listener_connections_active\{listener="web"/ { print $2 }')
echo "lb_listener_connections_active=$active, slots in use $(metric_sum "$MP" lb_connections_active) (clients and backend connections)"
[ "$active" -ge "$N" ] || fail "lb counts $active client connections, want at least $N"

wrk -t2 -c64 -d5s "http://127.0.0.1:$L/" >"$T/wrk.out" 2>&1 || fail "wrk: $(cat "$T/wrk.out")"
cat "$T/wrk.out"
grep -q "Socket errors\|Non-2xx" "$T/wrk.out" && fail "wrk saw errors beside the idle connections"
reqs=$(awk '/requests in/ { print $1 }' "$T/wrk.out")
[ "${reqs:-0}" -gt 0 ] || fail "wrk made no request"

idle_burst
read -r _ ok setup_err idle_err active_err _ <"$IDLE_ST"
[ "$ok" = "$N" ] && [ "$setup_err" = 0 ] && [ "$idle_err" = 0 ] && [ "$active_err" = 0 ] ||
    fail "after wrk: $(cat "$IDLE_ST")"
kill -0 "$LBPID" || fail "lb died"
echo "PASS"
