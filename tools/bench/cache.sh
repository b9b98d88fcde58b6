#!/bin/sh
# Cache benchmark: lb's route cache against nginx proxy_cache and Varnish, serving the same
# keys from the same origin in the same run. The origin is nginx serving static JSON files
# with Cache-Control: max-age=3600: 100 keys of 1 KiB (/k/1k/0.json ... 99.json) and 100 of
# 16 KiB (/k/16k/...). A wrk script spreads the requests over the 100 keys of one size.
#
# Workloads (one table each):
#   hit 1 KiB, 64 connections; hit 16 KiB, 64; hit 1 KiB, 1,000 (keep-alive, every key warmed
#   before the runs): lb answers from its L1 (per worker) cache, nginx from its proxy_cache
#   (files on disk, through the page cache), Varnish from malloc storage.
#   miss 1 KiB, 64 connections: every request carries a query of its own (?m=RUN-N), so every
#   request is a lookup that misses, a fetch from the origin and a store; lb without a cache
#   on the same route is the reference for plain proxying.
#   L2 (issue 17's shared cache over Redis), if this lb has it: an lb whose L1 is too small to
#   hold any answer (max_bytes: 1k holds nothing above 128 bytes), so every hit comes from
#   Redis (L2 hit, in the hit 1 KiB table), and the unique-query misses through L1 and L2
#   (in the miss table). When `lb -t` rejects the `caches:` config, those rows say
#   "L2: not built in this lb" and are skipped.
#
# One worker or thread each where it can be set: lb workers: 1, nginx worker_processes 1,
# Varnish thread_pools=1 (Varnish runs a thread per active connection: that cannot be
# pinned to one, so it is held to the same core instead; its pool is sized for the
# connections, thread_pool_min = connections + 64). Every server (the caches, Redis)
# runs on one core (taskset -c SERVER_CPU) and wrk and the origin on the other
# (LOAD_CPU), so the cache under test has its core to itself.
#
# Before the runs, each cache is checked: every key fetched once (the origin counts the
# requests: nginx stub_status), then again: the second pass must come with X-Cache: HIT, an
# Age header, the file's exact bytes and no origin request. Each run also counts origin
# requests: the table's "origin req / req" is 0 for hits and 1 for misses, or the figures
# are not what they claim.
#
# What it measures, per workload, target and round: requests/s, p50 and p99 as `wrk
# --latency` reports them, p99.9 from the wrk script's done() hook, and the cache server's
# CPU time (utime+stime from /proc/PID/stat; nginx master + worker, Varnish manager + child)
# over the run divided by the requests wrk completed; for the L2 rows Redis's CPU per request
# too. Targets take turns within each round and the order rotates every round.
#
# If build/lb cannot run, the script says why, measures the rest and exits 3. Varnish or
# Redis missing: their rows say so and are skipped (tools/deps.sh installs both).
#
# Environment: ROUNDS (3; QUICK=1: 1), DURATION seconds per run (3; QUICK=1: 2), CLIENTS
# (unset: 64, and 1,000 for the 1 KiB hits; set: that count only), SERVER_CPU (1), LOAD_CPU
# (0), LB (path to lb).
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need wrk nginx pgrep python3 awk taskset

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-2}
else
    ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-3}
fi
WARMUP=1
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
if [ "$(nproc)" -ge 2 ]; then
    ON_SERVER="taskset -c $SERVER_CPU" ON_LOAD="taskset -c $LOAD_CPU"
    PINNED="servers on CPU $SERVER_CPU, wrk and the origin on CPU $LOAD_CPU (taskset)"
else
    ON_SERVER="" ON_LOAD=""
    PINNED="not pinned: this machine has one core"
fi
# A workload: NAME SIZE CONNECTIONS MODE
if [ -n "${CLIENTS:-}" ]; then
    WORKLOADS="hit1k:1k:$CLIENTS:hit hit16k:16k:$CLIENTS:hit miss1k:1k:$CLIENTS:miss"
else
    WORKLOADS="hit1k:1k:64:hit hit16k:16k:64:hit hit1k_c1000:1k:1000:hit miss1k:1k:64:miss"
