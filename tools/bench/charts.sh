#!/bin/sh
# Draws the PNG charts of a benchmark run with gnuplot, from the figures the bench scripts
# recorded (lib.sh's record: "WORKLOAD TARGET METRIC MEDIAN MIN MAX" a line).
#
# Usage: tools/bench/charts.sh RESULTS OUTDIR
# Writes into OUTDIR (run.sh: docs/bench) the charts there are figures for, and prints one
# markdown line per chart, "![title](OUTDIR/NAME.png)", for BENCHMARKS.md:
#   reqs.png         requests/s per workload, one bar per target (median; min-max whiskers)
#   cpu.png          proxy/server CPU µs per request per workload
#   latency_W.png    p50/p99/p99.9 per target for workload W (log scale)
#   stream.png       GB/s of the L4 1 GiB transfer per target
#   idle_mem.png     bytes of memory per idle connection per proxy
#   c10k.png         latency of 10,000 requests at once, one per held connection
#   tls_hs.png       TLS handshakes per CPU-second of the proxy (full and resumed, ECDSA, RSA)
#   tls.png          HTTPS keep-alive CPU µs per request
#   redis.png        redis-benchmark GET/SET requests/s through lb and twemproxy
#   ramp.png         p99 against the offered rate, one line per route (ramp.sh), with its limit
#   cache_cpu.png    cache.sh: CPU µs per request of lb's cache, nginx proxy_cache and Varnish,
#                    hits and misses
#   cache_reqs.png   cache.sh: requests/s of the same
set -eu
[ $# = 2 ] || { echo "usage: tools/bench/charts.sh RESULTS OUTDIR" >&2; exit 2; }
res=$1 out=$2
command -v gnuplot >/dev/null 2>&1 || { echo "bench: gnuplot not installed (tools/deps.sh)" >&2; exit 1; }
[ -s "$res" ] || exit 0
mkdir -p "$out"
work=$(mktemp -d /tmp/lb-bench-charts.XXXXXX)
trap 'rm -rf "$work"' EXIT

TARGETS="direct lb lb_l2 lb_plain haproxy nginx varnish twemproxy"
label() {
    case $1 in
        direct) echo "direct" ;; lb) echo "lb" ;; haproxy) echo "HAProxy" ;; nginx) echo "nginx" ;;
        l7_c64) echo "L7 -c64" ;; l7_c1000) echo "L7 -c1000" ;; static) echo "static 2.4 KiB" ;;
        l4_stream) echo "L4 1 GiB transfer" ;; l7_c64close) echo "L7 -c64, Connection: close" ;;
        l4_get) echo "L4 redis GET" ;; l4_set) echo "L4 redis SET" ;; l4) echo "L4 redis" ;;
        p50) echo "p50" ;; p99) echo "p99" ;; p999) echo "p99.9" ;;
        rss_per_conn) echo "RSS growth / conn" ;; rss_per_conn_marginal) echo "RSS, second half" ;;
        pss_per_conn) echo "PSS growth / conn" ;;
        tls_full_ec) echo "full, ECDSA" ;; tls_full_rsa) echo "full, RSA" ;;
        tls_resumed_ec) echo "resumed, ECDSA" ;; tls_resumed_rsa) echo "resumed, RSA" ;;
        tls_ka) echo "HTTPS keep-alive" ;; twemproxy) echo "twemproxy" ;;
        rds_get) echo "GET" ;; rds_set) echo "SET" ;; rds_get_p16) echo "GET -P 16" ;;
        rds_set_p16) echo "SET -P 16" ;;
        lb_l2) echo "lb L2 (Redis)" ;; lb_plain) echo "lb, no cache" ;; varnish) echo "Varnish" ;;
        cache_hit1k) echo "hit 1 KiB -c64" ;; cache_hit16k) echo "hit 16 KiB -c64" ;;
        cache_hit1k_c1000) echo "hit 1 KiB -c1000" ;; cache_miss1k) echo "miss 1 KiB -c64" ;;
        scale_c1000) echo "2 workers, -c1000" ;; scale_c10000) echo "2 workers, -c10000" ;;
        *) echo "$1" ;;
    esac
}
color() {
    case $1 in lb) echo "#d62728" ;; haproxy) echo "#1f77b4" ;; nginx) echo "#2ca02c" ;;
        twemproxy) echo "#9467bd" ;; varnish) echo "#ff7f0e" ;; lb_l2) echo "#e377c2" ;;
        lb_plain) echo "#c7c7c7" ;;
        *) echo "#7f7f7f" ;; esac
}

