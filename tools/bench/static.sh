#!/bin/sh
# Static snapshot benchmark: wrk on one 2.4 KiB JSON file served by lb from memory (a static
# set behind route path_prefix /s/, workers: 1) and the same file served by nginx from disk
# (worker_processes 1, sendfile on, open_file_cache, access_log off), on the same machine,
# same URL, same client.
#
# What it measures, per target and per round: requests/s, p50/p99 as `wrk --latency` reports
# them, p99.9 from the wrk script's done() hook, and the server's CPU time (utime+stime from
# /proc/PID/stat; nginx: master + worker) over the run divided by the requests wrk completed.
# The two servers take turns (A B, then B A) so drift in machine speed hits them alike. The
# table gives median, min and max over the rounds and the lb/nginx ratios; DESIGN.md's target
# is lb's CPU per request at most 0.4 of nginx's.
#
# If build/lb cannot run (it exits or never listens), the script says why, measures nginx and
# exits 3.
#
# Environment: ROUNDS (3; QUICK=1: 1), DURATION seconds per run (10; QUICK=1: 3),
# CLIENTS connections (64), LB (path to lb).
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need wrk nginx pgrep python3 awk cmp

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3}
else
    ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}
fi
CLIENTS=${CLIENTS:-64}
WARMUP=1
WRK="wrk -t1 -c$CLIENTS -d${DURATION}s --latency -s p999.lua"
URLPATH=/s/catalog.json

set -- $(free_ports 2)
lport=$1 nport=$2

# --- the snapshot: a product list as JSON, exactly 2,458 bytes (2.4 KiB). lb loads it from
# $BT/snap (URL /s/catalog.json); nginx serves the same bytes from $BT/www/s/catalog.json.
mkdir -p "$BT/snap" "$BT/www/s"
catalog_json "$BT/snap/catalog.json" || die "cannot write the JSON snapshot"
cp "$BT/snap/catalog.json" "$BT/www/s/catalog.json"
SIZE=$(wc -c <"$BT/snap/catalog.json")

# --- nginx from disk: one worker, sendfile, descriptors cached, the same Cache-Control lb sends
{
    nginx_conf "$BT/nginx"
    cat <<EOF2
    types { application/json json; }
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    server {
        listen 127.0.0.1:$nport;
        root $BT/www;
        location /s/ { add_header Cache-Control "max-age=60"; }
    }
}
EOF2
} >"$BT/nginx.conf"
start_nginx nginx
track_nginx "$nport" nginx nginx

# --- lb: the set served from memory, nothing else
cat >"$BT/lb.yaml" <<EOF2
global:
  workers: 1
  admin: { socket: $BT/lb.sock }
  log: { level: warn, access: off }

listeners:
  - name: web
    bind: 127.0.0.1:$lport
    protocol: http
    routes:
      - match: { path_prefix: /s/ }
        static: catalog

static:
  catalog: { dir: $BT/snap, max_age: 60s }
EOF2
start_lb "$lport"
[ -n "$lb_why" ] && say "lb cannot run, its columns are skipped: $lb_why"

# Both must answer with the file itself, byte for byte.
check_body() { # TARGET PORT
    python3 -c 'import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]),
                                               timeout=5).read())' "$2" "$URLPATH" \
        >"$BT/body.$1" 2>"$BT/body.err" || die "$1 does not answer $URLPATH: $(cat "$BT/body.err")"
    cmp -s "$BT/body.$1" "$BT/snap/catalog.json" || die "$1 answers $URLPATH with other bytes"
}
check_body nginx "$nport"
[ -z "$lb_pid" ] || check_body lb "$lport"

server_ticks() { # TARGET
    case $1 in
        lb) cpu_ticks "$lb_pid" ;;
        nginx) echo $(( $(cpu_ticks "$nginx_pid") + $(cpu_ticks "$nginx_wpid") )) ;;
    esac
}

# run_once TARGET PORT ROUND: one wrk run; appends "TARGET ROUND REQ_PER_S P50_US P99_US
# P999_US CPU_US_PER_REQUEST ERRORS" to $BT/results, or nothing for ROUND 0 (a warm-up).
run_once() {
    target=$1 port=$2 round=$3
    d=$DURATION
    [ "$round" = 0 ] && d=$WARMUP
    t0=$(server_ticks "$target")
    if ! timeout $((d + 30)) wrk -t1 -c"$CLIENTS" -d"${d}s" --latency -s "$WRK_LUA" \
        "http://127.0.0.1:$port$URLPATH" >"$BT/run.out" 2>"$BT/run.err"; then
        die "wrk against $target failed: $(tail -n 3 "$BT/run.out" "$BT/run.err")"
    fi
    t1=$(server_ticks "$target")
    summary=$(wrk_summary "$BT/run.out") ||
        die "no figures from wrk against $target: $(cat "$BT/run.out" "$BT/run.err")"
    set -- $summary
    n=$1 rps=$2 p50=$3 p99=$4 p999=$5 errs=$6
    [ "$n" -gt 0 ] || die "wrk completed no request against $target"
    cpu=$(ticks_to_us_per $((t1 - t0)) "$n")
    if [ "$round" != 0 ]; then
        echo "$target $round $rps $p50 $p99 $p999 $cpu $errs" >>"$BT/results"
        say "round $round $target: $rps req/s p50 ${p50}us p99 ${p99}us p99.9 ${p999}us" \
            "server CPU ${cpu}us/req errors $errs"
    fi
}
port_of() { case $1 in lb) echo "$lport" ;; nginx) echo "$nport" ;; esac; }
runs() { [ "$1" != lb ] || [ -n "$lb_pid" ]; }

