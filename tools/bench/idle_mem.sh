#!/bin/sh
# Idle-connection memory benchmark: N (10,000) keep-alive client connections, each after one
# request, held open through lb (workers: 1), HAProxy in mode http (nbthread 1) and nginx as a
# reverse proxy (worker_processes 1), all in front of one nginx origin. Then, on the same
# connections, one request each all at once: DESIGN.md's "10,000 concurrent connections on 2
# cores with no errors".
#
# What it measures, per proxy and per round: the proxy's RSS (VmRSS of /proc/PID/status) and
# PSS (Pss of /proc/PID/smaps_rollup) once it has answered one request, and again with the N
# connections held idle (SETTLE seconds after the last was set up); the growth divided by the
# connections held is the memory one idle connection costs in user space (kernel socket buffers are not in it, and they are the same
# for every proxy). For nginx it is the worker (the master does not see connections). Each
# round starts each proxy afresh, so memory freed by an earlier round cannot hide growth, and
# the order rotates by one every round. Errors are connections that failed to connect, to get
# their first answer, to stay open while idle, or to get their second answer.
#
# The client is tools/bench/idle_client.py: it binds its sockets to 127.0.0.2..127.0.0.9 (the
# ephemeral ports of one source address run out), sets up at most 256 connections at a time
# and holds them.
#
# If build/lb cannot run (it exits or never listens), the script says why, measures the rest
# and exits 3.
#
# Environment: ROUNDS (3; QUICK=1: 1), CONNS (10000), LB (path to lb).
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need nginx haproxy pgrep python3 awk
CLIENT=$BENCH_ROOT/tools/bench/idle_client.py

if [ "${QUICK:-0}" = 1 ]; then ROUNDS=${ROUNDS:-1}; else ROUNDS=${ROUNDS:-3}; fi
CONNS=${CONNS:-10000}
# Seconds between the client's pause (halfway, and with all held) and the memory reading,
# the same for every proxy: long enough for one that gives back what a burst of set-ups
# took (lb returns the pages of header buffers no request used for a second) to have done
# so, since what is measured is memory held while connections are idle.
SETTLE=3
[ $((CONNS + 256)) -le "$NOFILE" ] ||
    die "$CONNS connections need ulimit -n above $((CONNS + 256)); the hard limit is $NOFILE"

set -- $(free_ports 4)
oport=$1 lport=$2 hport=$3 nport=$4

BODY="lb-bench: idle connections; a small, fixed body."

# --- the origin: one nginx worker answering every request with BODY
{
    nginx_conf "$BT/origin"
    cat <<EOF2
    server {
        listen 127.0.0.1:$oport;
        location / { return 200 "$BODY"; }
    }
}
EOF2
} >"$BT/origin.conf"
start_nginx origin
origin_pid=$LAST_PID
wait_port "$oport" "$origin_pid" 10 || die "nginx origin did not start: $(tail -n 5 "$BT/origin.log")"
BENCH_PIDS="$BENCH_PIDS $(nginx_workers "$origin_pid")"

# --- the proxies' configs: keep-alive on both sides, idle timeouts far beyond a run
cat >"$BT/haproxy.cfg" <<EOF2
global
    nbthread 1
    maxconn $((CONNS + 1000))
    # HAProxy wants two descriptors per connection and will not start when the hard limit
    # is below that; an idle client connection takes one, so let it run with what there is.
    no strict-limits

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 5m
    timeout server 5m
    timeout http-keep-alive 5m

listen web
    bind 127.0.0.1:$hport
    server o1 127.0.0.1:$oport
EOF2
haproxy -c -q -f "$BT/haproxy.cfg" >"$BT/haproxy-check.log" 2>&1 ||
    die "haproxy rejects its config: $(cat "$BT/haproxy-check.log")"