# chart NAME TITLE YLABEL LOG "GROUP:WORKLOAD:METRIC ..." : one cluster per group, one bar
# per target with figures in any group, whiskers from min to max.
chart() {
    name=$1 title=$2 ylabel=$3 log=$4 groups=$5
    dat=$work/$name.dat
    : >"$dat"
    used=""
    for t in $TARGETS; do
        for g in $groups; do
            w=${g#*:}; w=${w%%:*}; m=${g##*:}
            if awk -v w="$w" -v t="$t" -v m="$m" '$1 == w && $2 == t && $3 == m { f = 1 }
                END { exit !f }' "$res"; then
                used="$used $t"; break
            fi
        done
    done
    [ -n "$used" ] || return 0
    for g in $groups; do
        glabel=$(label "${g%%:*}")
        w=${g#*:}; w=${w%%:*}; m=${g##*:}
        line="\"$glabel\""
        for t in $used; do
            v=$(awk -v w="$w" -v t="$t" -v m="$m" '$1 == w && $2 == t && $3 == m {
                print $4, $5, $6; f = 1; exit } END { if (!f) print "- - -" }' "$res")
            line="$line $v"
        done
        echo "$line" >>"$dat"
    done
    plot="" i=2
    for t in $used; do
        plot="$plot${plot:+, }'$dat' using $i:$((i + 1)):$((i + 2))"
        [ $i = 2 ] && plot="$plot:xtic(1)"
        plot="$plot title '$(label "$t")' lc rgb '$(color "$t")'"
        i=$((i + 3))
    done
    {
        echo "set terminal pngcairo size 900,480 font 'sans,10'"
        echo "set output '$out/$name.png'"
        echo "set title '$title'"
        echo "set ylabel '$ylabel'"
        echo "set datafile missing '-'"
        echo "set style data histogram"
        echo "set style histogram errorbars gap 2 lw 1"
        echo "set style fill solid 0.8 border -1"
        echo "set boxwidth 0.9"
        echo "set key top left"
        echo "set grid ytics"
        if [ "$log" = log ]; then echo "set logscale y"; else echo "set yrange [0:*]"; fi
        echo "plot $plot"
    } >"$work/$name.gp"
    gnuplot "$work/$name.gp" 2>"$work/$name.err" ||
        { echo "bench: gnuplot failed on $name: $(cat "$work/$name.err")" >&2; return 1; }
    echo "![$title]($out/$name.png)"
}

has() { awk -v w="$1" '$1 == w { f = 1 } END { exit !f }' "$res"; }
rps_groups="" cpu_groups=""
for w in l7_c64 l7_c1000 l7_c64close scale_c1000 scale_c10000 static l4_get l4_set; do
    has "$w" && rps_groups="$rps_groups $w:$w:rps"
done
for w in l7_c64 l7_c1000 l7_c64close scale_c1000 scale_c10000 static l4; do
    has "$w" && cpu_groups="$cpu_groups $w:$w:cpu"
done
[ -z "$rps_groups" ] || chart reqs "Requests/s (median; whiskers: min to max)" "requests/s" lin "$rps_groups"
[ -z "$cpu_groups" ] || chart cpu "Proxy or server CPU time per request (lower is better)" "µs per request" lin "$cpu_groups"
for w in l7_c64 l7_c1000 l7_c64close scale_c1000 scale_c10000 static; do
    has "$w" || continue
    chart "latency_$w" "Latency, $(label "$w") (log scale)" "µs" log \
        "p50:$w:p50 p99:$w:p99 p999:$w:p999"
done
if has l4_stream; then
    chart stream "One 1 GiB transfer over one connection (GB/s, higher is better)" "GB/s" lin \
        "l4_stream:l4_stream:gbps"
fi
if has idle_mem; then
    chart idle_mem "Memory per idle keep-alive client connection (lower is better)" "bytes" lin \
        "rss_per_conn:idle_mem:rss_per_conn rss_per_conn_marginal:idle_mem:rss_per_conn_marginal pss_per_conn:idle_mem:pss_per_conn"
fi
if has c10k; then
    chart c10k "One request on each of the held connections at once" "µs" log \
        "p50:c10k:p50 p99:c10k:p99"
fi
if has tls_full_ec; then
    chart tls_hs "TLS handshakes per CPU-second of the proxy (higher is better)" \
        "handshakes per CPU-second" lin \
        "tls_full_ec:tls_full_ec:hs tls_full_rsa:tls_full_rsa:hs tls_resumed_ec:tls_resumed_ec:hs tls_resumed_rsa:tls_resumed_rsa:hs"
fi
if has tls_ka; then
    chart tls "HTTPS keep-alive: proxy CPU per request (lower is better)" "µs per request" lin \
        "tls_ka:tls_ka:cpu"
fi
if has rds_get; then
    chart redis "Sharding Redis proxy: redis-benchmark requests/s (higher is better)" \
        "requests/s" lin \
        "rds_get:rds_get:rps rds_set:rds_set:rps rds_get_p16:rds_get_p16:rps rds_set_p16:rds_set_p16:rps"
fi

cache_groups=""
for w in cache_hit1k cache_hit16k cache_hit1k_c1000 cache_miss1k; do
    has "$w" && cache_groups="$cache_groups $w:$w:METRIC"
done
if [ -n "$cache_groups" ]; then
    chart cache_cpu "Cache: server CPU time per request (lower is better)" "µs per request" lin \
        "$(echo "$cache_groups" | sed 's/METRIC/cpu/g')"
    chart cache_reqs "Cache: requests/s (median; whiskers: min to max)" "requests/s" lin \
        "$(echo "$cache_groups" | sed 's/METRIC/rps/g')"
fi

# ramp_chart: ramp.sh records "ramp_ROUTE OFFERED p99 MS MS MS" for each step and "ramp limit
# p99_ms MS ..."; a line per route, p99 (log scale) against the offered rate, the limit dashed.
ramp_chart() {
    plot="" limit=$(awk '$1 == "ramp" && $2 == "limit" { print $4 }' "$res")
    for r in enqueue cluster; do
        has "ramp_$r" || continue
        awk -v w="ramp_$r" '$1 == w && $3 == "p99" { print $2, ($4 > 0.001 ? $4 : 0.001) }' \
            "$res" | sort -n >"$work/ramp_$r.dat"
        c="#d62728"; [ "$r" = cluster ] && c="#1f77b4"
        plot="$plot${plot:+, }'$work/ramp_$r.dat' using 1:2 with linespoints lw 2 pt 7"
        plot="$plot lc rgb '$c' title '$r route'"
    done
    [ -z "$limit" ] || plot="$plot, $limit with lines dt 2 lc rgb '#7f7f7f' title 'p99 limit'"
    {
        echo "set terminal pngcairo size 900,480 font 'sans,10'"
        echo "set output '$out/ramp.png'"
        echo "set title 'Open-loop ramp through lb: p99 latency against the offered rate'"
        echo "set xlabel 'offered requests/s'"
        echo "set ylabel 'p99 ms (log scale)'"
        echo "set logscale y"
        echo "set key top left"
        echo "set grid"
        echo "plot $plot"
    } >"$work/ramp.gp"
    gnuplot "$work/ramp.gp" 2>"$work/ramp.err" ||
        { echo "bench: gnuplot failed on ramp: $(cat "$work/ramp.err")" >&2; return 1; }
    echo "![p99 against the offered rate, per route]($out/ramp.png)"
}
if has ramp_enqueue || has ramp_cluster; then
    ramp_chart
fi