fi
for w in $WORKLOADS; do
    c=$(echo "$w" | cut -d: -f3)
    [ $((c + 256)) -le "$NOFILE" ] ||
        die "$c connections need ulimit -n above $((c + 256)); the hard limit is $NOFILE"
done

set -- $(free_ports 8)
oport=$1 lport=$2 pport=$3 nport=$4 vport=$5 l2port=$6 r1port=$7 r2port=$8

# --- the keys: 100 JSON documents of exactly 1,024 bytes and 100 of 16,384
mkdir -p "$BT/www/k/1k" "$BT/www/k/16k"
python3 - "$BT/www/k" <<'EOF2'
import json, sys
for size in (1024, 16384):
    for k in range(100):
        n = size // 64
        doc = {"key": k, "items": [{"id": i, "v": (k * 31 + i) % 997} for i in range(n)], "pad": ""}
        s = json.dumps(doc, separators=(",", ":"))
        while len(s) + 1 > size:
            doc["items"].pop()
            s = json.dumps(doc, separators=(",", ":"))
        doc["pad"] = "x" * (size - 1 - len(s))
        s = json.dumps(doc, separators=(",", ":")) + "\n"
        assert len(s) == size, (size, len(s))
        open("%s/%dk/%d.json" % (sys.argv[1], size // 1024, k), "w").write(s)
EOF2

# --- the origin: one nginx worker, the files from disk, fresh for an hour; /status counts
# every request it was asked
{
    nginx_conf "$BT/origin"
    cat <<EOF2
    types { application/json json; }
    sendfile on;
    open_file_cache max=1000 inactive=60s;
    server {
        listen 127.0.0.1:$oport;
        root $BT/www;
        location /k/ { add_header Cache-Control "max-age=3600"; }
        location = /status { stub_status; }
    }
}
EOF2
} >"$BT/origin.conf"
mkdir -p "$BT/origin"
nginx -t -q -c "$BT/origin.conf" -p "$BT/origin" -e "$BT/origin/error.log" \
    >"$BT/origin-check.log" 2>&1 || die "nginx rejects origin.conf: $(cat "$BT/origin-check.log")"
start origin $ON_LOAD nginx -c "$BT/origin.conf" -p "$BT/origin" -e "$BT/origin/error.log"
origin_pid=$LAST_PID
wait_port "$oport" "$origin_pid" 10 || die "nginx origin did not start: $(tail -n 5 "$BT/origin.log")"

# pin PID: every thread of a server started without taskset onto the server core.
pin() {
    [ -n "$1" ] && [ -n "$ON_SERVER" ] || return 0
    taskset -a -p -c "$SERVER_CPU" "$1" >/dev/null
}

# --- nginx proxy_cache: one worker, the cache on disk under $BT, keep-alive to the origin
{
    nginx_conf "$BT/ncache"
    cat <<EOF2
    proxy_cache_path $BT/ncache/store levels=1:2 keys_zone=pages:64m max_size=1g inactive=1h use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$oport;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$nport;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache pages;
            proxy_cache_lock on;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
EOF2
} >"$BT/ncache.conf"
mkdir -p "$BT/ncache"
nginx -t -q -c "$BT/ncache.conf" -p "$BT/ncache" -e "$BT/ncache/error.log" \
    >"$BT/ncache-check.log" 2>&1 || die "nginx rejects ncache.conf: $(cat "$BT/ncache-check.log")"
start ncache $ON_SERVER nginx -c "$BT/ncache.conf" -p "$BT/ncache" -e "$BT/ncache/error.log"
track_nginx "$nport" "nginx proxy_cache" ncache
# nginx's CPU: master, worker and cache manager (the cache loader runs once and exits).
sleep 0.5
nginx_pids=$nginx_pid
for p in $(pgrep -P "$nginx_pid"); do
    BENCH_PIDS="$BENCH_PIDS $p"
    case $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) in
        *loader*) ;;
        *) nginx_pids="$nginx_pids $p" ;;
    esac
done

