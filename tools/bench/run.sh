#!/bin/sh
# Runs the side-by-side benchmarks (`make bench`) and writes BENCHMARKS.md at the top of the
# repository: the machine (CPU, cores, kernel, versions of the peers we compare against), how
# this run was invoked, then each benchmark's own markdown, which ends with its exact commands
# and generated configs; then "Where lb loses, and why" (tools/bench/profile.sh: the figures
# where lb is behind a peer, and perf profiles of lb), and last the charts: PNGs drawn by
# tools/bench/charts.sh (gnuplot) into docs/bench/ from the figures the scripts recorded. A
# full run (no NAME, no QUICK) also rewrites README.md's headline block (headline.sh).
#
# Usage: tools/bench/run.sh [NAME...]   NAME: a script in tools/bench/ without .sh
#        (default: every one present: cache, floor, idle_mem, l4_redis, l4_stream, l7_http,
#        redis_proxy, scale, static, tls, then profile; not soak, nor ramp: the
#        sustainable-rate ramp takes 1-3 minutes more, beyond the 26 the defaults keep to, so
#        it runs as `run.sh ramp`)
# Time on 2 shared cores: a full run takes about 25.5 minutes (l7_http 6.5, tls 4, redis_proxy
# 3, cache 3 (2.5 without the L2 rows), scale 3, floor 1.5, l4_redis 1.5, idle_mem 1.5,
# static 1, l4_stream 0.5, profile 0.5); keep the defaults within 26.
# QUICK=1 takes about 2 minutes with the same tables (one or two rounds, 3 s runs); the
# report's Load section says how long the run took.
# Environment passed through to the scripts: QUICK=1 (short runs), ROUNDS, N, CLIENTS,
# DURATION, CONNS, BYTES, LB. N is l4_redis's requests per test, DURATION l7_http's, static's,
# cache's and profile's seconds per run, BYTES l4_stream's transfer size, CONNS idle_mem's connection count; CLIENTS is the connection count of
# l4_redis, l7_http, static and cache alike, so leave it unset to get each one's default.
# Exit status: 0 all measured, 3 some lb columns skipped (lb could not run), 1 a failure.
set -u
cd "$(dirname "$0")/../.."
out=BENCHMARKS.md
tmp=$(mktemp /tmp/lb-bench-md.XXXXXX)
part=$(mktemp /tmp/lb-bench-part.XXXXXX)
BENCH_DATA=$(mktemp -d /tmp/lb-bench-data.XXXXXX)
export BENCH_DATA
trap 'rm -f "$tmp" "$part"; rm -rf "$BENCH_DATA"' EXIT
trap 'exit 1' INT TERM

# profile.sh runs last, whatever the order asked, since it reads what the others recorded.
profile=""
if [ $# -gt 0 ]; then
    scripts=""
    for n in "$@"; do
        [ -f "tools/bench/$n.sh" ] || { echo "bench: no tools/bench/$n.sh" >&2; exit 1; }
        if [ "$n" = profile ]; then profile=1; else scripts="$scripts tools/bench/$n.sh"; fi
    done
else
    scripts=$(ls tools/bench/*.sh | grep -v -e '/lib\.sh$' -e '/run\.sh$' -e '/charts\.sh$' \
        -e '/headline\.sh$' -e '/profile\.sh$' -e '/soak\.sh$' -e '/ramp\.sh$')
    profile=1
fi

ver() { # first line of a version command, or "not installed"
    command -v "$1" >/dev/null 2>&1 || { echo "not installed"; return; }
    "$@" 2>&1 | head -n 1
}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
env_used=""
for v in QUICK ROUNDS N CLIENTS DURATION CONNS BYTES LB; do
    eval "val=\${$v:-}"
    [ -n "$val" ] && env_used="$env_used $v=$val"
done

{
    echo "# Benchmarks"
    echo
    echo "Written by \`tools/bench/run.sh\` (\`make bench\`); do not edit by hand. Each table"
    echo "compares lb with its peers on the same machine, same backend and same load, one worker"
    echo "each, runs alternating; figures are median, min and max over the rounds."
    echo
    echo "## Machine and run"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); lb commit $commit"
    echo "- CPU: ${cpu:-unknown}; $(nproc) cores online; memory $mem"
    echo "- Kernel: $(uname -sr)"
    echo "- $(ver haproxy -v | sed 's/ - https.*//')"
    echo "- $(ver nginx -v | sed 's/^nginx version: //')"
    echo "- $(ver varnishd -V | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/')"
    echo "- $(ver redis-server --version | awk '{print $1, $2, $3}')"
    echo "- $(ver redis-benchmark --version)"
    echo "- twemproxy $(ver nutcracker -V | awk '{print $NF}')"
    echo "- $(ver wrk -v | awk '{print $1, $2}')"
    echo "- $(ver perf --version) (profiles)"
    echo "- $(ver gnuplot --version) (charts)"
    echo "- $(ver gcc --version)"
    echo "- Command: \`${env_used# }${env_used:+ }tools/bench/run.sh${*:+ $*}\`"
    echo
    echo "All processes (load generator, proxy, backend) share these $(nproc) cores, so the"
    echo "numbers compare the proxies with each other here; they are not capacity figures."
    case " $scripts " in
        *" tools/bench/ramp.sh "*) ;;
        *) echo
           echo "The sustainable-rate ramp (tools/bench/ramp.sh: the highest rate an enqueue and a"
           echo "cluster route hold within a p99 limit) is not part of this run:"
           echo "\`tools/bench/run.sh ramp\` measures it." ;;
    esac
} >"$tmp"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
rc=0
for s in $scripts; do
    t0=$(date +%s)
    name=$(basename "$s" .sh)
    echo "bench: running $name" >&2
    sh "$s" >"$part"
    src=$?
    {
        echo
        echo "## $name"
        echo
        case $src in
            0) ;;
            3) echo "> lb could not run in this build, so its columns are missing; see the table." ;
               echo ;;
            *) echo "> FAILED (exit $src); partial output follows." ; echo ;;
        esac
        cat "$part"
    } >>"$tmp"
    case $src in
        0) ;;
        3) [ $rc -eq 0 ] && rc=3 ;;
        *) rc=1 ;;
    esac
    echo "bench: $name took $(( $(date +%s) - t0 ))s" >&2
