# A burst of requests that all need a new backend connection at the same moment: 3,000
# keep-alive clients, held idle, ask again all at once through the real build/lb (one worker,
# the default 1 s connect timeout) in front of an nginx whose listen queue holds 128. Were
# lb to connect for every request at once, the queue would overflow, the dropped SYNs would
# wait a second for their retransmit and lb's connects would time out (502s). lb paces new
# connects to a server (at most 64 unproven at a time, per worker) and queues the requests
# beyond that for a connection to come free: every request gets its 200, the pacing shows in
# lb_server_connect_queued_total, and lb holds nothing afterwards.
. "$(dirname "$0")/lib.sh"
need python3 curl nginx
need_uring
N=3000
[ "$(ulimit -Hn)" -gt $((2 * N + 500)) ] || skip "hard open-file limit $(ulimit -Hn) is below 2 x $N"
ulimit -n "$(ulimit -Hn)"
A=$(free_port); L=$(free_port); MP=$(free_port)
nginx_conf "
    access_log off;
    keepalive_requests 100000;
    server { listen 127.0.0.1:$A backlog=128; location / { return 200 'burst'; } }" |
    sed "s/worker_connections 1024/worker_connections $((N + 500))/;
         s/^worker_processes 1;/worker_processes 1;\nworker_rlimit_nofile $((N + 600));/" \
        >"$T/nginx.conf"
bg nginx nginx -c "$T/nginx.conf" -p "$T/nginx"
NGPID=$LAST_PID
cat >"$T/lb.yaml" <<EOC
global: { workers: 1, admin: { socket: $T/lb.sock }, metrics: { listen: 127.0.0.1:$MP } }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    timeouts: { idle: 10m }
    routes: [ { cluster: app } ]
clusters:
  app: { servers: [ { name: a, address: 127.0.0.1:$A } ] }
EOC
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$A"; wait_port "$L"; wait_port "$MP"

idle_clients "$L" "$N"
# The set-up left lb at most a few hundred pooled backend connections: the burst needs
# thousands more at once.
before=$(metric_sum "$MP" lb_server_connect_queued_total)
idle_burst
read -r _ ok setup_err idle_err burst_err p50 p99 _ <"$IDLE_ST"
[ "$ok" = "$N" ] && [ "$setup_err" = 0 ] && [ "$idle_err" = 0 ] && [ "$burst_err" = 0 ] ||
    fail "the burst: $(cat "$IDLE_ST") (lb's warnings: $(grep -c level=warn "$T/lb.log"))"
queued=$(($(metric_sum "$MP" lb_server_connect_queued_total) - before))
errs=$(metric_sum "$MP" lb_server_connect_errors_total)
echo "burst: $ok answers, p50 ${p50}us p99 ${p99}us; requests queued for a connection: $queued;" \
    "connect errors: $errs"
[ "$queued" -gt 0 ] || fail "no request waited for a connection: the burst was not paced"
[ "$errs" = 0 ] || fail "lb counted $errs connect errors"
stop "$NGPID" # its pooled connections close with it
wait_for 30 "lb to hold nothing once clients and backend are gone" holds_nothing "$MP"
kill -0 "$LBPID" || fail "lb died"
echo "PASS"
