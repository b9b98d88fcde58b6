#!/bin/sh
# Soak: mixed traffic through one lb for a long time while the fleet around it changes, then
# the counts that say whether anything was lost or leaked. Not part of `make bench`'s
# tables; run it alone:  sh tools/bench/soak.sh [SECONDS]   (default 60; 1800 for the record)
#
# Traffic, all at once for SECONDS: wrk on an HTTP listener (keep-alive, mixed proxied and
# static paths), wrk over TLS, and wrk through an L4 (tcp) listener. Meanwhile, every
# CHAOS seconds (default 5) one of: a reload (lbctl reload), a drain or undrain of a server,
# or a backend killed and restarted (each in turn). At the end: requests, failures per
# listener, reloads, drains, restarts, lb's RSS at start and end, and what lb still holds once
# the clients are gone (connection slots, buffers, sockets: each must be 0). Exits 1 when
# something leaked or lb died.
. "$(dirname "$0")/lib.sh"
need wrk curl openssl python3
DUR=${1:-${DURATION:-60}}
CHAOS=${CHAOS:-5}
DEMO="$BENCH_ROOT/build/demo-backend"
LBCTL="$BENCH_ROOT/build/lbctl"
set -- $(free_ports 7)
A=$1 B=$2 H=$3 S=$4 P=$5 MP=$6 C=$7

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=soak \
    -keyout "$BT/k.pem" -out "$BT/c.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
mkdir -p "$BT/snap"
printf '{"soak": true, "items": [1, 2, 3]}\n' >"$BT/snap/item.json"
cat >"$BT/lb.yaml" <<EOC
global: { workers: 2, admin: { socket: $BT/lb.sock }, metrics: { listen: 127.0.0.1:$MP }, log: { level: warn } }
listeners:
  - name: web
    bind: 127.0.0.1:$H
    routes:
      - { match: { path_prefix: /s/ }, static: snap }
      - { cluster: app }
  - name: secure
    bind: 127.0.0.1:$S
    tls: { certificates: [ { cert: $BT/c.pem, key: $BT/k.pem } ] }
    routes: [ { cluster: app } ]
  - name: l4
    bind: 127.0.0.1:$P
    protocol: tcp
    cluster: app
clusters:
  app:
    retries: 2
    health: { check: tcp, interval: 500ms, timeout: 250ms, rise: 1, fall: 1 }
    timeouts: { idle: 2s }
    servers: [ { name: a, address: 127.0.0.1:$A }, { name: b, address: 127.0.0.1:$B } ]
static:
  snap: { dir: $BT/snap, fallback: app }
EOC
"$LB" -t -c "$BT/lb.yaml" >/dev/null || die "config rejected"
start a "$DEMO" -l "127.0.0.1:$A" -n a
start b "$DEMO" -l "127.0.0.1:$B" -n b
BPID=$LAST_PID
start lb "$LB" -c "$BT/lb.yaml"
LBPID=$LAST_PID
sleep 1
kill -0 "$LBPID" 2>/dev/null || die "lb did not start: $(tail -3 "$BT/lb.log")"
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$LBPID/status"; }
metrics() { curl -s "http://127.0.0.1:$MP/metrics"; }
sum() { metrics | awk -v n="$1" '$1 ~ "^"n"({|$)" { s += $2 } END { print s + 0 }'; }
rss_start=$(rss)

cat >"$BT/mix.lua" <<'EOL'
local paths = { "/", "/s/item.json", "/bytes/2048", "/headers" }
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", paths[(i % #paths) + 1])
end
EOL
say "soak: ${DUR}s of HTTP, TLS and L4 traffic, chaos every ${CHAOS}s"
start wrk_web wrk -t1 -c32 -d"${DUR}s" -s "$BT/mix.lua" "http://127.0.0.1:$H"
W1=$LAST_PID
start wrk_tls wrk -t1 -c16 -d"${DUR}s" "https://127.0.0.1:$S/bytes/512"
W2=$LAST_PID
start wrk_l4 wrk -t1 -c16 -d"${DUR}s" "http://127.0.0.1:$P/"
W3=$LAST_PID

reloads=0 drains=0 restarts=0 step=0
end=$(( $(date +%s) + DUR ))
while [ "$(date +%s)" -lt $((end - CHAOS)) ]; do
    sleep "$CHAOS"
    case $((step % 4)) in
        0) "$LBCTL" -s "$BT/lb.sock" reload >/dev/null && reloads=$((reloads + 1)) ;;
        1) "$LBCTL" -s "$BT/lb.sock" drain app a >/dev/null && drains=$((drains + 1)) ;;
        2) "$LBCTL" -s "$BT/lb.sock" undrain app a >/dev/null ;;
        3) stop "$BPID"; sleep 0.5
           start b "$DEMO" -l "127.0.0.1:$B" -n b
           BPID=$LAST_PID; restarts=$((restarts + 1)) ;;
    esac
    step=$((step + 1))
    kill -0 "$LBPID" 2>/dev/null || die "lb died during the soak"
done
for p in $W1 $W2 $W3; do wait "$p" 2>/dev/null || true; done
rss_end=$(rss)

# wrk's summary: requests, then failures (socket errors of every kind, and non-2xx).
counts() {
    req=$(awk '/requests in/ { print $1 }' "$BT/$1.log")
    err=$(awk '/Socket errors/ { gsub(",", ""); s = $4 + $6 + $8 + $10 } /Non-2xx/ { s += $5 }
               END { print s + 0 }' "$BT/$1.log")
    echo "${req:-0} $err"
}
set -- $(counts wrk_web); web_req=$1 web_err=$2
set -- $(counts wrk_tls); tls_req=$1 tls_err=$2
set -- $(counts wrk_l4); l4_req=$1 l4_err=$2

# Clients are gone; pooled backend connections close after their 2 s idle timeout.
i=0
while [ $i -lt 100 ]; do
    slots=$(sum lb_connections_active); bufs=$(sum lb_worker_buffers_in_use)
    files=$(sum lb_worker_files_open)
    [ "$slots$bufs$files" = 000 ] && break
    sleep 0.1; i=$((i + 1))
done
cat <<EOF
| soak ${DUR}s | requests | failed |
|---|---|---|
| HTTP (proxied + static) | $web_req | $web_err |
| HTTPS | $tls_req | $tls_err |
| L4 | $l4_req | $l4_err |

reloads $reloads, drains $drains, backend restarts $restarts;
lb RSS $((rss_start / 1024)) MiB at start, $((rss_end / 1024)) MiB at the end;
left once idle: slots $slots, buffers $bufs, sockets $files
EOF
[ "$slots$bufs$files" = 000 ] || die "lb still holds slots=$slots buffers=$bufs sockets=$files"
