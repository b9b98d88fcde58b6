#!/bin/sh
# TLS termination benchmark: lb (workers: 1), HAProxy (nbthread 1) and nginx (1 worker), each
# terminating TLS in front of the same nginx origin, with the same ECDSA P-256 and RSA 2048
# certificates (made here with the openssl CLI), in the same run.
#
# What it measures, per proxy and certificate type, as the proxy's CPU time (utime+stime of
# /proc/PID/stat) against what the clients got done:
#  - full handshakes per CPU-second of the proxy: two `openssl s_time -new` clients in
#    parallel (a TLS 1.3 full handshake per connection, nothing requested);
#  - resumed handshakes per CPU-second: two `openssl s_time -reuse -tls1_2` clients (TLS 1.2
#    session tickets: s_time cannot wait for TLS 1.3's post-handshake tickets, so it does
#    not resume under 1.3; the e2e test shows 1.3 resumption works);
#  - HTTPS keep-alive: wrk -t1 -c32 over TLS 1.3, CPU microseconds per request, requests/s, p99;
#  - one large HTTPS download through the proxy with curl (1 GiB; QUICK=1: 256 MiB), GB/s;
#  - memory per idle TLS keep-alive connection: the proxy's RSS growth over IDLE_N connections
#    (1000) that each did a TLS 1.3 handshake and one request (tools/bench/tls_idle.py).
# Each round starts every proxy afresh, in a rotating order; figures are medians of rounds.
#
# Environment: ROUNDS (3; QUICK=1: 1), DURATION (seconds per measurement; 4, QUICK=1: 2), LB.
# Time: about 4 minutes (QUICK=1: 1).
# Output: markdown on stdout, progress on stderr. Exit 3 when lb could not run.
. "$(dirname "$0")/lib.sh"
need nginx haproxy openssl wrk curl python3 awk

if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2} BIG_MB=256 IDLE_N=${IDLE_N:-300}
else
    ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-4} BIG_MB=1024 IDLE_N=${IDLE_N:-1000}
fi
set -- $(free_ports 4)
oport=$1 lport=$2 hport=$3 nport=$4
BODY="lb-bench: tls; a small, fixed body."

# --- certificates
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench \
    -keyout "$BT/ec.key" -out "$BT/ec.pem" >"$BT/openssl.log" 2>&1 || die "openssl (ec)"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench \
    -keyout "$BT/rsa.key" -out "$BT/rsa.pem" >>"$BT/openssl.log" 2>&1 || die "openssl (rsa)"
for k in ec rsa; do cat "$BT/$k.pem" "$BT/$k.key" >"$BT/$k.both"; done

# --- the origin: a small answer at /, a large file at /big
mkdir -p "$BT/www"
truncate -s "${BIG_MB}M" "$BT/www/big"
{
    nginx_conf "$BT/origin"
    cat <<EOF2
    server {
        listen 127.0.0.1:$oport;
        location = / { return 200 "$BODY"; }
        location /big { root $BT/www; }
    }
}
EOF2
} >"$BT/origin.conf"
start_nginx origin
track_nginx "$oport" "nginx origin" origin

CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305

# configs KEYTYPE: writes lb.yaml, haproxy.cfg and proxy.conf for that certificate.
configs() {
    cat >"$BT/lb.yaml" <<EOF2
global: { workers: 1, admin: { socket: $BT/lb.sock }, log: { level: warn } }
listeners:
  - name: tls
    bind: 127.0.0.1:$lport
    protocol: http
    timeouts: { idle: 300s }
    tls: { certificates: [ { cert: $BT/$1.pem, key: $BT/$1.key } ] }
    routes: [ { cluster: origin } ]
clusters:
  origin: { servers: [ { name: o, address: 127.0.0.1:$oport } ] }
EOF2
    cat >"$BT/haproxy.cfg" <<EOF2
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-ciphers $CIPHERS
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    http-reuse always
frontend f
    bind 127.0.0.1:$hport ssl crt $BT/$1.both alpn http/1.1
    default_backend b
backend b
    server o 127.0.0.1:$oport
EOF2
    {
        nginx_conf "$BT/proxy"
        cat <<EOF2
    upstream origin { server 127.0.0.1:$oport; keepalive 64; }
    server {
        listen 127.0.0.1:$nport ssl;
        ssl_certificate $BT/$1.pem;
        ssl_certificate_key $BT/$1.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $CIPHERS;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF2
    } >"$BT/proxy.conf"
}

# up NAME: starts that proxy; sets ppid (the process whose CPU counts) and pport; 1 if lb
# cannot run.
up() {
    case $1 in
    lb)
        start_lb "$lport" lb
        [ -n "$lb_pid" ] || return 1
        ppid=$lb_pid pport=$lport ;;
    haproxy)
        start haproxy haproxy -db -f "$BT/haproxy.cfg"
        ppid=$LAST_PID pport=$hport
        wait_port "$hport" "$ppid" 10 || die "haproxy did not start: $(tail -n 5 "$BT/haproxy.log")" ;;
    nginx)
        start_nginx proxy
        track_nginx "$nport" "nginx proxy" proxy
        master=$nginx_pid ppid=$nginx_wpid pport=$nport ;;
    esac
}

