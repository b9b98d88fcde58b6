# The metrics endpoint end to end, with the real build/lb, demo backends and curl:
#  - /metrics parses under a strict reader of the Prometheus text format (every sample line
#    matches the grammar, every family has a TYPE first and is contiguous, histogram buckets
#    are cumulative and end with +Inf equal to _count), and the counters moved with traffic;
#  - /stats is JSON naming every server; unknown paths 404, other methods 405;
#  - a slow client does not stop the endpoint (nor the admin socket) from answering others;
#  - the status page in headless Chromium: screenshot, and every server in the rendered DOM
#    after at least one refresh from /stats. No chromium (or one that cannot start here):
#    the test skips and says why, after everything else has passed.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"

D1=$(free_port); D2=$(free_port); DEAD=$(free_port); L=$(free_port); M=$(free_port)
bg d1 "$DEMO" -l "127.0.0.1:$D1" -n d1
bg d2 "$DEMO" -l "127.0.0.1:$D2" -n d2

cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
  metrics: { listen: 127.0.0.1:$M }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    routes:
      - match: { path_prefix: /other/ }
        cluster: other
      - cluster: app
clusters:
  app:
    servers:
      - { name: d1, address: 127.0.0.1:$D1, weight: 2 }
      - { name: d2, address: 127.0.0.1:$D2 }
      - { name: gone, address: 127.0.0.1:$DEAD, backup: true }
    health: { check: http, path: /, interval: 200ms, timeout: 150ms, fall: 1, rise: 1 }
  other:
    servers: [ { name: o1, address: 127.0.0.1:$D1 } ]
EOC
bg lb "$LB" -c "$T/lb.yaml"
LB_PID=$LAST_PID
wait_port "$L"
wait_port "$M"
wait_port "$D1"
wait_port "$D2"

N=40
for i in $(seq $N); do
    curl -sf -o /dev/null "http://127.0.0.1:$L/x$i" || fail "request $i through lb failed"
done
curl -sf -o /dev/null "http://127.0.0.1:$L/other/y" || fail "request to cluster other failed"
# Health probes run every 200 ms: wait until they have marked d1 ok and gone down (the
# checks below need both), instead of sleeping a while that a busy machine can outlast.
probed() {
    curl -sf --max-time 5 "http://127.0.0.1:$M/stats" | python3 -c 'import json, sys
s = {(c["name"], x["name"]): x for c in json.load(sys.stdin)["clusters"] for x in c["servers"]}
sys.exit(0 if s[("app", "d1")]["last_check"] == "ok" and s[("app", "gone")]["state"] == "down" else 1)'
}
wait_for 10 "health probes did not mark d1 ok and gone down" probed

curl -sf -D "$T/metrics.hdr" -o "$T/metrics.txt" "http://127.0.0.1:$M/metrics" \
    || fail "GET /metrics failed"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/metrics.hdr" \
    || fail "/metrics content type: $(grep -i content-type "$T/metrics.hdr")"

python3 - "$T/metrics.txt" "$N" <<'EOF_PY' || fail "/metrics is not valid or did not move"
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
n = int(sys.argv[2])
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVAL = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)"
sample_re = re.compile(rf"^({NAME})(?:\{{((?:{LNAME}={LVAL})(?:,{LNAME}={LVAL})*)?\}})? ({VALUE})$")
label_re = re.compile(rf"({LNAME})=({LVAL})")
help_re = re.compile(rf"^# HELP ({NAME}) (.+)$")
type_re = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")

def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v[1:-1])

def die(msg):
    print("metrics:", msg); sys.exit(1)

if not text.endswith("\n"):
    die("text does not end with a line feed")