# --- Varnish: malloc storage, one thread pool, the same X-Cache header
varnish_pid="" varnish_kid="" varnish_why=""
cat >"$BT/varnish.vcl" <<EOF2
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$oport"; }
sub vcl_deliver {
    if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
EOF2
VARNISHD=$(command -v varnishd || true)
[ -n "$VARNISHD" ] || [ ! -x /usr/sbin/varnishd ] || VARNISHD=/usr/sbin/varnishd
# Varnish runs a thread per busy connection and drops the sessions that find none free once
# its short queue (thread_queue_limit) is full, so its pool starts with a thread for every
# connection wrk will open, as Varnish's own tuning advice has it.
maxc=$(for w in $WORKLOADS; do echo "$w" | cut -d: -f3; done | sort -n | tail -n 1)
VARNISH_ARGS="-F -j none -n $BT/varnish -a 127.0.0.1:$vport -T none -f $BT/varnish.vcl
    -s malloc,1g -p thread_pools=1 -p thread_pool_min=$((maxc + 64))
    -p thread_pool_max=$((maxc * 2 > 2000 ? maxc * 2 : 2000))"
if [ -z "$VARNISHD" ]; then
    varnish_why="varnishd not installed (tools/deps.sh installs the varnish package)"
else
    start varnish $ON_SERVER "$VARNISHD" $VARNISH_ARGS
    if wait_port "$vport" "$LAST_PID" 30; then
        varnish_pid=$LAST_PID
        varnish_kid=$(nginx_workers "$varnish_pid") || varnish_kid=""
        BENCH_PIDS="$BENCH_PIDS $varnish_kid"
    else
        varnish_why="varnishd did not start: $(tail -n 3 "$BT/varnish.log" | tr '\n' ' ')"
        stop "$LAST_PID"
    fi
fi
[ -z "$varnish_why" ] || say "Varnish skipped: $varnish_why"

# --- lb: a cached listener and a plain one (the reference for misses), one worker
cat >"$BT/lb.yaml" <<EOF2
global:
  workers: 1
  admin: { socket: $BT/lb.sock }
  log: { level: warn, access: off }

listeners:
  - name: cached
    bind: 127.0.0.1:$lport
    protocol: http
    routes:
      - cluster: origin
        cache: { max_bytes: 1g, debug_header: on }
  - name: plain
    bind: 127.0.0.1:$pport
    protocol: http
    routes:
      - cluster: origin

clusters:
  origin:
    servers:
      - { name: o1, address: 127.0.0.1:$oport }
EOF2
start_lb "$lport"
pin "$lb_pid"
[ -n "$lb_why" ] && say "lb cannot run, its columns are skipped: $lb_why"

# --- lb with the shared L2 cache over two Redis shards, if this lb has it
l2_pid="" l2_why="" redis_pids=""
cat >"$BT/lb2.yaml" <<EOF2
global:
  workers: 1
  admin: { socket: $BT/lb2.sock }
  log: { level: warn, access: off }

listeners:
  - name: shared
    bind: 127.0.0.1:$l2port
    protocol: http
    routes:
      - cluster: origin
        # L1 of 1k keeps no answer (one entry is at most max_bytes / 8): every hit is an L2 hit
        cache: { ttl: 10s, shared: pages, max_bytes: 1k, debug_header: on }

clusters:
  origin:
    servers:
      - { name: o1, address: 127.0.0.1:$oport }

caches:
  pages:
    servers: [127.0.0.1:$r1port, 127.0.0.1:$r2port]
    max_object: 1m
EOF2
if [ -n "$lb_why" ]; then
    l2_why="L2: lb cannot run"
elif ! "$LB" -t -c "$BT/lb2.yaml" >"$BT/lb2-check.log" 2>&1; then
    # An lb without the shared cache knows neither `caches:` nor `shared:`; any other
    # complaint is this script's to fix, and said as it is.
    if grep -q -e "unknown key 'caches'" -e "unknown key 'shared'" "$BT/lb2-check.log"; then
        l2_why="L2: not built in this lb"
    else
        l2_why="L2: lb rejects lb2.yaml: $(head -n 1 "$BT/lb2-check.log" | sed "s|$BT/|/tmp/.../|")"
    fi
elif ! command -v redis-server >/dev/null 2>&1; then
    l2_why="L2: redis-server not installed (tools/deps.sh)"
else
    for rp in $r1port $r2port; do
        start "redis-$rp" $ON_SERVER redis-server --port "$rp" --bind 127.0.0.1 --save "" \
            --appendonly no --dir "$BT"
        wait_port "$rp" "$LAST_PID" 10 || die "redis-server did not start on $rp"
        redis_pids="$redis_pids $LAST_PID"
    done
    lb1_pid=$lb_pid
    start_lb "$l2port" lb2
    l2_pid=$lb_pid l2_why=${lb_why:+L2: lb did not start: $lb_why} lb_pid=$lb1_pid
    pin "$l2_pid"
fi
[ -z "$l2_why" ] || say "$l2_why; the L2 rows are skipped"

# --- probe.py: origin and Redis counters, and the hit check of one cache
cat >"$BT/probe.py" <<'EOF2'
import http.client, socket, sys

def origin(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/status")
    t = c.getresponse().read().decode()
    return int(t.splitlines()[2].split()[2]) - 1  # this request excluded

def redis(ports):
    """Commands the shards have run, summed; each INFO counts in the next one's figure."""
    n = 0
    for p in ports:
        s = socket.create_connection(("127.0.0.1", p), 5)
        s.sendall(b"INFO stats\r\n")
        buf = b""
        while b"\r\n" not in buf or len(buf) < buf.index(b"\r\n") + 2 + int(buf[1:buf.index(b"\r\n")]) + 2:
            d = s.recv(65536)
            if not d:
                raise SystemExit("redis on %d closed the connection" % p)
            buf += d
        s.close()
        for line in buf.decode().splitlines():
            if line.startswith("total_commands_processed:"):
                n += int(line.split(":")[1])
    return n

def get(c, path):
    c.request("GET", path)
    r = c.getresponse()
    return r.read(), r.getheader("X-Cache") or "", r.getheader("Age")

def check(port, oport, www, rports):
    """Prints: WARM_ORIGIN N HITS AGE BYTES_OK ORIGIN2 REDIS2 MISSES MISS_ORIGIN."""
    paths = ["/k/%s/%d.json" % (s, k) for s in ("1k", "16k") for k in range(100)]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    o0 = origin(oport)
    for p in paths:
        get(c, p)
    o1 = origin(oport)
    r1 = redis(rports)
    hits = age = ok = 0
    for p in paths:
        body, xc, a = get(c, p)
        hits += xc.upper().startswith("HIT")
        age += a is not None
        ok += body == open(www + p, "rb").read()
    o2 = origin(oport)
    r2 = redis(rports)
    miss = 0
    for i in range(20):
        body, xc, a = get(c, "/k/1k/%d.json?m=check-%d" % (i, i))
        miss += xc == "MISS"
    o3 = origin(oport)
    # Each origin() read counts in the next one's figure, hence the 1s.
    print(o1 - o0 - 1, len(paths), hits, age, ok, o2 - o1 - 1,
          r2 - r1 - len(rports) if rports else "-", miss, o3 - o2 - 1)

cmd = sys.argv[1]
if cmd == "origin":
    print(origin(int(sys.argv[2])))
elif cmd == "redis":
    print(redis([int(p) for p in sys.argv[2:]]))
elif cmd == "check":
    check(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], [int(p) for p in sys.argv[5:]])
EOF2

# --- the wrk scripts: hit.lua walks the 100 keys of one size; miss.lua asks each key with a
# query of its own, so nothing is ever asked twice. Both print p99.9 when done.
cat >"$BT/hit.lua" <<'EOF2'
local reqs, i = {}, 0
init = function(args)
    for k = 0, 99 do reqs[k + 1] = wrk.format("GET", "/k/" .. args[1] .. "/" .. k .. ".json") end
end
request = function()
    i = i % #reqs + 1
    return reqs[i]
end
EOF2
cat >"$BT/miss.lua" <<'EOF2'
local size, run, n = "1k", "x", 0
init = function(args) size, run = args[1], args[2] end
request = function()
    n = n + 1
    return wrk.format("GET", "/k/" .. size .. "/" .. (n % 100) .. ".json?m=" .. run .. "-" .. n)
end
EOF2
cat "$WRK_LUA" >>"$BT/hit.lua"
cat "$WRK_LUA" >>"$BT/miss.lua"

# The interpreter itself, not a version manager's shim in front of it: probe runs four times
# per measured run, and a shim's half second each adds up to a minute.
PY=$(python3 -c 'import sys; print(sys.executable)')
probe() { "$PY" "$BT/probe.py" "$@"; }
sum_ticks() {
    st=0
    for sp in "$@"; do st=$((st + $(cpu_ticks "$sp"))); done
    echo $st
}
server_pids() { # TARGET
    case $1 in
        lb | lb_plain) echo "$lb_pid" ;;
        lb_l2) echo "$l2_pid" ;;
        nginx) echo "$nginx_pids" ;;
        varnish) echo "$varnish_pid $varnish_kid" ;;
    esac
}
port_of() {
    case $1 in lb) echo "$lport" ;; lb_plain) echo "$pport" ;; lb_l2) echo "$l2port" ;;
        nginx) echo "$nport" ;; varnish) echo "$vport" ;; esac
}
runs() {
    case $1 in
        lb | lb_plain) [ -n "$lb_pid" ] ;;
        lb_l2) [ -n "$l2_pid" ] ;;
        varnish) [ -n "$varnish_pid" ] ;;
        *) true ;;
    esac
}
why_not() {
    case $1 in lb | lb_plain) echo "$lb_why" ;; lb_l2) echo "$l2_why" ;;
        varnish) echo "$varnish_why" ;; esac
}
NGINX_VER=$(nginx -v 2>&1 | sed 's|.*nginx/||')
VARNISH_VER=$("${VARNISHD:-varnishd}" -V 2>&1 | head -n 1 | sed 's/.*varnish-\([^ ]*\).*/\1/')
label() {
    case $1 in
        lb) echo "lb route cache (L1), workers: 1" ;;
        lb_plain) echo "lb without a cache (plain proxying), workers: 1" ;;
        lb_l2) echo "lb shared cache (L2, 2 Redis shards; L1 holds nothing), workers: 1" ;;
        nginx) echo "nginx $NGINX_VER proxy_cache, worker_processes 1" ;;
        varnish) echo "Varnish $VARNISH_VER, malloc, thread_pools=1" ;;
    esac
}

