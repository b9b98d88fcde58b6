#!/bin/sh
# L4 bulk transfer: 1 GiB over one TCP connection, from build/bench-stream's source to its sink
# (tools/bench/stream.c: plain write(2)/read(2) of 256 KiB), directly, through lb (one tcp
# listener, workers: 1), through HAProxy in mode tcp (nbthread 1) and through nginx's stream
# module (worker_processes 1) when it is installed (Debian: libnginx-mod-stream; nginx-light
# alone has no stream module, and then nginx's row says so).
#
# What it measures, per target and per round: GB/s (10^9 bytes per second) from the source's
# connect() to the sink's close reaching it, so every byte has been delivered; and for the
# proxies their CPU time (utime+stime of /proc/PID/stat; nginx: master + worker) over the
# transfer, in milliseconds per GiB. Targets take turns within each round and the order rotates
# by one every round, so drift in machine speed hits them alike. The table gives median, min and
# max over the rounds and lb/HAProxy (and lb/nginx) ratios.
#
# If build/lb cannot run (it exits or never listens), the script says why, measures the rest
# and exits 3.
#
# Environment: ROUNDS (5; QUICK=1: 2), BYTES per transfer (1073741824), LB (path to lb).
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need haproxy nginx pgrep python3 awk
STREAM=$BENCH_ROOT/build/bench-stream
[ -x "$STREAM" ] || die "build/bench-stream is not built (make)"
NGINX_STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so

if [ "${QUICK:-0}" = 1 ]; then ROUNDS=${ROUNDS:-2}; else ROUNDS=${ROUNDS:-5}; fi
BYTES=${BYTES:-1073741824}

set -- $(free_ports 4)
sport=$1 lport=$2 hport=$3 nport=$4

# --- the sink
start sink "$STREAM" sink "$sport"
sink_pid=$LAST_PID
wait_port "$sport" "$sink_pid" 10 || die "bench-stream sink did not start: $(tail -n 5 "$BT/sink.log")"

# --- haproxy: mode tcp, one thread, plain forwarding
cat >"$BT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m

listen stream
    bind 127.0.0.1:$hport
    server s1 127.0.0.1:$sport
EOF
haproxy -c -q -f "$BT/haproxy.cfg" >"$BT/haproxy-check.log" 2>&1 ||
    die "haproxy rejects its config: $(cat "$BT/haproxy-check.log")"
start haproxy haproxy -db -f "$BT/haproxy.cfg"
haproxy_pid=$LAST_PID
wait_port "$hport" "$haproxy_pid" 10 || die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")"

# --- nginx stream: one worker, plain forwarding (only with the stream module)
nginx_pid="" nginx_why=""
if [ -f "$NGINX_STREAM_MOD" ]; then
    mkdir -p "$BT/nginx"
    cat >"$BT/nginx.conf" <<EOF
load_module $NGINX_STREAM_MOD;
user root;
worker_processes 1;
daemon off;
pid $BT/nginx/nginx.pid;
error_log $BT/nginx/error.log;
events { worker_connections 1024; }
stream {
    server {
        listen 127.0.0.1:$nport;
        proxy_pass 127.0.0.1:$sport;
    }
}
EOF
    nginx -t -q -c "$BT/nginx.conf" -p "$BT/nginx" -e "$BT/nginx/error.log" \
        >"$BT/nginx-check.log" 2>&1 || die "nginx rejects nginx.conf: $(cat "$BT/nginx-check.log")"
    start nginx nginx -c "$BT/nginx.conf" -p "$BT/nginx" -e "$BT/nginx/error.log"
    track_nginx "$nport" "nginx stream" nginx
else
    nginx_why="no stream module ($NGINX_STREAM_MOD: Debian's libnginx-mod-stream is not installed)"
    say "nginx is skipped: $nginx_why"
fi

# --- lb: the same shape, config format per DESIGN.md
cat >"$BT/lb.yaml" <<EOF
global:
  workers: 1
  admin: { socket: $BT/lb.sock }

listeners:
  - name: stream
    bind: 127.0.0.1:$lport
    protocol: tcp
    cluster: sink

clusters:
  sink:
    servers:
      - { name: s1, address: 127.0.0.1:$sport }
EOF
start_lb "$lport"
[ -n "$lb_why" ] && say "lb cannot run, its columns are skipped: $lb_why"

proxy_ticks() { # TARGET: CPU ticks so far of the proxy behind TARGET (empty for direct)
    case $1 in
        lb) cpu_ticks "$lb_pid" ;;
        haproxy) cpu_ticks "$haproxy_pid" ;;
        nginx) echo $(( $(cpu_ticks "$nginx_pid") + $(cpu_ticks "$nginx_wpid") )) ;;
    esac
}
port_of() {
    case $1 in direct) echo "$sport" ;; lb) echo "$lport" ;; haproxy) echo "$hport" ;;
        nginx) echo "$nport" ;; esac
}
runs() {
    case $1 in lb) [ -n "$lb_pid" ] ;; nginx) [ -n "$nginx_pid" ] ;; *) true ;; esac
}

