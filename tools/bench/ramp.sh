#!/bin/sh
# Sustainable rate (issue 16): the highest request rate a route of lb holds before its p99
# latency or its errors cross a limit, for an enqueue route (POST -> one Redis list) and for a
# cluster route (POST -> one nginx answering "ok"), with the same request to both. Operators
# run this kind of ramp before a flash sale to learn what their setup sustains.
#
# How: build/bench-rate (tools/bench/rate.c) offers a fixed rate, open-loop, over CONNS
# keep-alive connections and measures each request from its intended send time, so a server
# that falls behind shows as latency and not as a slower client. Each route starts at START
# req/s and goes up by FACTOR per step of STEP seconds until a step fails (p99 over P99_MS, or
# errors and non-2xx over 0.1% of the requests offered, or MAX_RATE reached), then bisects
# BISECT times between the last good and the first bad rate. The highest good rate is the
# sustainable one. A step that fails is run again once, and fails only if it fails twice (a
# stall of a shared machine is not the route's limit). After each enqueue step LLEN of the list must equal the 202s counted (a
# 202 without its entry stops the run); the list is deleted before each step.
#
# Environment: START (2000), FACTOR (1.5), STEP seconds (5; QUICK=1: 2), P99_MS (20),
# BISECT (2), CONNS (128), MAX_RATE (200000), ROUTES ("enqueue cluster"), LB (path to lb).
# Time: 1 to 3 minutes on 2 shared cores (68 s and 132 s in two runs: more steps when lb goes
# further, and failed steps run twice); run.sh's defaults already take 18 of their 20, so it
# leaves this one out of its default list:
# run it with `tools/bench/run.sh ramp`.
# Output: markdown on stdout, progress on stderr; exit 0, 3 (lb could not run) or 1.
. "$(dirname "$0")/lib.sh"
need nginx redis-server redis-cli python3 awk curl

START=${START:-2000}
FACTOR=${FACTOR:-1.5}
if [ "${QUICK:-0}" = 1 ]; then STEP=${STEP:-2}; else STEP=${STEP:-5}; fi
P99_MS=${P99_MS:-20}
BISECT=${BISECT:-2}
CONNS=${CONNS:-128}
MAX_RATE=${MAX_RATE:-200000}
ROUTES=${ROUTES:-enqueue cluster}
for r in $ROUTES; do
    case $r in enqueue | cluster) ;; *) die "ROUTES: enqueue and/or cluster, not $r" ;; esac
done
RATE=$BENCH_ROOT/build/bench-rate
[ -x "$RATE" ] || die "build/bench-rate is not built (make)"
[ $((CONNS + 256)) -le "$NOFILE" ] || die "CONNS=$CONNS needs ulimit -n above $((CONNS + 256))"
BODY='{"sku":"flash-42","user":"u-1001","qty":1}'
LIST=flash:orders

set -- $(free_ports 3)
oport=$1 lport=$2 rport=$3

# --- Redis, without persistence: the list lives in memory, as a queue in front of a sale would
mkdir -p "$BT/redis"
start redis redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
    --dir "$BT/redis"
wait_port "$rport" "$LAST_PID" 10 || die "redis-server did not start: $(tail -n 5 "$BT/redis.log")"
rcli() { redis-cli -p "$rport" "$@"; }

# --- the origin: one nginx worker answering "ok" to every request, POSTs included
{
    nginx_conf "$BT/origin"
    cat <<EOF
    server {
        listen 127.0.0.1:$oport;
        location / { return 200 "ok\\n"; }
    }
}
EOF
} >"$BT/origin.conf"
start_nginx origin
wait_port "$oport" "$LAST_PID" 10 || die "nginx did not start: $(tail -n 5 "$BT/origin.log")"

# --- lb: one worker, an enqueue route and a cluster route on one listener
cat >"$BT/lb.yaml" <<EOF
global:
  workers: 1
  admin: { socket: $BT/lb.sock }
  log: { level: warn, access: off }
  redis: { nodes: [127.0.0.1:$rport], instance: lb-bench, timeout: 1s }

listeners:
  - name: web
    bind: 127.0.0.1:$lport
    protocol: http
    routes:
      - match: { path_prefix: /flash/, methods: [POST] }
        enqueue: { redis_list: "$LIST", max_length: 1000000000 }
      - cluster: origin

clusters:
  origin:
    servers:
      - { name: o1, address: 127.0.0.1:$oport }