types, closed, cur = {}, set(), None
samples = []  # (family, name, labels dict, value)
for no, line in enumerate(text[:-1].split("\n"), 1):
    if line.startswith("#"):
        m = type_re.match(line)
        if m:
            if m.group(1) in types:
                die(f"line {no}: second TYPE for {m.group(1)}")
            types[m.group(1)] = m.group(2)
        elif not help_re.match(line):
            die(f"line {no}: bad comment: {line!r}")
        continue
    m = sample_re.match(line)
    if not m:
        die(f"line {no}: not a sample line: {line!r}")
    name, lab, val = m.group(1), m.group(2) or "", float(m.group(3))
    labels = {k: unescape(v) for k, v in label_re.findall(lab)}
    if len(labels) != lab.count("=") - sum(v.count("=") for v in labels.values()):
        die(f"line {no}: duplicate label")
    fam = name
    if fam not in types:
        for sfx in ("_bucket", "_sum", "_count"):
            if name.endswith(sfx) and types.get(name[: -len(sfx)]) == "histogram":
                fam = name[: -len(sfx)]
    if fam not in types:
        die(f"line {no}: {name} has no TYPE line before it")
    if fam in closed:
        die(f"line {no}: samples of {fam} are not together")
    if cur is not None and cur != fam:
        closed.add(cur)
    cur = fam
    if types[fam] == "counter" and (val < 0 or not name.endswith("_total")):
        die(f"line {no}: counter {name} negative or not named _total")
    samples.append((fam, name, labels, val))

# Histograms: per series (labels without le), buckets ascending in le, cumulative, +Inf last
# and equal to _count.
hist = {}
for fam, name, labels, val in samples:
    if types[fam] != "histogram":
        continue
    key = (fam, tuple(sorted((k, v) for k, v in labels.items() if k != "le")))
    h = hist.setdefault(key, {"buckets": [], "count": None, "sum": None})
    if name.endswith("_bucket"):
        if h["count"] is not None:
            die(f"{fam} {key}: bucket after _count")
        h["buckets"].append((float(labels["le"]), val))
    elif name.endswith("_count"):
        h["count"] = val
    else:
        h["sum"] = val
