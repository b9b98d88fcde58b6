#!/bin/sh
# Rewrites the headline block of README.md (the lines between `<!-- bench:begin -->` and
# `<!-- bench:end -->`) with the headline figures from a benchmark run's recorded figures (lib.sh's
# record: "WORKLOAD TARGET METRIC MEDIAN MIN MAX" a line). run.sh calls it after a full run;
# a QUICK run leaves README.md alone, since its numbers are too noisy to show.
#
# Usage: tools/bench/headline.sh RESULTS README
# A figure the run did not record shows as "not measured". Exit 1 when README has no markers.
set -eu
[ $# = 2 ] || { echo "usage: tools/bench/headline.sh RESULTS README" >&2; exit 2; }
res=$1 readme=$2
grep -q '^<!-- bench:begin -->$' "$readme" && grep -q '^<!-- bench:end -->$' "$readme" ||
    { echo "bench: $readme has no bench:begin/bench:end markers" >&2; exit 1; }

med() { # WORKLOAD TARGET METRIC: the median, or "-"
    awk -v w="$1" -v t="$2" -v m="$3" '$1 == w && $2 == t && $3 == m { print $4; f = 1; exit }
        END { if (!f) print "-" }' "$res"
}
rat() { # WORKLOAD METRIC PEER: lb / PEER, or "not measured"
    awk -v a="$(med "$1" lb "$2")" -v b="$(med "$1" "$3" "$2")" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "not measured"; else printf "%.2f", a / b }'
}
num() { # X DECIMALS
    awk -v x="$1" -v d="$2" 'BEGIN { if (x == "-") print "not measured"; else printf "%.*f", d, x }'
}

block=$(mktemp /tmp/lb-bench-headline.XXXXXX)
new=$(mktemp /tmp/lb-bench-readme.XXXXXX)
trap 'rm -f "$block" "$new"' EXIT
{
    echo "Latest \`make bench\` ($(date -u '+%Y-%m-%d'), $(nproc) cores shared by client, proxy and"
    echo "backend; lb / peer, medians; details, profiles and charts in [BENCHMARKS.md](BENCHMARKS.md)):"
    echo
    echo "- L7 keep-alive, wrk -c64: CPU per request $(rat l7_c64 cpu haproxy) of HAProxy's" \
        "(target at most 0.60), p99 $(rat l7_c64 p99 haproxy) of HAProxy's."
    echo "- Two workers each, wrk -t2 -c10000: p99 $(rat scale_c10000 p99 haproxy) of HAProxy's" \
        "(target at most 1.00), CPU per request $(rat scale_c10000 cpu haproxy) of HAProxy's," \
        "$(num "$(med scale_c10000 lb errors)" 0) errors (HAProxy $(num "$(med scale_c10000 haproxy errors)" 0))."
    echo "- L4 redis-benchmark GET: $(rat l4_get rps haproxy) x HAProxy mode tcp's requests/s" \
        "(target at least 1.20)."
    echo "- L4 1 GiB over one connection: $(num "$(med l4_stream lb gbps)" 2) GB/s," \
        "$(rat l4_stream gbps haproxy) x HAProxy's."
    echo "- Static 2.4 KiB snapshot: CPU per request $(rat static cpu nginx) of nginx's" \
        "(target at most 0.40)."
    echo "- An idle keep-alive client connection: $(num "$(med idle_mem lb rss_per_conn)" 0) bytes" \
        "of lb memory (target under 256; HAProxy $(num "$(med idle_mem haproxy rss_per_conn)" 0)," \
        "nginx $(num "$(med idle_mem nginx rss_per_conn)" 0))."
    echo "- TLS: full ECDSA handshakes per CPU-second $(rat tls_full_ec hs haproxy) x HAProxy's" \
        "(target at least 1.20); HTTPS keep-alive CPU per request $(rat tls_ka cpu haproxy) of" \
        "HAProxy's (target at most 0.80); an idle TLS connection" \
        "$(num "$(med tls_idle lb rss_per_conn)" 0) bytes (HAProxy $(num "$(med tls_idle haproxy rss_per_conn)" 0))."
    echo "- Redis sharding (\`protocol: redis\`): GET $(rat rds_get rps twemproxy) x twemproxy's" \
        "requests/s, -P 16 $(rat rds_get_p16 rps twemproxy) x (target at least 1.20 both); CPU" \
        "per command $(rat rds cpu twemproxy) of twemproxy's."
} >"$block"
awk -v bf="$block" '
    $0 == "<!-- bench:begin -->" { print; while ((getline l < bf) > 0) print l; skip = 1; next }
    $0 == "<!-- bench:end -->" { skip = 0 }
    !skip { print }' "$readme" >"$new"
cp "$new" "$readme"