# run_once TARGET ROUND: one transfer of BYTES (ROUND 0: a warm-up of BYTES/8); appends
# "TARGET ROUND GB_PER_S CPU_MS_PER_GIB" (CPU "-" without a proxy) to $BT/results.
run_once() {
    target=$1 round=$2
    n=$BYTES
    [ "$round" = 0 ] && n=$((BYTES / 8))
    t0=$(proxy_ticks "$target")
    out=$(timeout 120 "$STREAM" source "$(port_of "$target")" "$n" 2>"$BT/run.err") ||
        die "the transfer through $target failed: $(cat "$BT/run.err")"
    t1=$(proxy_ticks "$target")
    set -- $out
    [ "$1" = "$n" ] || die "bench-stream source through $target says '$out'"
    gbs=$(awk -v b="$n" -v s="$2" 'BEGIN { printf "%.3f", b / s / 1e9 }')
    cpu="-"
    [ -n "$t0" ] && cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v b="$n" \
        'BEGIN { printf "%.1f", t / hz * 1000 / (b / 1073741824) }')
    if [ "$round" != 0 ]; then
        echo "$target $round $gbs $cpu" >>"$BT/results"
        say "round $round $target: $gbs GB/s in $2 s, proxy CPU ${cpu} ms/GiB"
    fi
}

TARGETS="direct lb haproxy nginx"
say "$BYTES bytes per transfer, $ROUNDS rounds; warming up"
for t in $TARGETS; do
    if runs "$t"; then run_once "$t" 0; fi
done
: >"$BT/results"
order=$TARGETS
r=1
while [ $r -le "$ROUNDS" ]; do
    for t in $order; do
        if runs "$t"; then run_once "$t" $r; fi
    done
    # Rotate by one: the target that went first goes last next round.
    set -- $order
    first=$1; shift
    order="$* $first"
    r=$((r + 1))
done

# col TARGET FIELD: "median min max" of one column (3 GB/s, 4 CPU ms/GiB) for one target.
col() {
    awk -v t="$1" -v f="$2" '$1 == t && $f != "-" { print $f }' "$BT/results" | stats
}
med() { col "$@" | cut -d' ' -f1; }
row() { # TARGET LABEL
    record l4_stream "$1" gbps $(col "$1" 3)
    record l4_stream "$1" cpu_ms_per_gib $(col "$1" 4)
    set -- "$2" $(col "$1" 3) $(col "$1" 4)
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(fmt_dec "$2")" "$(fmt_dec "$3")" \
        "$(fmt_dec "$4")" "$(fmt_int "$5")" "$(fmt_int "$6")" "$(fmt_int "$7")"
}
ratio_row() { # LABEL PEER: lb / PEER for GB/s and CPU (medians)
    printf '| **%s** (medians) | %s | | | %s | | |\n' "$1" \
        "$(ratio "$(med lb 3)" "$(med "$2" 3)")" "$(ratio "$(med lb 4)" "$(med "$2" 4)")"
}

echo "### L4: one $(fmt_int "$BYTES")-byte transfer through a TCP proxy"
echo
echo "\`build/bench-stream source PORT $BYTES\` writes the bytes from a 256 KiB buffer into one" \
    "connection, shuts down its write side and stops the clock when the sink's close comes" \
    "back (\`build/bench-stream sink\` reads and discards); GB/s is 10^9 bytes per second." \
    "$ROUNDS rounds, targets taking turns within each round and the order rotating by one" \
    "every round, after a warm-up transfer of $(fmt_int $((BYTES / 8))) bytes through each." \
    "Proxy CPU is the proxy's utime+stime during the transfer (clock ticks of 1/${CLK_TCK}s)" \
    "per GiB; for nginx it is master + worker."
echo
echo "| target | GB/s median | min | max | proxy CPU ms/GiB median | min | max |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row direct "direct to the sink"
row haproxy "HAProxy $(haproxy -v | head -n 1 | awk '{print $3}'), mode tcp, nbthread 1"
if [ -n "$nginx_pid" ]; then
    row nginx "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), stream proxy_pass, worker_processes 1"
else
    echo "| nginx | not run: $nginx_why | | | | | |"
fi
if [ -n "$lb_pid" ]; then
    row lb "lb, workers: 1"
    ratio_row "lb / HAProxy" haproxy
    [ -z "$nginx_pid" ] || ratio_row "lb / nginx" nginx
else
    echo "| lb, workers: 1 | not run: $lb_why | | | | | |"
fi
echo
echo "Commands (ports were ephemeral; /tmp/... is the run's temp dir):"
echo
echo '```sh'
echo "build/bench-stream sink $sport"
echo "haproxy -db -f haproxy.cfg"
[ -z "$nginx_pid" ] || echo "nginx -c nginx.conf -p /tmp/.../nginx -e /tmp/.../nginx/error.log"
echo "${LB#"$BENCH_ROOT"/} -c lb.yaml"
echo "build/bench-stream source PORT $BYTES" \
    "   # PORT: $sport direct, $lport lb, $hport haproxy$([ -z "$nginx_pid" ] || echo ", $nport nginx")"
echo '```'
echo
echo "haproxy.cfg:"
echo
echo '```'
cat "$BT/haproxy.cfg"
echo '```'
if [ -n "$nginx_pid" ]; then
    echo
    echo "nginx.conf:"
    echo
    show_file nginx "$BT/nginx.conf"
fi
echo
echo "lb.yaml:"
echo
show_file yaml "$BT/lb.yaml"

[ -n "$lb_pid" ] || exit 3
exit 0