say "$CLIENTS connections, ${DURATION}s per run, $ROUNDS rounds; warming up"
for t in lb nginx; do
    if runs "$t"; then run_once "$t" "$(port_of "$t")" 0; fi
done
: >"$BT/results"
r=1
while [ $r -le "$ROUNDS" ]; do
    if [ $((r % 2)) = 1 ]; then order="lb nginx"; else order="nginx lb"; fi
    for t in $order; do
        if runs "$t"; then run_once "$t" "$(port_of "$t")" $r; fi
    done
    r=$((r + 1))
done

# col TARGET FIELD: "median min max" of one column (3 req/s, 4 p50, 5 p99, 6 p99.9, 7 CPU).
col() {
    awk -v t="$1" -v f="$2" '$1 == t && $f != "-" { print $f }' "$BT/results" | stats
}
med() { col "$@" | cut -d' ' -f1; }
errors_of() { awk -v t="$1" '$1 == t { e += $8 } END { print e + 0 }' "$BT/results"; }
row() { # TARGET LABEL
    e=$(errors_of "$1")
    for fm in 3:rps 4:p50 5:p99 6:p999 7:cpu; do
        record static "$1" "${fm#*:}" $(col "$1" "${fm%:*}")
    done
    set -- "$2" $(col "$1" 3) $(col "$1" 4) $(col "$1" 5) $(col "$1" 6) $(col "$1" 7)
    printf '| %s |' "$1"; shift
    for v in "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10}" "${11}" "${12}"; do
        printf ' %s |' "$(fmt_int "$v")"
    done
    printf ' %s | %s | %s | %s |\n' "$(fmt_dec "${13}")" "$(fmt_dec "${14}")" \
        "$(fmt_dec "${15}")" "$e"
}

echo "### Static: a $SIZE-byte JSON snapshot, lb from memory against nginx from disk"
echo
echo "\`$WRK http://127.0.0.1:PORT$URLPATH\`; $ROUNDS rounds, the two servers taking turns" \
    "(A B, then B A) after a ${WARMUP}s warm-up of each. lb answers from its snapshot set" \
    "(the whole response prebuilt: ETag, Last-Modified, Cache-Control); nginx reads the file" \
    "with sendfile through its open_file_cache and adds the same Cache-Control (its ETag and" \
    "Last-Modified are on by default). Server CPU is utime+stime during a run divided by the" \
    "requests wrk completed (clock ticks of 1/${CLK_TCK}s); for nginx it is master + worker." \
    "Both answers were checked byte for byte against the file before the runs."
echo
printf '| server | req/s median | min | max | p50 µs median | min | max |'
printf ' p99 µs median | min | max | p99.9 µs median | min | max |'
printf ' server CPU µs/req median | min | max | errors |\n'
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row nginx "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), from disk, worker_processes 1"
if [ -n "$lb_pid" ]; then
    row lb "lb, from memory, workers: 1"
    printf '| **lb / nginx** (medians) | %s | | | %s | | | %s | | | %s | | | %s | | | |\n' \
        "$(ratio "$(med lb 3)" "$(med nginx 3)")" "$(ratio "$(med lb 4)" "$(med nginx 4)")" \
        "$(ratio "$(med lb 5)" "$(med nginx 5)")" "$(ratio "$(med lb 6)" "$(med nginx 6)")" \
        "$(ratio "$(med lb 7)" "$(med nginx 7)")"
    echo
    cpu_r=$(ratio "$(med lb 7)" "$(med nginx 7)")
    verdict=$(awk -v c="$cpu_r" 'BEGIN {
        if (c == "-") { print "not measured"; exit }
        print (c <= 0.4) ? "met" : "not met" }')
    echo "Target (DESIGN.md): lb / nginx CPU per request at most 0.40." \
        "This run: $cpu_r: $verdict."
else
    echo "| lb, from memory, workers: 1 | not run: $lb_why | | | | | | | | | | | | | | | |"
fi
echo
echo "Commands (ports were ephemeral; /tmp/... is the run's temp dir):"
echo
echo '```sh'
echo "nginx -c nginx.conf -p /tmp/.../nginx -e /tmp/.../nginx/error.log"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml"
echo "$WRK http://127.0.0.1:PORT$URLPATH    # PORT: $lport lb, $nport nginx"
echo '```'
echo
echo "nginx.conf:"
echo
show_file nginx "$BT/nginx.conf"
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"
echo
echo "p999.lua: as in the L7 section."

[ -n "$lb_pid" ] || exit 3
exit 0