# --- the check: every cache really hits, with the file's bytes, before anything is measured
check_failed=""
: >"$BT/checks"
for t in lb lb_l2 nginx varnish; do
    runs "$t" || continue
    rp=""; [ "$t" = lb_l2 ] && rp="$r1port $r2port"
    res=$(probe check "$(port_of "$t")" "$oport" "$BT/www" $rp) ||
        die "the check of $t failed"
    set -- $res
    verdict=ok
    # nginx sends no Age header on hits (its proxy_cache never adds one): not held against it.
    [ "$3" = "$2" ] && { [ "$4" = "$2" ] || [ "$t" = nginx ]; } && [ "$5" = "$2" ] && [ "$6" = 0 ] && [ "$8" = 20 ] &&
        [ "$9" = 20 ] || verdict=FAILED
    [ "$t" != lb_l2 ] || [ "$7" -ge "$2" ] || verdict=FAILED
    [ $verdict = ok ] || check_failed="$check_failed $t"
    echo "$t $res $verdict" >>"$BT/checks"
    say "check $t: warm-up origin +$1; again $2 requests: $3 X-Cache HIT, $4 with Age," \
        "$5 exact bodies, origin +$6, Redis commands +$7; 20 unique queries: $8 MISS," \
        "origin +$9: $verdict"
