# build/bench-rate, the open-loop load generator of tools/bench/ramp.sh, counts right:
#  - 200 req/s for 2 s over 4 connections: exactly 400 requests scheduled, sent and answered
#    200, and the demo backend's own counter says it received exactly 400 (none extra);
#  - framing: POST bodies answered by /echo (Content-Length), /chunked/N, an empty body
#    (/bytes/0), other statuses counted by code (/status/503);
#  - a closed port: connect errors and every request unsent, exit 0 with its JSON, no hang;
#    a server that accepts and never answers: every request a timeout, no hang;
#  - bad usage exits 2.
# No timing thresholds: the run is bounded by `timeout`, the checks are counts.
. "$(dirname "$0")/lib.sh"
need python3
RATE="${BENCH_RATE:-$ROOT/build/bench-rate}"
[ -x "$RATE" ] || fail "build/bench-rate is missing (make)"
P=$(free_port); CLOSED=$(free_port); MUTE=$(free_port)
bg demo "$DEMO" -l "127.0.0.1:$P" -n rate -c "$T/count"
DEMOPID=$LAST_PID
bg mute python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); held = []
while True: held.append(s.accept()[0])' "$MUTE"
wait_port "$P"; wait_port "$MUTE"

# check FILE PYTHON_EXPR: the JSON line in FILE, as j, makes the expression true.
check() {
    python3 -c 'import json, sys
j = json.loads(open(sys.argv[1]).read())
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" || fail "$2 is false in: $(cat "$1")"
}

echo "== 200 req/s for 2 s, 4 connections: 400 sent, 400 answered 200"
timeout 60 "$RATE" -r 200 -d 2 -c 4 "http://127.0.0.1:$P/" >"$T/r1" || fail "exit $?"
check "$T/r1" 'j["scheduled"] == 400 and j["sent"] == 400 and j["completed"] == 400'
check "$T/r1" 'j["status"] == {"200": 400} and sum(j["errors"].values()) == 0'
check "$T/r1" 'j["offered_rps"] == 200 and j["connections"] == 4'
check "$T/r1" '0 < j["latency_ms"]["p50"] <= j["latency_ms"]["p99"] <= j["latency_ms"]["max"]'
stop "$DEMOPID"
[ "$(cat "$T/count")" = 400 ] || fail "the backend counted $(cat "$T/count") requests, want 400"
echo ok

echo "== framing: POST with a body, chunked responses, statuses by code, 2 threads"
bg demo2 "$DEMO" -l "127.0.0.1:$P" -n rate
wait_port "$P"
timeout 60 "$RATE" -r 100 -d 1 -c 4 -t 2 -m POST -H 'Content-Type: text/plain' -b 'a body' \
    "http://127.0.0.1:$P/echo" >"$T/r2" || fail "exit $?"
check "$T/r2" 'j["sent"] == 100 and j["status"] == {"200": 100} and j["threads"] == 2'
timeout 60 "$RATE" -r 100 -d 1 -c 2 "http://127.0.0.1:$P/chunked/70000" >"$T/r3" || fail "exit $?"
check "$T/r3" 'j["status"] == {"200": 100} and sum(j["errors"].values()) == 0'
# An empty body (Content-Length: 0) ends with its head, not at a timeout.
timeout 60 "$RATE" -r 50 -d 1 -c 2 -T 0.5 "http://127.0.0.1:$P/bytes/0" >"$T/r7" || fail "exit $?"
check "$T/r7" 'j["status"] == {"200": 50} and sum(j["errors"].values()) == 0'
timeout 60 "$RATE" -r 50 -d 1 -c 2 "http://127.0.0.1:$P/status/503" >"$T/r4" || fail "exit $?"
check "$T/r4" 'j["status"] == {"503": 50} and j["completed"] == 50'
echo ok

echo "== a closed port: connect errors, nothing sent, no hang"
timeout 60 "$RATE" -r 100 -d 1 -c 4 -T 0.5 "http://127.0.0.1:$CLOSED/" >"$T/r5" || fail "exit $?"
check "$T/r5" 'j["sent"] == 0 and j["completed"] == 0 and j["errors"]["connect"] > 0'
check "$T/r5" 'j["errors"]["unsent"] == 100 and j["status"] == {}'
echo ok

echo "== a server that never answers: timeouts, no hang"
timeout 60 "$RATE" -r 20 -d 1 -c 2 -T 0.5 "http://127.0.0.1:$MUTE/" >"$T/r6" || fail "exit $?"
check "$T/r6" 'j["completed"] == 0 and j["errors"]["timeout"] > 0'
check "$T/r6" 'j["errors"]["timeout"] + j["errors"]["unsent"] == 20 and j["sent"] == j["errors"]["timeout"]'
echo ok

echo "== bad usage exits 2"
for args in "" "-r 10 http://127.0.0.1:$P/" "-d 1 http://127.0.0.1:$P/" \
    "-r 0 -d 1 http://127.0.0.1:$P/" "-r 10 -d 1 -c 2 -t 3 http://127.0.0.1:$P/" \
    "-r 10 -d 1 ftp://127.0.0.1/" "-r 10 -d 1 http://127.0.0.1:x/" "-r 10 -d 1 -m HEAD http://h/" \
    "-r 10 -d 1 -H nocolon http://h/" "-r 10 -d 1 -Z http://h/" "-r 10 -d 1 http://a/ http://b/" \
    "-r ten -d 1 http://h/"; do
    set +e
    # shellcheck disable=SC2086 # the words of $args are the arguments
    timeout 10 "$RATE" $args >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ $rc = 2 ] || fail "bench-rate $args: exit $rc, want 2"
    grep -q '^usage: bench-rate' "$T/err" || fail "bench-rate $args: no usage line: $(cat "$T/err")"
    [ ! -s "$T/out" ] || fail "bench-rate $args printed on stdout: $(cat "$T/out")"
done
echo ok