done

if [ -n "$profile" ]; then
    echo "bench: running profile" >&2
    sh tools/bench/profile.sh >"$part"
    src=$?
    {
        echo
        echo "## Where lb loses, and why"
        echo
        [ $src = 0 ] || [ $src = 3 ] || { echo "> FAILED (exit $src); partial output follows."; echo; }
        cat "$part"
    } >>"$tmp"
    [ $src = 0 ] || [ $src = 3 ] || rc=1
fi

# Other work on the machine (builds, fuzzers) skews rates far more than CPU per request:
# say so in the file rather than let a reader trust noisy numbers.
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo
    echo "## Load"
    echo
    echo "Load average (1, 5, 15 min) before: $load_before; after: $load_after." \
        "The run took $(( $(date +%s) - t_start ))s."
    if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN { exit !(l >= n / 4) }'; then
        echo "The machine was already busy before the run started: requests/s are noisy;"
        echo "proxy CPU per request is less affected."
    fi
} >>"$tmp"

# Charts from every figure recorded above. A run of some scripts (NAME...) draws into a temp
# dir and keeps only the charts the file does not show yet: the shared ones (reqs, cpu) need
# every workload's figures, which only a full run has.
chart_dir=docs/bench
[ $# -gt 0 ] && [ -f "$out" ] && chart_dir=$BENCH_DATA/charts
if [ -s "$BENCH_DATA/results" ]; then
    if charts=$(sh tools/bench/charts.sh "$BENCH_DATA/results" "$chart_dir"); then
        if [ "$chart_dir" != docs/bench ]; then
            for f in "$chart_dir"/*.png; do
                [ -e "$f" ] || continue
                grep -q "(docs/bench/$(basename "$f"))" "$out" || cp "$f" docs/bench/
            done
            charts=$(echo "$charts" | sed "s|($chart_dir/|(docs/bench/|")
        fi
        {
            echo
            echo "## Charts"
            echo
            echo "Medians, whiskers from min to max over the rounds (tables above)."
            echo "$charts" | while read -r l; do echo; echo "$l"; done
        } >>"$tmp"
    else
        echo "bench: charts failed; BENCHMARKS.md has the tables only" >&2
        [ $rc -eq 0 ] && rc=1
    fi
fi

# A run of some scripts replaces their sections in the last full report and keeps the rest
# (tools/bench/merge.py), saying in the machine section what was re-run and when.
if [ $# -gt 0 ] && [ -f "$out" ]; then
    python3 tools/bench/merge.py "$out" "$tmp" "$tmp.merged" && mv "$tmp.merged" "$out" ||
        { echo "bench: could not merge into $out" >&2; exit 1; }
    echo "bench: merged $* into $out" >&2
else
    cp "$tmp" "$out"
    echo "bench: wrote $out" >&2
fi

# README's headline figures come from full runs only: a QUICK run or a subset is too noisy or
# too partial to show there.
if [ "${QUICK:-0}" = 1 ] || [ $# -gt 0 ]; then
    echo "bench: README.md headline figures left as they were (QUICK or a subset of scripts)" >&2
elif [ $rc = 1 ]; then
    echo "bench: README.md headline figures left as they were (a script failed)" >&2
elif [ -s "$BENCH_DATA/results" ] && sh tools/bench/headline.sh "$BENCH_DATA/results" README.md; then
    echo "bench: updated README.md's headline figures" >&2
else
    echo "bench: README.md headline figures not updated" >&2
    rc=1
fi
exit $rc
