#!/bin/sh
# Scale (issue 19): the L7 keep-alive benchmark of l7_http.sh again, with two workers for
# every proxy (lb workers: 2, HAProxy nbthread 2, nginx worker_processes 2; the nginx origin
# has two workers too and wrk two threads) and many more clients: 1,000 and 10,000 keep-alive
# connections. It shows what the one-worker tables cannot: whether lb spreads its load over
# both workers, and how latency (p50, p99, p99.9) holds when each worker carries thousands of
# connections. DESIGN.md asks lb's p99 to be no worse than HAProxy's at the same load.
#
# Client, origin and proxy share the machine's cores, so these runs are oversubscribed on a
# 2-core machine: compare the proxies with each other within the run, not with the
# one-worker tables.
#
# Environment: ROUNDS (2; QUICK=1: 1), DURATION seconds per run (8; QUICK=1: 3),
# SCALE_CLIENTS ("1000 10000"), LB (path to lb). Needs ulimit -n above the largest count +
# 256 (l7_http.sh says so and stops otherwise).
# Time: about 2.5 minutes on 2 shared cores (3 proxies x 2 counts x (2 rounds + a warm-up)).
# Output: markdown on stdout, progress on stderr; exit 0, 3 (lb could not run) or 1.
if [ "${QUICK:-0}" = 1 ]; then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3}
else
    ROUNDS=${ROUNDS:-2}; DURATION=${DURATION:-8}
fi
WORKERS=2 CLOSE=0 KEY=scale TARGETS="lb haproxy nginx" CLIENTS=${SCALE_CLIENTS:-1000 10000} \
    TITLE="Scale: two workers each, 1,000 and 10,000 keep-alive connections" \
    ROUNDS=$ROUNDS DURATION=$DURATION \
    exec "$(dirname "$0")/l7_http.sh"