done

# run_once WORKLOAD TARGET ROUND: one wrk run; appends "WORKLOAD TARGET ROUND REQ_PER_S P50_US
# P99_US P999_US CPU_US_PER_REQUEST ERRORS ORIGIN_PER_REQUEST REDIS_CPU_US REDIS_CMDS_PER_REQ"
# to $BT/results, or nothing for ROUND 0 (a warm-up of WARMUP seconds).
run_once() {
    target=$2 round=$3
    size=$(echo "$1" | cut -d: -f2) conns=$(echo "$1" | cut -d: -f3)
    mode=$(echo "$1" | cut -d: -f4) rw=${1%%:*}
    d=$DURATION
    [ "$round" = 0 ] && d=$WARMUP
    rp=""; [ "$target" = lb_l2 ] && rp="$r1port $r2port"
    o0=$(probe origin "$oport")
    c0=$(sum_ticks $(server_pids "$target"))
    r0=0 rc0=0
    [ -z "$rp" ] || { r0=$(sum_ticks $redis_pids); rc0=$(probe redis $rp); }
    if ! timeout $((d + 30)) $ON_LOAD wrk -t1 -c"$conns" -d"${d}s" --latency -s "$BT/$mode.lua" \
        "http://127.0.0.1:$(port_of "$target")" -- "$size" "$target$round$$$(date +%s%N)" \
        >"$BT/run.out" 2>"$BT/run.err"; then
        die "wrk $rw against $target failed: $(tail -n 3 "$BT/run.out" "$BT/run.err")"
    fi
    c1=$(sum_ticks $(server_pids "$target"))
    r1=0 rc1=0
    [ -z "$rp" ] || { r1=$(sum_ticks $redis_pids); rc1=$(probe redis $rp); }
    o1=$(probe origin "$oport")
    summary=$(wrk_summary "$BT/run.out") ||
        die "no figures from wrk $rw against $target: $(cat "$BT/run.out" "$BT/run.err")"
    set -- $summary
    n=$1 rps=$2 p50=$3 p99=$4 p999=$5 errs=$6
    [ "$n" -gt 0 ] || die "wrk $rw completed no request against $target"
    cpu=$(ticks_to_us_per $((c1 - c0)) "$n")
    opr=$(awk -v o=$((o1 - o0 - 1)) -v n="$n" 'BEGIN { printf "%.2f", o / n }')
    rcpu="-" rcmd="-"
    if [ -n "$rp" ]; then
        rcpu=$(ticks_to_us_per $((r1 - r0)) "$n")
        rcmd=$(per_req $((rc1 - rc0 - 2)) "$n")
    fi
    if [ "$round" != 0 ]; then
        echo "$rw $target $round $rps $p50 $p99 $p999 $cpu $errs $opr $rcpu $rcmd" >>"$BT/results"
        say "$rw round $round $target: $rps req/s p50 ${p50}us p99 ${p99}us p99.9 ${p999}us" \
            "server CPU ${cpu}us/req origin/req $opr Redis CPU ${rcpu}us/req errors $errs"
        [ "$errs" = 0 ] ||
            say "  $(grep -E 'Socket errors|Non-2xx' "$BT/run.out" | tr '\n' ' ' | tr -s ' ')"
    fi
}

