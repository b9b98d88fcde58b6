#!/bin/sh
# Where lb's CPU goes: `perf record -g` on one lb (workers: 1) while wrk -c64 runs the L7
# keep-alive workload (an http listener in front of one nginx origin, as in l7_http.sh), then
# the static one (a 2,458-byte file from a snapshot set, as in static.sh), then while 1 GiB
# transfers run through a tcp listener (as in l4_stream.sh). For each, the share of samples in
# the kernel, in lb and in libraries (`perf report --sort dso`), the kernel's samples grouped by
# subsystem from symbol names, and the top symbols (`perf report --sort dso,sym`).
#
# run.sh runs it last, under "Where lb loses, and why": with $BENCH_DATA/results from the other
# scripts it first lists every figure where lb is behind a peer (the floor is not a peer),
# then the profiles.
#
# Without perf, or where perf may not sample (perf_event_paranoid, no CAP_PERFMON), it prints a
# note saying so and exits 0; if lb cannot run it says why and exits 3.
#
# Environment: DURATION seconds per profile (5; QUICK=1: 2), LB (path to lb).
# Output: markdown on stdout, progress on stderr.
. "$(dirname "$0")/lib.sh"
need wrk nginx python3 awk
STREAM=$BENCH_ROOT/build/bench-stream

if [ "${QUICK:-0}" = 1 ]; then DURATION=${DURATION:-2}; else DURATION=${DURATION:-5}; fi
CLIENTS=64
TOP=12

# --- where lb is behind: every recorded figure of lb against the best peer on it
if [ -n "${BENCH_DATA:-}" ] && [ -s "$BENCH_DATA/results" ]; then
    echo "### Figures where lb is behind a peer (medians of this run)"
    echo
    awk 'function better(m, a, b) { # 1 when a is better than b for metric m
             if (m == "rps" || m == "gbps" || m == "hs") return a > b
             return a < b
         }
         function name(t) { return t == "haproxy" ? "HAProxy" : t }
         { v[$1 " " $2 " " $3] = $4; if ($2 != "lb" && $2 != "direct" && $2 != "floor") peers[$1 " " $3] = peers[$1 " " $3] " " $2 }
         END {
             for (k in peers) {
                 split(k, wm, " "); w = wm[1]; m = wm[2]
                 if (!((w " lb " m) in v)) continue
                 if (m !~ /^(rps|gbps|hs|cpu|cpu_ms_per_gib|p99|rss_per_conn)$/) continue
                 lv = v[w " lb " m]; n = split(peers[k], ps, " ")
                 for (i = 1; i <= n; i++) {
                     pv = v[w " " ps[i] " " m]
                     # Ties within 2% are noise on a shared machine, not a loss.
                     if (pv > 0 && better(m, pv, lv) && (lv / pv > 1.02 || lv / pv < 0.98))
                         printf "- %s, %s: lb %.6g, %s %.6g (lb / %s %.2f)\n", w, m, lv, name(ps[i]), pv, name(ps[i]), lv / pv
                 }
             }
         }' "$BENCH_DATA/results" | sort >"$BT/behind"
    if [ -s "$BT/behind" ]; then
        cat "$BT/behind"
        echo
        echo "Metrics: rps requests/s and gbps GB/s (higher is better); cpu µs per request," \
            "cpu_ms_per_gib ms per GiB, p99 µs and rss_per_conn bytes (lower is better)." \
            "Workloads are the sections above (l7_c64close: Connection: close); gaps within" \
            "2% are left out as noise."
    else
        echo "None: lb is ahead of or within 2% of every peer on every figure recorded."
    fi
    echo
fi

echo "### Profiles of lb"
echo
if ! command -v perf >/dev/null 2>&1; then
    echo "Skipped: perf is not installed (Debian: linux-perf; tools/deps.sh installs it)."
    exit 0
fi
if ! perf record -q -o "$BT/probe.data" -- true >"$BT/probe.log" 2>&1; then
    echo "Skipped: perf may not sample here: $(head -n 2 "$BT/probe.log" | tr '\n' ' ')" \
        "(kernel.perf_event_paranoid is $(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo unknown))."
    exit 0
fi

set -- $(free_ports 3)
oport=$1 lport=$2 tport=$3
sport=$(free_port)
while [ "$sport" = "$oport" ] || [ "$sport" = "$lport" ] || [ "$sport" = "$tport" ]; do
    sport=$(free_port)
done