for key, h in hist.items():
    b = h["buckets"]
    if not b or b[-1][0] != float("inf"):
        die(f"{key}: no +Inf bucket last")
    if any(b[i][0] >= b[i + 1][0] or b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
        die(f"{key}: buckets not ascending and cumulative: {b}")
    if h["count"] != b[-1][1] or h["sum"] is None:
        die(f"{key}: +Inf {b[-1][1]} != _count {h['count']} (or no _sum)")

def total(fam, **want):
    return sum(v for f, nm, l, v in samples
               if nm == fam and all(l.get(k) == w for k, w in want.items()))

for fam in ("lb_build_info", "lb_workers", "lb_connections_active", "lb_requests_total",
            "lb_server_received_bytes_total", "lb_server_sent_bytes_total", "lb_server_active",
            "lb_server_connect_errors_total", "lb_server_retries_total", "lb_server_up",
            "lb_server_state", "lb_server_weight", "lb_request_duration_seconds",
            "lb_listener_connections_total", "lb_listener_responses_total"):
    if fam not in types:
        die(f"family {fam} missing")
checks = [
    ("lb_workers", total("lb_workers") == 2),
    ("picks", total("lb_server_picks_total", cluster="app") >= n),
    ("bytes from servers", total("lb_server_received_bytes_total", cluster="app") > 0),
    ("bytes to servers", total("lb_server_sent_bytes_total", cluster="app") > 0),
    ("listener connections", total("lb_listener_connections_total", listener="web") >= n + 1),
    ("d1 health check passed", total("lb_server_check_success", server="d1") == 1),
    ("gone is down", total("lb_server_state", server="gone", state="down") == 1),
    ("gone is not up", total("lb_server_up", server="gone") == 0),
    ("d1 weight", total("lb_server_config_weight", server="d1") == 2),
    # These move once lb/http/proxy.c calls cl_server_count_status, metrics_listener_count_status and
    # cl_cluster_observe_latency for every response it finishes.
    ("2xx requests (cl_server_count_status wired in lb/http/proxy.c)",
     total("lb_requests_total", listener="web", cluster="app", code="2xx") >= n),
    ("2xx to cluster other", total("lb_requests_total", cluster="other", code="2xx") == 1),
    ("listener 2xx responses (metrics_listener_count_status wired in lb/http/proxy.c)",
     total("lb_listener_responses_total", listener="web", code="2xx") >= n + 1),
    ("latency histogram count (cl_cluster_observe_latency wired in lb/http/proxy.c)",
     total("lb_request_duration_seconds_count", cluster="app") >= n),
]
bad = [what for what, ok in checks if not ok]
if bad:
    die("counters did not move as expected: " + "; ".join(bad))
print(f"metrics: {len(samples)} samples in {len(types)} families parse; counters moved")
EOF_PY

curl -sf -o "$T/stats.json" "http://127.0.0.1:$M/stats" || fail "GET /stats failed"
python3 - "$T/stats.json" <<'EOF_PY' || fail "/stats is not the JSON expected"
import json, sys
d = json.load(open(sys.argv[1]))
servers = {(c["name"], s["name"]): s for c in d["clusters"] for s in c["servers"]}
want = {("app", "d1"), ("app", "d2"), ("app", "gone"), ("other", "o1")}
assert set(servers) == want, servers.keys()
assert servers[("app", "gone")]["state"] == "down", servers[("app", "gone")]
assert servers[("app", "d1")]["last_check"] == "ok"
assert sum(s["picks"] for s in servers.values()) >= 41
assert [l["name"] for l in d["listeners"]] == ["web"]
assert len(d["workers"]) == 2 and "snapshots" in d and "latency" in d
print("stats: JSON with", len(servers), "servers")
EOF_PY

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "http://127.0.0.1:$M/nope")" = 404 ] || fail "unknown path is not 404"
[ "$(code -X POST -d x=1 "http://127.0.0.1:$M/metrics")" = 405 ] || fail "POST is not 405"
[ "$(code -I "http://127.0.0.1:$M/metrics")" = 200 ] || fail "HEAD /metrics is not 200"
[ "$(code "http://127.0.0.1:$M/")" = 200 ] || fail "GET / is not 200"

# A client that sends half a request line and stalls holds one slot, not the thread.
python3 - "$M" "$T/lb.sock" <<'EOF_PY' || fail "a stalled client blocked the endpoint"
import socket, sys, time, urllib.request
port, admin = int(sys.argv[1]), sys.argv[2]
stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
for s in stalled:
    s.sendall(b"GET /metr")
t = time.monotonic()
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read()
assert b"lb_workers 2" in body
a = socket.socket(socket.AF_UNIX)
a.settimeout(3)
a.connect(admin)
a.sendall(b"status\n")
assert b'"ok":true' in a.recv(65536)
assert time.monotonic() - t < 2
print("stalled clients: others still answered")
EOF_PY

# The status page in a real browser. Everything above passed; from here a missing or broken
# chromium is a skip, a page that does not show the servers is a failure.
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || skip "chromium not installed (apt-get install chromium): status page not checked"
mkdir -p "$T/home"
chrome() {
    HOME="$T/home" timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu \
        --no-first-run --user-data-dir="$T/home/profile" --window-size=1200,800 \
        --virtual-time-budget=5000 "$@" 2>>"$T/chromium.log"
}
if ! chrome --dump-dom about:blank >/dev/null; then
    skip "chromium cannot run here: $(grep -v '^\s*$' "$T/chromium.log" | tail -n 1)"
fi
chrome --screenshot="$T/page.png" "http://127.0.0.1:$M/" >/dev/null || fail "chromium screenshot failed"
[ -f "$T/page.png" ] || fail "no screenshot written"
size=$(wc -c <"$T/page.png")
[ "$(head -c 8 "$T/page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
    || fail "screenshot is not a PNG"
[ "$size" -gt 10000 ] || fail "screenshot is only $size bytes: blank page?"
chrome --dump-dom "http://127.0.0.1:$M/" >"$T/dom.html" || fail "chromium --dump-dom failed"
for s in d1 d2 gone o1; do
    grep -q "data-server=\"$s\"" "$T/dom.html" || fail "server $s not in the rendered page"
done
grep -q 'class="st down">down<' "$T/dom.html" || fail "the down server is not shown as down"
grep -Eq 'data-fetches="[1-9]' "$T/dom.html" || fail "the page never refreshed from /stats"
echo "status page: screenshot $size bytes, every server rendered, refreshed from /stats"

stop "$LB_PID"
[ "$STOP_RC" = 0 ] || fail "lb exited $STOP_RC on SIGTERM"
echo "PASS: metrics"