targets_of() { # WORKLOAD
    case $1 in
        hit1k:*:64:*) echo "lb lb_l2 nginx varnish" ;;
        miss*) echo "lb_plain lb lb_l2 nginx varnish" ;;
        *) echo "lb nginx varnish" ;;
    esac
}

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
: >"$BT/results"
for w in $WORKLOADS; do
    say "${w%%:*}: ${DURATION}s per run, $ROUNDS rounds; warming up"
    order=$(targets_of "$w")
    for t in $order; do
        if runs "$t"; then run_once "$w" "$t" 0; fi
    done
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for t in $order; do
            if runs "$t"; then run_once "$w" "$t" $r; fi
        done
        set -- $order
        first=$1; shift
        order="$* $first"
        r=$((r + 1))
    done
done
LOAD1=$(cut -d' ' -f1 /proc/loadavg)

# col WORKLOAD TARGET FIELD: "median min max" of one column (4 req/s, 5 p50, 6 p99, 7 p99.9,
# 8 CPU, 10 origin/req, 11 Redis CPU, 12 Redis commands/req).
col() {
    awk -v w="$1" -v t="$2" -v f="$3" '$1 == w && $2 == t && $f != "-" { print $f }' \
        "$BT/results" | stats
}
med() { col "$@" | cut -d' ' -f1; }
errors_of() { awk -v w="$1" -v t="$2" '$1 == w && $2 == t { e += $9 } END { print e + 0 }' \
    "$BT/results"; }
