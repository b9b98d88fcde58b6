#!/bin/sh
# Sharding Redis proxy benchmark: redis-benchmark through lb (a `protocol: redis` listener,
# workers: 1) and through twemproxy (Debian's nutcracker, one process), both in front of the
# same three redis-server shards, in the same run.
#
# What it measures, per proxy, per pipelining (-P 1 and -P 16) and per round: GET and SET
# requests/s as redis-benchmark reports them (random keys over 100,000, so every shard gets
# its share), and the proxy's CPU time (utime+stime of /proc/PID/stat) over the run divided
# by its commands. Proxies alternate within each round. The table gives medians and the
# lb/twemproxy ratios; issue 14's target is lb >= 1.2x twemproxy's requests/s both ways.
#
# Environment: ROUNDS (3; QUICK=1: 1), N requests per test (200000; QUICK=1: 20000), CLIENTS
# (50), LB. Output: markdown on stdout, progress on stderr. Exit 3 when lb could not run.
. "$(dirname "$0")/lib.sh"
need redis-server redis-benchmark nutcracker python3 awk

if [ "${QUICK:-0}" = 1 ]; then ROUNDS=${ROUNDS:-1} N=${N:-20000}; else ROUNDS=${ROUNDS:-3} N=${N:-200000}; fi
CLIENTS=${CLIENTS:-50}
set -- $(free_ports 6)
s1=$1 s2=$2 s3=$3 lport=$4 tport=$5 tstats=$6

for p in $s1 $s2 $s3; do
    mkdir -p "$BT/r$p"
    start "redis$p" redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no \
        --dir "$BT/r$p" --daemonize no
    wait_port "$p" "$LAST_PID" 10 || die "redis-server did not start: $(tail -n 5 "$BT/redis$p.log")"
done

cat >"$BT/lb.yaml" <<EOF2
global: { workers: 1, admin: { socket: $BT/lb.sock }, log: { level: warn } }
listeners:
  - { name: shards, bind: 127.0.0.1:$lport, protocol: redis, cluster: shards }
clusters:
  shards:
    balance: maglev
    servers:
      - { name: s1, address: 127.0.0.1:$s1 }
      - { name: s2, address: 127.0.0.1:$s2 }
      - { name: s3, address: 127.0.0.1:$s3 }
EOF2
cat >"$BT/nutcracker.yml" <<EOF2
shards:
  listen: 127.0.0.1:$tport
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  server_connections: 1
  servers:
    - 127.0.0.1:$s1:1 s1
    - 127.0.0.1:$s2:1 s2
    - 127.0.0.1:$s3:1 s3
EOF2
nutcracker -t -c "$BT/nutcracker.yml" >"$BT/nutcracker-check.log" 2>&1 ||
    die "nutcracker rejects its config: $(cat "$BT/nutcracker-check.log")"
start nutcracker nutcracker -c "$BT/nutcracker.yml" -s "$tstats" -a 127.0.0.1 -v 4
tw_pid=$LAST_PID
wait_port "$tport" "$tw_pid" 10 || die "nutcracker did not start: $(tail -n 5 "$BT/nutcracker.log")"
start_lb "$lport" lb
[ -n "$lb_pid" ] || say "lb cannot run, its columns are skipped: $lb_why"