# --- origin (as in l7_http.sh), the snapshot (as in static.sh), the sink (as in l4_stream.sh)
BODY="lb-bench: L7 keep-alive benchmark; a small, fixed body of exactly one hundred bytes through a proxy."
{
    nginx_conf "$BT/origin"
    cat <<EOF
    server {
        listen 127.0.0.1:$oport;
        location / { return 200 "$BODY"; }
    }
}
EOF
} >"$BT/origin.conf"
start_nginx origin
origin_pid=$LAST_PID
wait_port "$oport" "$origin_pid" 10 || die "nginx origin did not start: $(tail -n 5 "$BT/origin.log")"
BENCH_PIDS="$BENCH_PIDS $(nginx_workers "$origin_pid")"

mkdir -p "$BT/snap"
python3 -c 'import sys; open(sys.argv[1], "w").write("{\"pad\":\"" + "x" * 2448 + "\"}\n")' \
    "$BT/snap/catalog.json"

stream_ok=""
if [ -x "$STREAM" ]; then
    start sink "$STREAM" sink "$sport"
    wait_port "$sport" "$LAST_PID" 10 && stream_ok=1
fi

cat >"$BT/lb.yaml" <<EOF
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
      - cluster: origin
  - name: stream
    bind: 127.0.0.1:$tport
    protocol: tcp
    cluster: sink

clusters:
  origin:
    servers:
      - { name: o1, address: 127.0.0.1:$oport }
  sink:
    servers:
      - { name: s1, address: 127.0.0.1:$sport }

static:
  catalog: { dir: $BT/snap, max_age: 60s }
EOF
start_lb "$lport"
if [ -z "$lb_pid" ]; then
    echo "Skipped: lb could not run: $lb_why"
    exit 3
fi

# profile NAME CMD...: perf record -g on lb for DURATION seconds while CMD runs (CMD is
# started with it and must end by itself about when perf does); leaves $BT/NAME.data.
profile() {
    pname=$1; shift
    start "perf-$pname" perf record -q -F 999 -g -p "$lb_pid" -o "$BT/$pname.data" -- sleep "$DURATION"
    perf_pid=$LAST_PID
    sleep 0.2
    "$@" >"$BT/$pname.out" 2>&1 || die "$pname load failed: $(tail -n 3 "$BT/$pname.out")"
    i=0
    while kill -0 "$perf_pid" 2>/dev/null && [ $i -lt $(( (DURATION + 30) * 10 )) ]; do
        sleep 0.1; i=$((i + 1))
    done
    stop "$perf_pid"
    [ -s "$BT/$pname.data" ] || die "perf wrote no samples for $pname: $(tail -n 3 "$BT/perf-$pname.log")"
}
# stream_load: 1 GiB transfers through lb's tcp listener for DURATION seconds.
stream_load() {
    end=$(( $(date +%s) + DURATION ))
    while [ "$(date +%s)" -lt "$end" ]; do
        timeout 60 "$STREAM" source "$tport" 1073741824 || return 1
    done
}