row() { # WORKLOAD TARGET
    if ! runs "$2"; then
        echo "| $(label "$2") | not run: $(why_not "$2") | | | | | | | | | | | | | | | | | |"
        return
    fi
    e=$(errors_of "$1" "$2")
    for fm in 4:rps 5:p50 6:p99 7:p999 8:cpu; do
        record "cache_$1" "$2" "${fm#*:}" $(col "$1" "$2" "${fm%:*}")
    done
    extra="$(fmt_dec "$(med "$1" "$2" 11)") | $(med "$1" "$2" 10) | $e"
    set -- "$(label "$2")" $(col "$1" "$2" 4) $(col "$1" "$2" 5) $(col "$1" "$2" 6) \
        $(col "$1" "$2" 7) $(col "$1" "$2" 8)
    printf '| %s |' "$1"; shift
    for v in "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10}" "${11}" "${12}"; do
        printf ' %s |' "$(fmt_int "$v")"
    done
    printf ' %s | %s | %s | %s |\n' "$(fmt_dec "${13}")" "$(fmt_dec "${14}")" \
        "$(fmt_dec "${15}")" "$extra"
}
ratio_row() { # WORKLOAD LABEL A B: A / B for req/s, p50, p99, p99.9 and CPU (medians)
    runs "$3" && runs "$4" || return 0
    printf '| **%s** (medians) | %s | | | %s | | | %s | | | %s | | | %s | | | | | |\n' "$2" \
        "$(ratio "$(med "$1" "$3" 4)" "$(med "$1" "$4" 4)")" \
        "$(ratio "$(med "$1" "$3" 5)" "$(med "$1" "$4" 5)")" \
        "$(ratio "$(med "$1" "$3" 6)" "$(med "$1" "$4" 6)")" \
        "$(ratio "$(med "$1" "$3" 7)" "$(med "$1" "$4" 7)")" \
        "$(ratio "$(med "$1" "$3" 8)" "$(med "$1" "$4" 8)")"
}

title_of() { # WORKLOAD
    case $1 in
        hit1k*) echo "Hits, 1,024-byte answers, $(echo "$1" | cut -d: -f3) keep-alive connections" ;;
        hit16k:*) echo "Hits, 16,384-byte answers, $(echo "$1" | cut -d: -f3) keep-alive connections" ;;
        miss1k:*) echo "Misses, 1,024-byte answers, $(echo "$1" | cut -d: -f3) keep-alive connections" ;;
    esac
}

echo "### Cache: lb's route cache against nginx proxy_cache and Varnish"
echo
echo "One nginx origin serves 100 JSON files of 1,024 bytes and 100 of 16,384 from disk with" \
    "\`Cache-Control: max-age=3600\`; every cache fetches from it with keep-alive connections." \
    "\`wrk -t1 -cCLIENTS -d${DURATION}s --latency -s hit.lua URL -- SIZE\` spreads the requests" \
    "over the 100 keys of one size, all of them cached before the runs; for misses, miss.lua" \
    "gives every request a query of its own (\`?m=RUN-N\`), so each is a lookup that misses," \
    "a fetch and a store. $ROUNDS rounds, targets taking turns within each round and the order" \
    "rotating by one every round, after a ${WARMUP}s warm-up of each. Cores: $PINNED." \
    "Server CPU is the cache's utime+stime during a run divided by the requests wrk" \
    "completed (clock ticks of 1/${CLK_TCK}s): lb's one process, nginx's master, worker and" \
    "cache manager, Varnish's manager and child; Redis's CPU is a column of its own." \
    "Origin req / req is the origin's request count (stub_status) during the run divided by" \
    "the requests wrk completed: 0.00 proves the run was served from the cache, 1.00 that" \
    "every request missed (a little above 1.00: the requests in flight when wrk stops reach" \
    "the origin but are not counted by wrk). Each cache adds an X-Cache header (lb \`debug_header: on\`, nginx" \
    "\`\$upstream_cache_status\`, Varnish from \`obj.hits\` in vcl_deliver)."
if awk -v l="$LOAD0" -v n="$(nproc)" 'BEGIN { exit !(l >= n / 4) }'; then
    echo
    echo "These figures come from a shared machine: other work was running (load average" \
        "$LOAD0 when this section started, $LOAD1 when it ended), so requests/s are noisy;" \
        "CPU per request is less affected."