# run_once NAME PORT PID PIPELINE ROUND: one redis-benchmark run; appends
# "NAME P ROUND GET_RPS SET_RPS CPU_US_PER_COMMAND" to $BT/results (not for ROUND 0).
run_once() {
    n=$N
    [ "$5" = 0 ] && n=$((N / 10 + 1))
    t0=$(cpu_ticks "$3")
    timeout 600 redis-benchmark -h 127.0.0.1 -p "$2" -c "$CLIENTS" -n "$n" -P "$4" -r 100000 \
        -t get,set -q --csv >"$BT/run.csv" 2>"$BT/run.err" ||
        die "redis-benchmark through $1 failed: $(tail -n 3 "$BT/run.err")"
    t1=$(cpu_ticks "$3")
    get=$(awk -F'"' '$2 == "GET" { print $4 }' "$BT/run.csv")
    set=$(awk -F'"' '$2 == "SET" { print $4 }' "$BT/run.csv")
    [ -n "$get" ] && [ -n "$set" ] || die "no GET/SET figures through $1: $(cat "$BT/run.csv" "$BT/run.err")"
    [ "$5" = 0 ] && return 0
    cpu=$(ticks_to_us_per $((t1 - t0)) $((2 * n)))
    echo "$1 $4 $5 $get $set $cpu" >>"$BT/results"
    say "round $5 -P $4 $1: GET $get/s SET $set/s proxy CPU ${cpu}us/command"
}

: >"$BT/results"
for P in 1 16; do
    run_once twemproxy "$tport" "$tw_pid" "$P" 0
    [ -z "$lb_pid" ] || run_once lb "$lport" "$lb_pid" "$P" 0
done
r=1
while [ $r -le "$ROUNDS" ]; do
    for P in 1 16; do
        if [ $((r % 2)) = 1 ]; then order="lb twemproxy"; else order="twemproxy lb"; fi
        for t in $order; do
            case $t in
            lb) [ -z "$lb_pid" ] || run_once lb "$lport" "$lb_pid" "$P" "$r" ;;
            twemproxy) run_once twemproxy "$tport" "$tw_pid" "$P" "$r" ;;
            esac
        done
    done
    r=$((r + 1))
done

med() { # NAME P FIELD (4 GET, 5 SET, 6 CPU): "median min max"
    awk -v t="$1" -v p="$2" -v f="$3" '$1 == t && $2 == p { print $f }' "$BT/results" | stats
}
row() { # LABEL P FIELD FORMAT WORKLOAD METRIC
    for x in lb twemproxy; do record "$5" "$x" "$6" $(med "$x" "$2" "$3"); done
    l=$(med lb "$2" "$3" | cut -d' ' -f1) t=$(med twemproxy "$2" "$3" | cut -d' ' -f1)
    echo "| $1 | $($4 "$l") | $($4 "$t") | $(ratio "$l" "$t") |"
}

echo "### Redis sharding proxy: redis-benchmark through lb and twemproxy"
echo
echo "Three redis-server shards; lb (\`protocol: redis\`, Maglev, workers: 1) and twemproxy" \
     "$(nutcracker -V 2>&1 | head -n 1 | awk '{print $NF}') (ketama, one process, one" \
     "connection per shard) in front of the same shards. \`redis-benchmark -c $CLIENTS -n $N" \
     "-r 100000 -t get,set -P 1|16\`, $ROUNDS round(s), proxies alternating; medians." \
     "CPU: the proxy's utime+stime over a run divided by its $((2 * N)) commands."
echo
[ -n "$lb_pid" ] || echo "lb was skipped: $lb_why"
echo
echo "| | lb | twemproxy | lb/twemproxy |"
echo "|---|---:|---:|---:|"
row "GET requests/s" 1 4 fmt_int rds_get rps
row "SET requests/s" 1 5 fmt_int rds_set rps
row "CPU µs per command (lower is better)" 1 6 fmt_dec rds cpu
row "GET requests/s, -P 16" 16 4 fmt_int rds_get_p16 rps
row "SET requests/s, -P 16" 16 5 fmt_int rds_set_p16 rps
row "CPU µs per command, -P 16" 16 6 fmt_dec rds_p16 cpu
echo
echo "Target (issue 14): lb at least 1.2x twemproxy's requests/s, pipelined and not."
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"
echo
echo "nutcracker.yml (run as \`nutcracker -c nutcracker.yml\`):"
echo
show_file yaml "$BT/nutcracker.yml"
[ -n "$lb_pid" ] || exit 3