down() {
    case $1 in
    nginx) stop "$master"; stop "$ppid" ;;
    *) stop "$ppid" ;;
    esac
}

# s_time_pair MODE...: two s_time clients for DURATION; prints the connections they made.
s_time_pair() {
    for i in 1 2; do
        openssl s_time -connect "127.0.0.1:$pport" -time "$DURATION" "$@" >"$BT/stime$i.out" 2>&1 &
    done
    wait
    cat "$BT/stime1.out" "$BT/stime2.out" |
        awk '/connections in [0-9.]+ real seconds/ { n += $1 } END { print n + 0 }'
}

# per_cpu_s COUNT TICKS: COUNT per CPU-second.
per_cpu_s() {
    awk -v n="$1" -v t="$2" -v hz="$CLK_TCK" 'BEGIN { if (t <= 0) print "-"; else printf "%.0f", n / (t / hz) }'
}

# measure NAME KEYTYPE ROUND: every figure for one proxy, appended to $BT/results.
measure() {
    t0=$(cpu_ticks "$ppid")
    n=$(s_time_pair -new)
    t1=$(cpu_ticks "$ppid")
    echo "$1 $2 full $(per_cpu_s "$n" $((t1 - t0)))" >>"$BT/results"
    n=$(s_time_pair -reuse -tls1_2)
    t2=$(cpu_ticks "$ppid")
    echo "$1 $2 resumed $(per_cpu_s "$n" $((t2 - t1)))" >>"$BT/results"
    [ "$2" = ec ] || return 0
    wrk -t1 -c32 -d"${DURATION}s" --latency -s "$WRK_LUA" "https://127.0.0.1:$pport/" \
        >"$BT/wrk-$1-$3.out" 2>&1 || die "wrk through $1: $(tail -n 3 "$BT/wrk-$1-$3.out")"
    t3=$(cpu_ticks "$ppid")
    set -- "$1" "$2" "$3" $(wrk_summary "$BT/wrk-$1-$3.out")
    # $4 requests, $5 req/s, $6 p50, $7 p99, $8 p99.9, $9 errors
    [ "${9}" = 0 ] || say "$1: wrk reported ${9} errors"
    echo "$1 ec ka_us $(ticks_to_us_per $((t3 - t2)) "$4")" >>"$BT/results"
    echo "$1 ec ka_rps $5" >>"$BT/results"
    echo "$1 ec ka_p99 $7" >>"$BT/results"
    out=$(curl -sk -o /dev/null -w '%{size_download} %{time_total}' "https://127.0.0.1:$pport/big")
    bytes=${out% *} secs=${out#* }
    [ "$bytes" -eq $((BIG_MB * 1048576)) ] || die "$1: download got $bytes bytes"
    echo "$1 ec gbps $(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.3f", b / s / 1e9 }')" \
        >>"$BT/results"
    echo "$1 ec idle $(idle_bytes "$1")" >>"$BT/results"
}

# idle_bytes NAME: RSS growth per idle TLS connection of the proxy whose CPU counts ($ppid:
# lb, haproxy, the nginx worker).
idle_bytes() {
    rm -f "$BT/idle.status"
    python3 "$BENCH_ROOT/tools/bench/tls_idle.py" "$pport" "$IDLE_N" "$BT/idle.status" \
        2>"$BT/idle-$1.err" &
    ipid=$!
    BENCH_PIDS="$BENCH_PIDS $ipid"
    wait_status warm
    r0=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$ppid/status")
    kill -USR1 "$ipid"
    wait_status held
    r1=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$ppid/status")
    set -- $(cat "$BT/idle.status")
    kill -USR1 "$ipid"
    wait "$ipid" 2>/dev/null || true
    [ "$3" = 0 ] || say "idle TLS connections: $3 errors ($(head -n 2 "$BT/idle-$1.err"))"
    awk -v a="$r0" -v b="$r1" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1024 / n; else print "-" }'
}