{
    nginx_conf "$BT/proxy"
    cat <<EOF2
    upstream origin {
        server 127.0.0.1:$oport;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$nport backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF2
} >"$BT/proxy.conf"

cat >"$BT/lb.yaml" <<EOF2
global:
  workers: 1
  max_connections: 30000
  admin: { socket: $BT/lb.sock }
  log: { level: warn, access: off }

listeners:
  - name: web
    bind: 127.0.0.1:$lport
    protocol: http
    timeouts: { idle: 300s }
    routes:
      - cluster: origin

clusters:
  origin:
    servers:
      - { name: o1, address: 127.0.0.1:$oport }
EOF2

# up TARGET: starts TARGET afresh and sets PROXY_PID (the process whose memory counts), or
# returns 1 (lb only: lb_why says why).
up() {
    case $1 in
        lb)
            start_lb "$lport" lb
            [ -n "$lb_pid" ] || return 1
            PROXY_PID=$lb_pid UP_PIDS=$lb_pid ;;
        haproxy)
            start haproxy haproxy -db -f "$BT/haproxy.cfg"
            UP_PIDS=$LAST_PID PROXY_PID=$LAST_PID
            wait_port "$hport" "$LAST_PID" 10 ||
                die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")" ;;
        nginx)
            start_nginx proxy
            wait_port "$nport" "$LAST_PID" 10 ||
                die "nginx proxy did not start: $(tail -n 5 "$BT/proxy.log")"
            PROXY_PID=$(nginx_workers "$LAST_PID") || die "nginx proxy has no worker"
            # The worker is not our child, but we started it: stop it too.
            BENCH_PIDS="$BENCH_PIDS $PROXY_PID"
            UP_PIDS="$LAST_PID $PROXY_PID" ;;
    esac
}
port_of() { case $1 in lb) echo "$lport" ;; haproxy) echo "$hport" ;; nginx) echo "$nport" ;; esac; }

# mem PID: "RSS_KIB PSS_KIB" (PSS "-" without smaps_rollup).
mem() {
    rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status")
    pss=$(awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || true)
    echo "$rss ${pss:--}"
}

# wait_status FILE WORD SECONDS: waits for the client's status line starting with WORD and
# prints it; 1 if the client exits or time runs out first.
wait_status() {
    i=0
    while [ $i -lt $(($3 * 10)) ]; do
        if [ -f "$1" ] && line=$(cat "$1") && [ "${line%% *}" = "$2" ]; then
            echo "$line"
            return 0
        fi
        kill -0 "$client_pid" 2>/dev/null || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# run_once TARGET ROUND: appends "TARGET ROUND HELD RSS_B_PER_CONN PSS_B_PER_CONN RSS0_KIB
# RSS1_KIB SETUP_ERRORS P50_US P99_US SETUP_S IDLE_ERRORS ACTIVE_ERRORS
# RSS_B_PER_CONN_SECOND_HALF" to $BT/results.
run_once() {
    target=$1 round=$2 port=$(port_of "$1")
    up "$target" || return 0
    # One request first, so what a proxy sets up lazily for its first client is not counted.
    python3 -c 'import sys, urllib.request
urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5).read()' "$port" ||
        die "$target does not answer"
    sleep 0.5
    set -- $(mem "$PROXY_PID")
    rss0=$1 pss0=$2
    rm -f "$BT/status"
    start client python3 "$CLIENT" "$port" "$CONNS" "$BT/status"
    client_pid=$LAST_PID
    half=$(wait_status "$BT/status" half 300) ||
        die "the client against $target failed: $(tail -n 5 "$BT/client.log")"
    set -- $half
    held_h=$2
    sleep "$SETTLE"
    set -- $(mem "$PROXY_PID")
    rss_h=$1
    kill -USR1 "$client_pid"
    idle=$(wait_status "$BT/status" idle 300) ||
        die "the client against $target failed: $(tail -n 5 "$BT/client.log")"
    set -- $idle
    held=$2 setup_s=$4
    sleep "$SETTLE"
    set -- $(mem "$PROXY_PID")
    rss1=$1 pss1=$2
    kill -USR1 "$client_pid"
    active=$(wait_status "$BT/status" active 120) ||
        die "the client against $target failed: $(tail -n 5 "$BT/client.log")"
    set -- $active
    e_setup=$3 e_idle=$4 e_active=$5 p50=$6 p99=$7
    stop "$client_pid"
    [ -s "$BT/client.log" ] && say "$target: $(head -n 3 "$BT/client.log" | tr '\n' ' ')"
    for p in $UP_PIDS; do stop "$p"; done
    if [ "$target" = nginx ] && [ -f "$BT/proxy/error.log" ]; then
        # Why nginx failed requests, if it did: its error log says.
        grep -o '[a-z_]*([0-9]*: [^)]*)\|worker_connections are not enough' "$BT/proxy/error.log" |
            sort | uniq -c | sort -rn | head -n 2 >>"$BT/nginx-why" || true
        : >"$BT/proxy/error.log"
    fi
    per() { awk -v a="$1" -v b="$2" -v n="$held" 'BEGIN {
        if (a == "-" || b == "-" || n == 0) print "-"; else printf "%.0f", (b - a) * 1024 / n }'; }
    rb=$(per "$rss0" "$rss1") pb=$(per "$pss0" "$pss1")
    mb=$(awk -v a="$rss_h" -v b="$rss1" -v n="$((held - held_h))" 'BEGIN {
        if (n <= 0) print "-"; else printf "%.0f", (b - a) * 1024 / n }')
    echo "$target $round $held $rb $pb $rss0 $rss1 $e_setup $p50 $p99 $setup_s $e_idle" \
        "$e_active $mb" >>"$BT/results"
    say "round $round $target: $held held in ${setup_s}s, RSS $rss0 -> $rss1 KiB ($rb B/conn," \
        "PSS $pb B/conn; second half $mb B/conn), errors: setup $e_setup idle $e_idle all-at-once $e_active;" \
        "all-at-once p50 ${p50}us p99 ${p99}us"
}