# report NAME LABEL: the markdown for one profile.
report() {
    pname=$1 label=$2
    perf report -i "$BT/$pname.data" --no-children --sort dso --stdio -g none 2>/dev/null |
        awk '$1 ~ /%$/ { p = $1; sub("%", "", p); print p, $2 }' >"$BT/$pname.dso"
    perf report -i "$BT/$pname.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
        awk '$1 ~ /%$/ { p = $1; sub("%", "", p); d = $2; k = $3; $1 = $2 = $3 = "";
                         sub(/^ +/, ""); print p "\t" d "\t" k "\t" $0 }' >"$BT/$pname.sym"
    lbbin=$(basename "$LB")
    set -- $(awk -v lb="$lbbin" '{ if ($2 == "[kernel.kallsyms]") k += $1; else if ($2 == lb) u += $1;
                                   else o += $1 }
                                 END { printf "%.1f %.1f %.1f\n", k, u, o }' "$BT/$pname.dso")
    kern=$1 own=$2 other=$3
    # Kernel samples by subsystem, from the symbol names.
    awk -F'\t' '$2 == "[kernel.kallsyms]" {
            s = $4
            if (s ~ /irqrestore|irq_enable/) g = "re-enabling interrupts (work done with them off)"
            else if (s ~ /io_uring|^io_|__io_/) g = "io_uring"
            else if (s ~ /copy|memcpy|memset|csum/) g = "copies (user <-> kernel, skb)"
            else if (s ~ /tcp|inet|ip_|ipv4|skb|sock|sk_|__sk|net_|netif|napi|__dev|dev_|loopback|nf_|neigh|dst_/) g = "TCP/IP and sockets"
            else if (s ~ /sched|schedule|switch|wake|futex|idle|tick|hrtimer|irq|softirq|rcu|__do_softirq/) g = "scheduling, wakeups, interrupts"
            else if (s ~ /alloc|free|kmem|slab|page|mem_cgroup|cache/) g = "memory allocation"
            else if (s ~ /syscall|entry_|exit_to|do_syscall|sys_/) g = "syscall entry and exit"
            else g = "other"
            t[g] += $1
        } END { for (g in t) printf "%.1f\t%s\n", t[g], g }' "$BT/$pname.sym" | sort -rn >"$BT/$pname.groups"
    event=$(perf evlist -i "$BT/$pname.data" 2>/dev/null | head -n 1)
    echo "#### $label"
    echo
    echo "Of lb's CPU samples: kernel $kern%, lb itself $own%, other libraries $other%" \
        "(\`perf report --sort dso\`). Kernel samples by subsystem (grouped by symbol name):" \
        "$(awk -F'\t' '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $2, $1 }' "$BT/$pname.groups")."
    echo
    echo "| % of samples | where | symbol |"
    echo "|---:|---|---|"
    head -n "$TOP" "$BT/$pname.sym" | awk -F'\t' '{
        w = ($3 == "[k]") ? "kernel" : $2
        gsub(/\|/, "\\|", $4)
        printf "| %s | %s | `%s` |\n", $1, w, $4 }'
    case $event in
        cpu-clock*)
            echo
            echo "Sampled with \`$event\` (no hardware PMU here): a sample that falls while" \
                "interrupts are off lands where they come back on, so" \
                "\`_raw_spin_unlock_irqrestore\` stands mostly for softirq network work" \
                "(loopback receive) done inside the calls that precede it." ;;
    esac
    echo
    # The paragraph: what dominates, in the numbers of this profile.
    top_k=$(awk -F'\t' '$3 == "[k]" { printf "%s`%s` %s%%", n++ ? ", " : "", $4, $1 } n == 3 { exit }' "$BT/$pname.sym")
    top_u=$(awk -F'\t' -v lb="$lbbin" '$2 == lb { printf "%s`%s` %s%%", n++ ? ", " : "", $4, $1 } n == 3 { exit }' "$BT/$pname.sym")
    g1=$(head -n 1 "$BT/$pname.groups" | cut -f2) g1p=$(head -n 1 "$BT/$pname.groups" | cut -f1)
    awk -v k="$kern" -v u="$own" -v o="$other" -v g="$g1" -v gp="$g1p" -v tk="$top_k" -v tu="$top_u" \
        -v label="$label" 'BEGIN {
        printf "In %s, %.0f%% of lb'"'"'s CPU is in the kernel, the largest part in %s (%.0f%% of all" \
               " samples; top kernel symbols %s), and %.0f%% in lb'"'"'s own code (top: %s).", \
               label, k, g, gp, tk, u, (tu == "" ? "none above the noise" : tu)
        if (k >= 60)
            printf " lb'"'"'s own code is not where the time goes: what separates it from a peer" \
                   " here is how many system calls, copies and wakeups each request or byte costs" \
                   " in the kernel, so that is where a fix has to act."
        else
            printf " lb'"'"'s own code is a large share here, so its top symbols above are the first" \
                   " candidates for a fix."
        printf "\n"
    }'
    echo
}

say "profiling lb for ${DURATION}s per workload: L7 keep-alive, static, L4 stream"
profile l7 timeout $((DURATION + 30)) wrk -t1 -c"$CLIENTS" -d"${DURATION}s" "http://127.0.0.1:$lport/"
profile static timeout $((DURATION + 30)) wrk -t1 -c"$CLIENTS" -d"${DURATION}s" "http://127.0.0.1:$lport/s/catalog.json"
[ -z "$stream_ok" ] || profile stream stream_load

echo "\`perf record -F 999 -g -p LB_PID -- sleep $DURATION\` on lb (workers: 1) while the load" \
    "runs, then \`perf report --no-children --sort dso,sym --stdio -g none\` (self time; the" \
    "top $TOP symbols below). \"kernel\" is [kernel.kallsyms]; lb is built -O2 -g without" \
    "frame pointers, so the call graphs are not used."
echo
report l7 "L7 keep-alive, wrk -t1 -c$CLIENTS -d${DURATION}s through lb to one nginx origin"
report static "static, wrk -t1 -c$CLIENTS -d${DURATION}s on a 2,458-byte snapshot file"
if [ -n "$stream_ok" ]; then
    report stream "L4 stream, 1 GiB transfers (build/bench-stream) through a tcp listener for ${DURATION}s"
else
    echo "L4 stream: not profiled (build/bench-stream is not built)."
fi
exit 0