wait_status() { # WORD: waits (60 s at most) for the idle client's status to start with WORD
    i=0
    until grep -q "^$1" "$BT/idle.status" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 600 ] || die "the idle TLS client never said $1"
        sleep 0.1
    done
}

lb_skipped=""
: >"$BT/results"
order="lb haproxy nginx"
r=1
while [ $r -le "$ROUNDS" ]; do
    for k in ec rsa; do
        configs "$k"
        for p in $order; do
            say "round $r, $k, $p"
            if ! up "$p"; then
                lb_skipped=$lb_why
                continue
            fi
            measure "$p" "$k" "$r"
            down "$p"
        done
    done
    order="${order#* } ${order%% *}"
    r=$((r + 1))
done

# med PROXY KEY METRIC: the median over rounds, or "-".
med() {
    awk -v p="$1" -v k="$2" -v m="$3" '$1 == p && $2 == k && $3 == m { print $4 }' "$BT/results" |
        stats | cut -d' ' -f1
}

row() { # LABEL KEY METRIC FORMAT WORKLOAD RECORDED_METRIC (for charts and profile.sh)
    l=$(med lb "$2" "$3") h=$(med haproxy "$2" "$3") n=$(med nginx "$2" "$3")
    for x in lb haproxy nginx; do
        record "$5" "$x" "$6" $(awk -v p="$x" -v k="$2" -v m="$3" \
            '$1 == p && $2 == k && $3 == m { print $4 }' "$BT/results" | stats)
    done
    f=$4
    echo "| $1 | $($f "$l") | $($f "$h") | $($f "$n") | $(ratio "$l" "$h") | $(ratio "$l" "$n") |"
}

echo "### TLS termination: handshakes, keep-alive, a large download"
echo
echo "lb (workers: 1), HAProxy (nbthread 1) and nginx (1 worker) terminating TLS in front of" \
     "one nginx origin, same certificates (ECDSA P-256, RSA 2048), same clients, $ROUNDS" \
     "round(s) of ${DURATION}s per figure (medians). Handshakes: two \`openssl s_time\`" \
     "clients at once (full: TLS 1.3; resumed: TLS 1.2 tickets). Keep-alive: \`wrk -t1" \
     "-c32\` over TLS 1.3 with the ECDSA certificate. Download: ${BIG_MB} MiB with curl." \
     "Idle: RSS growth over $IDLE_N TLS 1.3 keep-alive connections after one request each."
echo
[ -z "$lb_skipped" ] || echo "lb was skipped: $lb_skipped"
echo
echo "| | lb | HAProxy | nginx | lb/HAProxy | lb/nginx |"
echo "|---|---:|---:|---:|---:|---:|"
row "full handshakes per CPU-second, ECDSA" ec full fmt_int tls_full_ec hs
row "full handshakes per CPU-second, RSA" rsa full fmt_int tls_full_rsa hs
row "resumed handshakes per CPU-second, ECDSA" ec resumed fmt_int tls_resumed_ec hs
row "resumed handshakes per CPU-second, RSA" rsa resumed fmt_int tls_resumed_rsa hs
row "keep-alive CPU µs per request (lower is better)" ec ka_us fmt_dec tls_ka cpu
row "keep-alive requests/s" ec ka_rps fmt_int tls_ka rps
row "keep-alive p99 µs" ec ka_p99 fmt_int tls_ka p99
row "download GB/s" ec gbps fmt_dec tls_download gbps
row "memory per idle TLS connection, bytes (lower is better)" ec idle fmt_int tls_idle rss_per_conn
echo
echo "Targets (issue 13): full handshakes per CPU-second at least 1.2x HAProxy's; keep-alive" \
     "CPU per request at most 0.8x HAProxy's."
echo
echo "lb.yaml (ECDSA):"
echo
configs ec
show_file yaml "$BT/lb.yaml"
echo
echo "haproxy.cfg:"
echo
show_file "" "$BT/haproxy.cfg"
echo
echo "proxy.conf (nginx):"
echo
show_file nginx "$BT/proxy.conf"
[ -z "$lb_skipped" ] || exit 3