TARGETS="lb haproxy nginx"
say "$CONNS idle connections per proxy, $ROUNDS rounds"
: >"$BT/results"
order=$TARGETS
r=1
while [ $r -le "$ROUNDS" ]; do
    for t in $order; do run_once "$t" $r; done
    set -- $order
    first=$1; shift
    order="$* $first"
    r=$((r + 1))
done
lb_ran=$(awk '$1 == "lb"' "$BT/results")

col() { # TARGET FIELD: "median min max" (3 held, 4 RSS B/conn, 5 PSS B/conn, 9 p50, 10 p99,
        # 14 RSS B/conn of the second half)
    awk -v t="$1" -v f="$2" '$1 == t && $f != "-" { print $f }' "$BT/results" | stats
}
med() { col "$@" | cut -d' ' -f1; }
errors_of() { # TARGET FIELD (8 setup, 12 idle, 13 all-at-once): the sum over rounds
    awk -v t="$1" -v f="$2" '$1 == t { e += $f } END { print e + 0 }' "$BT/results"
}
row() { # TARGET LABEL
    e="$(errors_of "$1" 8) | $(errors_of "$1" 12) | $(errors_of "$1" 13)"
    record idle_mem "$1" rss_per_conn $(col "$1" 4)
    record idle_mem "$1" pss_per_conn $(col "$1" 5)
    record idle_mem "$1" rss_per_conn_marginal $(col "$1" 14)
    record c10k "$1" p50 $(col "$1" 9)
    record c10k "$1" p99 $(col "$1" 10)
    set -- "$2" $(col "$1" 4) $(col "$1" 5) $(col "$1" 14) $(col "$1" 3) $(col "$1" 9) \
        $(col "$1" 10)
    printf '| %s |' "$1"; shift
    for v in "$@"; do printf ' %s |' "$(fmt_int "$v")"; done
    printf ' %s |\n' "$e"
}

echo "### Memory: $(fmt_int "$CONNS") idle keep-alive client connections, then one request on each at once"
echo
echo "\`python3 tools/bench/idle_client.py PORT $CONNS STATUS\`: $CONNS connections to each" \
    "proxy (source addresses 127.0.0.2 to 127.0.0.9, at most 256 being set up at a time)," \
    "one \`GET /\` on each, all then held open; $ROUNDS rounds, each proxy started afresh" \
    "every round, the order rotating by one. Bytes per connection are the growth of the" \
    "proxy's RSS (VmRSS) and PSS (smaps_rollup) from after its first request to with the" \
    "connections held (read ${SETTLE}s after the last was set up), divided by the connections held (user space only: kernel socket" \
    "memory is not in it); for nginx the worker. The client pauses halfway: \"second half\"" \
    "is the growth from $((CONNS / 2)) to $CONNS connections over the connections added, the" \
    "marginal cost, without memory a proxy touches once whatever the count (buffer pools). Then every held connection sends one more" \
    "request at the same moment: p50/p99 of those answers as the client timed them." \
    "Errors, summed over the rounds: setup (failed to connect or to get the first answer)," \
    "idle (closed by the proxy while held) and all at once (no good second answer). All three proxies forward to one nginx origin. Open-file limit" \
    "(ulimit -n, hard) for every process: $NOFILE."