fi
echo
echo "#### Check before the runs: each cache hits"
echo
echo "Every key (100 of each size) fetched once, then again on the same connection; then 20" \
    "requests with a query of their own. For the L2 row, Redis commands counted during the" \
    "second pass show that the hits came from Redis, not from L1."
echo
echo "| cache | origin requests, first pass | second pass: requests | X-Cache: HIT | with Age | exact bytes | origin requests | Redis commands | unique queries: X-Cache: MISS | origin requests | verdict |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
while read -r t a b c d e f g h i v; do
    echo "| $(label "$t") | $a | $b | $c | $d | $e | $f | $g | $h of 20 | $i | $v |"
done <"$BT/checks"
for t in lb lb_l2 varnish; do
    runs "$t" || echo "| $(label "$t") | not run: $(why_not "$t") | | | | | | | | | |"
done
[ -z "$l2_why" ] || { echo; echo "$l2_why; its rows are skipped."; }
for w in $WORKLOADS; do
    name=${w%%:*}
    echo
    echo "#### $(title_of "$w")"
    echo
    printf '| cache | req/s median | min | max | p50 µs median | min | max |'
    printf ' p99 µs median | min | max | p99.9 µs median | min | max |'
    printf ' server CPU µs/req median | min | max | Redis CPU µs/req | origin req / req | errors |\n'
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in $(targets_of "$w"); do row "$name" "$t"; done
    ratio_row "$name" "lb / nginx" lb nginx
    ratio_row "$name" "lb / Varnish" lb varnish
    case $name in
        miss*) ratio_row "$name" "lb cached miss / lb without a cache" lb lb_plain
               ratio_row "$name" "lb L2 miss / lb L1 miss" lb_l2 lb ;;
        *) case " $(targets_of "$w") " in
               *" lb_l2 "*) ratio_row "$name" "lb L2 hit / lb L1 hit" lb_l2 lb ;;
           esac ;;
    esac
    if runs lb_l2 && case " $(targets_of "$w") " in *" lb_l2 "*) true ;; *) false ;; esac; then
        echo
        echo "Redis commands per request for the L2 row (median): $(med "$name" lb_l2 12)."
    fi
done
echo
echo "Commands (ports were ephemeral; /tmp/... is the run's temp dir):"
echo
echo '```sh'
echo "$ON_LOAD nginx -c origin.conf -p /tmp/.../origin -e /tmp/.../origin/error.log   # origin"
echo "$ON_SERVER nginx -c ncache.conf -p /tmp/.../ncache -e /tmp/.../ncache/error.log"
echo "$ON_SERVER varnishd $(echo $VARNISH_ARGS | sed "s|$BT/|/tmp/.../|g")"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml; taskset -a -p -c $SERVER_CPU LB_PID"
echo "${LB#"$BENCH_ROOT"/} -c lb2.yaml; taskset -a -p -c $SERVER_CPU LB2_PID   # L2, when built"
echo "$ON_SERVER redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly no   # two shards, L2"
echo "$ON_LOAD wrk -t1 -cCLIENTS -d${DURATION}s --latency -s hit.lua http://127.0.0.1:PORT -- SIZE"
echo "$ON_LOAD wrk -t1 -cCLIENTS -d${DURATION}s --latency -s miss.lua http://127.0.0.1:PORT -- 1k RUN"
echo "# PORT: $lport lb, $pport lb without a cache, $l2port lb L2, $nport nginx, $vport Varnish"
echo '```'
echo
echo "hit.lua and miss.lua:"
echo
show_file lua "$BT/hit.lua"
echo
show_file lua "$BT/miss.lua"
echo
echo "origin.conf:"
echo
show_file nginx "$BT/origin.conf"
echo
echo "ncache.conf (nginx proxy_cache):"
echo
show_file nginx "$BT/ncache.conf"
echo
echo "varnish.vcl:"
echo
show_file vcl "$BT/varnish.vcl"
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"
echo
echo "lb2.yaml (L2):"
echo
show_file yaml "$BT/lb2.yaml"

[ -z "$check_failed" ] || die "caches that did not pass the check:$check_failed"
[ -n "$lb_pid" ] || exit 3
exit 0