EOF
start_lb "$lport"
if [ -z "$lb_pid" ]; then
    say "lb cannot run: $lb_why"
    echo "### Sustainable rate: open-loop ramp"
    echo
    echo "Not measured: lb could not run ($lb_why)."
    exit 3
fi

# post PATH: the HTTP status of one POST of BODY through lb.
post() {
    curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H 'Content-Type: application/json' \
        --data-binary "$BODY" "http://127.0.0.1:$lport$1" || true
}
# lb probes Redis once a second before it pushes: wait for the first 202, bounded.
i=0
until [ "$(post /flash/buy)" = 202 ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || die "the enqueue route never answered 202: $(tail -n 5 "$BT/lb.log")"
    sleep 0.1
done
[ "$(post /api/buy)" = 200 ] || die "the cluster route does not answer 200 through lb"

path_of() { case $1 in enqueue) echo /flash/buy ;; cluster) echo /api/buy ;; esac; }

# step ROUTE RATE SECONDS: one bench-rate run through lb; writes "OFFERED ACHIEVED P50 P99
# P999 BAD OK STORED" to $BT/step.out (BAD: errors of every kind plus non-2xx; OK: 2xx
# answers; STORED: LLEN after the step, "-" for the cluster route). The list is emptied
# first. Not to be called in $(...): its die must stop this shell.
step() {
    rcli del "$LIST" >/dev/null
    timeout $(($3 + 60)) "$RATE" -r "$2" -d "$3" -c "$CONNS" -T 2 -m POST \
        -H 'Content-Type: application/json' -b "$BODY" "http://127.0.0.1:$lport$(path_of "$1")" \
        >"$BT/step.json" 2>"$BT/step.err" || die "bench-rate failed: $(cat "$BT/step.err")"
    figs=$(python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
ok = sum(n for s, n in j["status"].items() if s.startswith("2"))
l = j["latency_ms"]
print(j["offered_rps"], j["achieved_rps"], l["p50"], l["p99"], l["p99.9"],
      j["scheduled"] - ok, ok, j["status"].get("202", 0))' "$BT/step.json") ||
        die "no figures from bench-rate: $(cat "$BT/step.json")"
    set -- "$1" $figs
    stored=-
    if [ "$1" = enqueue ]; then
        stored=$(rcli llen "$LIST")
        # A 202 promises a stored entry; a request that timed out may still be stored.
        [ "$stored" -ge "$9" ] || die "$9 answered 202 but the list holds $stored entries"
        [ "$7" != 0 ] || [ "$stored" = "$9" ] ||
            die "$9 answered 202, nothing failed, yet the list holds $stored entries"
    fi
    echo "$2 $3 $4 $5 $6 $7 $8 $stored" >"$BT/step.out"
}

# good OFFERED P99 BAD: whether a step held: p99 within P99_MS, bad within 0.1% of offered.
good() {
    awk -v r="$1" -v p="$2" -v b="$3" -v l="$P99_MS" -v d="$STEP" \
        'BEGIN { exit !(p <= l && b <= r * d * 0.001) }'
}

# try ROUTE RATE: one step at RATE, appended to $BT/ROUTE.steps as "OFFERED ACHIEVED P50 P99
# P999 BAD OK STORED VERDICT"; a step that fails is run once more (VERDICT "retried" on the
# first), since one stall of a shared machine can spoil 5 seconds. Sets v to good or over.
try() {
    for attempt in 1 2; do
        step "$1" "$2" "$STEP"
        set -- "$1" "$2" $(cat "$BT/step.out")
        if good "$3" "$6" "$8"; then v=good; elif [ $attempt = 1 ]; then v=retried; else v=over; fi
        shift 2
        echo "$* $v" >>"$BT/$route.steps"
        say "$route: $1 req/s offered, $2 achieved, p50 $3 ms, p99 $4 ms, bad $6: $v"
        set -- "$route" "$rate"
        [ "$v" = retried ] || break
    done
}

# ramp ROUTE: the steps, then the bisection; the best rate held goes to $BT/ROUTE.best.
ramp() {
    route=$1 rate=$START lo=0 hi=0
    : >"$BT/$route.steps"
    say "$route: warming up at $START req/s for 1 s"
    step "$route" "$START" 1
    while :; do
        try "$route" "$rate"
        if [ "$v" = good ]; then lo=$rate; else hi=$rate; break; fi
        rate=$(awk -v r="$rate" -v f="$FACTOR" 'BEGIN { printf "%.0f", r * f }')
        [ "$rate" -le "$MAX_RATE" ] || break
    done
    # A first step that fails bisects down from 0, so the table still says where it holds.
    n=0
    while [ "$hi" -gt 0 ] && [ $n -lt "$BISECT" ]; do
        rate=$(( (lo + hi) / 2 ))
        try "$route" "$rate"
        if [ "$v" = good ]; then lo=$rate; else hi=$rate; fi
        n=$((n + 1))
    done
    echo "$lo" >"$BT/$route.best"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for route in $ROUTES; do
    ramp "$route"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "### Sustainable rate: open-loop ramp"
echo
echo "The same POST (${#BODY}-byte JSON body) through one lb listener (\`workers: 1\`) to an" \
    "**enqueue** route (LPUSH onto a Redis list, 202 once Redis acknowledged) and to a" \
    "**cluster** route (one nginx worker answering \`200 ok\`). \`build/bench-rate\` offers a" \
    "fixed rate over $CONNS keep-alive connections, open-loop: each request has an intended" \
    "send time and its latency runs from then, so requests that wait for a free connection" \
    "count as late (no coordinated omission). Steps of ${STEP}s from $(fmt_int "$START") req/s," \
    "x$FACTOR per step until a step fails, then $BISECT bisection steps between the last good" \
    "and the first failed rate. A failed step is run once more and fails only if it fails" \
    "twice. A step holds when its p99 is at most $P99_MS ms and errors" \
    "plus non-2xx answers are at most 0.1% of the requests offered (bench-rate's timeout: 2 s)." \
    "After each enqueue step, LLEN of the list is compared with the 202s counted." \
    "Load generator, lb, nginx and redis-server share the machine's $(nproc) cores with" \
    "whatever else runs there, so the rates are noisy: they compare the two routes in one run." \
    "Load average (1, 5, 15 min) before the ramp: $load_before; after: $load_after."
echo
echo "| route | sustainable req/s | p50 ms | p99 ms | p99.9 ms |"
echo "|---|---:|---:|---:|---:|"
for route in $ROUTES; do
    best=$(cat "$BT/$route.best")
    awk -v b="$best" -v r="$route" '$1 + 0 == b + 0 && $9 == "good" { f = $0 } END {
        if (f == "") { printf "| %s | below the first step | | | |\n", r; exit }
        split(f, a, " "); printf "| %s | %d | %.2f | %.2f | %.2f |\n", r, b, a[3], a[4], a[5] }' \
        "$BT/$route.steps"
    record ramp "$route" sustainable "$best" "$best" "$best"
done
for route in $ROUTES; do
    echo
    echo "#### $route route: every step"
    echo
    echo "| offered req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | errors + non-2xx | 2xx | LLEN | held |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    sort -s -n -k1,1 "$BT/$route.steps" | while read -r off ach p50 p99 p999 bad ok stored v; do
        [ "$v" = retried ] || record "ramp_$route" "$off" p99 "$p99" "$p99" "$p99"
        printf '| %s | %s | %.2f | %.2f | %.2f | %s | %s | %s | %s |\n' "$(fmt_int "$off")" \
            "$(fmt_int "$ach")" "$p50" "$p99" "$p999" "$bad" "$ok" "$stored" \
            "$(case $v in good) echo yes ;; retried) echo "no, run again" ;; *) echo no ;; esac)"
    done
done
record ramp limit p99_ms "$P99_MS" "$P99_MS" "$P99_MS"
echo
echo "LLEN is the length of the list after the step: at least the 202s counted (checked), more"
echo "only when a request timed out at the client after lb had pushed it."
echo
echo "Commands (ports were ephemeral; /tmp/... is the run's temp dir):"
echo
echo '```sh'
echo "redis-server --bind 127.0.0.1 --port $rport --save '' --appendonly no --dir /tmp/.../redis"
echo "nginx -c origin.conf -p /tmp/.../origin -e /tmp/.../origin/error.log"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml"
echo "build/bench-rate -r RATE -d $STEP -c $CONNS -T 2 -m POST -H 'Content-Type: application/json' \\"
echo "    -b '$BODY' http://127.0.0.1:$lport/flash/buy   # or /api/buy: the cluster route"
echo '```'
echo
echo "origin.conf:"
echo
show_file nginx "$BT/origin.conf"
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"