echo
printf '| proxy | RSS B/conn median | min | max | PSS B/conn median | min | max |'
printf ' second half RSS B/conn median | min | max |'
printf ' held median | min | max | all-at-once p50 µs median | min | max | p99 µs median | min | max |'
printf ' errors: setup | idle | all at once |\n'
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row haproxy "HAProxy $(haproxy -v | head -n 1 | awk '{print $3}'), mode http, nbthread 1"
row nginx "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), proxy_pass, worker_processes 1"
if [ -n "$lb_ran" ]; then
    row lb "lb, workers: 1"
    for peer in haproxy nginx; do
        printf '| **lb / %s** (medians) | %s | | | %s | | | %s | | | | | | | | | | | | | | |\n' \
            "$(echo $peer | sed 's/haproxy/HAProxy/')" "$(ratio "$(med lb 4)" "$(med $peer 4)")" \
            "$(ratio "$(med lb 5)" "$(med $peer 5)")" "$(ratio "$(med lb 14)" "$(med $peer 14)")"
    done
    echo
    rb=$(med lb 4) mb=$(med lb 14)
    lerr=$(( $(errors_of lb 8) + $(errors_of lb 12) + $(errors_of lb 13) ))
    verdict() { awk -v b="$1" 'BEGIN { if (b == "-") print "not measured";
                                       else print (b < 256) ? "met" : "not met" }'; }
    v2=$(awk -v e="$lerr" -v h="$(med lb 3)" -v n="$CONNS" 'BEGIN {
        print (e == 0 && h == n) ? "met" : "not met" }')
    echo "Targets (DESIGN.md): an idle keep-alive client connection costs lb under 256 bytes;" \
        "this run: $rb bytes of RSS growth over all held ($(verdict "$rb")), $mb over the" \
        "second half ($(verdict "$mb")). $(fmt_int "$CONNS") concurrent connections on" \
        "$(nproc) cores with no errors; this run: lb held $(med lb 3) and had $lerr errors: $v2."
    echo
    echo "Where the two differ for lb: an idle client's own state is a struct http_parked of" \
        "104 bytes (slot, generation, timers, its stream, the client's address and limit" \
        "state; lb/http/park.c) from the worker's pool, plus its 8-byte pointer in the" \
        "worker's slot table (allocated for max_connections, a page counting only once used);" \
        "a request moves it into a full struct http_conn (400 bytes) until its answer is" \
        "sent. That is the second-half figure. The rest of the growth over all held is paid" \
        "once, for the requests in flight while the connections were set up (at most 256 at a" \
        "time), whatever the number held: the provided-buffer ring's buffers (16 KiB each, the" \
        "first page touched; the ring starts at 256 buffers and grows only while most are" \
        "held), full connection objects (client and backend, kept in the pool for the next" \
        "burst) and 16 header buffers kept warm (the pages of the others go back to the" \
        "kernel once unused for a second)." \
        "When all connections ask at once, every request needs a backend connection: lb" \
        "opens at most 64 unproven ones per worker at a time and queues the rest for one to" \
        "come free (docs/config.md, connection pacing), so that the origin's listen queue" \
        "never overflows; a SYN dropped there would wait a second for its retransmit, as" \
        "long as the default connect timeout."
    if [ -s "$BT/nginx-why" ]; then
        echo
        echo "nginx's error log during its runs (count, cause):" \
            "$(awk '{ $1 = $1 " x"; print }' "$BT/nginx-why" | sort -u | tr '\n' ';' | sed 's/;$//')."
    fi
    warn=$(grep -m 1 'open file limit too low' "$BT/lb.log" 2>/dev/null | sed "s|$BT/|/tmp/.../|g" || true)
    if [ -n "$warn" ]; then
        echo
        echo "lb said, at start: \`$warn\`. It reserves two descriptors per client connection" \
            "(the client's and a backend's) plus 1,024, so with a hard limit of $NOFILE it" \
            "accepts at most $(( (NOFILE - 1024) / 2 )) connections and refuses the rest; the" \
            "hard limit cannot be raised here (no CAP_SYS_RESOURCE)."
    fi
else
    echo "| lb, workers: 1 | not run: $lb_why | | | | | | | | | | | | | | | | | | | | |"
fi
echo
echo "Commands (ports were ephemeral; /tmp/... is the run's temp dir):"
echo
echo '```sh'
echo "nginx -c origin.conf -p /tmp/.../origin -e /tmp/.../origin/error.log     # origin"
echo "haproxy -db -f haproxy.cfg"
echo "nginx -c proxy.conf -p /tmp/.../proxy -e /tmp/.../proxy/error.log        # nginx as a proxy"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml"
echo "python3 tools/bench/idle_client.py PORT $CONNS STATUS" \
    "   # PORT: $lport lb, $hport haproxy, $nport nginx"
echo '```'
echo
echo "haproxy.cfg:"
echo
echo '```'
cat "$BT/haproxy.cfg"
echo '```'
echo
echo "proxy.conf (nginx as a proxy; origin.conf is the L7 section's with this body):"
echo
show_file nginx "$BT/proxy.conf"
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"

[ -n "$lb_ran" ] || exit 3
exit 0
