#!/bin/sh
# The status page in a real browser (headless Chromium from Debian), while a load runs:
#  - it loads with no console error and no script error;
#  - the charts have data: the cluster's requests/s line has points, mostly above zero while
#    the load runs, and they change; the errors/s line has points (the load asks for some
#    5xx: the table counts them), the p99 line has values; and what the page shows moves
#    between two page loads (the response counts grow);
#  - every server is listed, coloured by its state (a dead one is "down");
#  - read-only: no drain button on the plain metrics address, where POST is 405;
#  - the admin address (global.admin.http): the page has drain buttons; POST /admin/drain
#    without the token or with a wrong one is 401 and changes nothing, with the token it
#    drains the server (seen in /stats, and the page then offers undrain); undrain works too.
# SCREENSHOT=FILE also writes a screenshot there (how docs/status-page.png is made).
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || skip "chromium not installed (tools/deps.sh installs it): status page not checked"

D1=$(free_port)
D2=$(free_port)
DEAD=$(free_port)
L=$(free_port)
M=$(free_port)
A=$(free_port)
TOKEN=0123456789abcdef0123456789abcdef
echo "$TOKEN" >"$T/token"
bg d1 "$DEMO" -l "127.0.0.1:$D1" -n d1
bg d2 "$DEMO" -l "127.0.0.1:$D2" -n d2
cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock, http: { listen: 127.0.0.1:$A, token_file: $T/token } }
  metrics: { listen: 127.0.0.1:$M }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    routes:
      - cluster: app
clusters:
  app:
    servers:
      - { name: d1, address: 127.0.0.1:$D1, weight: 2 }
      - { name: d2, address: 127.0.0.1:$D2 }
      - { name: dead, address: 127.0.0.1:$DEAD }
    health: { check: http, path: /, interval: 200ms, timeout: 150ms, fall: 1, rise: 1 }
EOC
wait_port "$D1"
wait_port "$D2"
bg lb "$LB" -c "$T/lb.yaml"
LB_PID=$LAST_PID
wait_port "$L"
wait_port "$M"
down() { curl -s "http://127.0.0.1:$M/stats" | grep -q '"name":"dead","address":"[^"]*","state":"down"'; }
wait_for 20 "the dead server is not marked down" down

mkdir -p "$T/home"
chrome() {
    HOME="$T/home" timeout 90 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$T/home/profile" --window-size=1280,1100 --enable-logging=stderr --v=0 \
        "$@"
}
if ! chrome --dump-dom about:blank >/dev/null 2>"$T/chromium.log"; then
    skip "chromium cannot run here: $(grep -v '^\s*$' "$T/chromium.log" | tail -n 1)"
fi

# The load: a request loop on 4 connections, one request in 20 answered 500, some slower.
cat >"$T/load.py" <<'EOF_PY'
import http.client, os, sys, threading
port, stop = int(sys.argv[1]), sys.argv[2]
def run(t):
    c, i = None, 0
    while not os.path.exists(stop) and i < 1000000:
        path = "/status/500" if i % 20 == 0 else "/delay/%d" % (i % 7) if i % 3 == 0 else "/"
        try:
            c = c or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path)
            c.getresponse().read()
        except Exception:
            c = None
        i += 1
ts = [threading.Thread(target=run, args=(t,)) for t in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
EOF_PY
bg load python3 "$T/load.py" "$L" "$T/stop"
answered() { [ "$(metric_sum "$M" lb_requests_total)" -ge 200 ]; }
wait_for 30 "the load did not get going" answered

# Virtual time runs the page's 2 s refreshes quickly; each fetch waits for lb for real.
page() {
    chrome --virtual-time-budget=12000 --dump-dom "http://127.0.0.1:$M/" >"$T/$1.html" \
        2>"$T/$1.err" || fail "chromium --dump-dom failed: $(tail -n 3 "$T/$1.err")"
}
page dom1
page dom2
[ -n "${SCREENSHOT:-}" ] && chrome --virtual-time-budget=40000 --screenshot="$SCREENSHOT" \
    "http://127.0.0.1:$M/" >/dev/null 2>"$T/shot.err"
touch "$T/stop"

python3 - "$T/dom1.html" "$T/dom2.html" "$T/dom1.err" "$T/dom2.err" <<'EOF_PY' || fail "status page check failed"
import re, sys
doms = [open(f, encoding="utf-8").read() for f in sys.argv[1:3]]
for f in sys.argv[3:5]:
    bad = [l for l in open(f, errors="replace") if "CONSOLE" in l or "Uncaught" in l]
    assert not bad, "console messages: %r" % bad[:3]
def canvas(dom, metric):
    m = re.search(r'<canvas id="cv-0-%s"[^>]*>' % metric, dom)
    assert m, "no %s chart" % metric
    tag = m.group(0)
    pts = int(re.search(r'data-points="(\d+)"', tag).group(1))
    vals = re.search(r'data-values="([^"]*)"', tag).group(1).split()
    return pts, vals
def responses(dom, server):
    row = re.search(r'<tr class="server" data-server="%s">(.*?)</tr>' % server, dom).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    return int(cells[6])
def fivexx(dom, server):
    row = re.search(r'<tr class="server" data-server="%s">(.*?)</tr>' % server, dom).group(1)
    return int(re.findall(r"<td[^>]*>(.*?)</td>", row)[7])
assert fivexx(doms[1], "d1") + fivexx(doms[1], "d2") > 0, "the 5xx the load asked for are not shown"
for i, dom in enumerate(doms):
    err = re.search(r'<body[^>]*data-js-error="[^"]*"', dom)
    assert not err, "script error: %s" % err.group(0)
    assert re.search(r'data-fetches="[1-9]', dom), "the page never refreshed from /stats"
    # Virtual time makes the 2 s refreshes come fast; each still waits for lb for real, and the
    # load goes on in between, but an interval may be short: most points above zero, and the
    # values move, rather than every point.
    pts, vals = canvas(dom, "req")
    assert pts >= 3, "requests/s chart has %d points" % pts
    up = [v for v in vals if v != "-" and float(v) > 0]
    assert 2 * len(up) >= len(vals), "requests/s mostly zero under load: %r" % vals
    assert len(set(vals)) >= 2, "requests/s does not move: %r" % vals
    pts, vals = canvas(dom, "err")
    assert pts >= 3 and all(v == "-" or float(v) >= 0 for v in vals), "errors/s: %r" % vals
    pts, vals = canvas(dom, "p99")
    assert any(v != "-" and float(v) > 0 for v in vals), "no p99 value: %r" % vals
    for s in ("d1", "d2", "dead"):
        assert 'data-server="%s"' % s in dom, "server %s not listed" % s
    assert re.search(r'data-server="dead">.*?class="st down">down<', dom), "dead not shown down"
    assert re.search(r'data-server="d1">.*?class="st up">up<', dom), "d1 not shown up"
    assert not re.search(r"<button data-act=\"(un)?drain\"", dom), "drain buttons on the read-only page"
    print("page %d: requests/s %s, p99 %s" % (i + 1, " ".join(canvas(dom, "req")[1]),
          " ".join(canvas(dom, "p99")[1])))
a, b = responses(doms[0], "d1"), responses(doms[1], "d1")
assert b > a, "d1's responses did not move between two loads: %d, %d" % (a, b)
EOF_PY
echo "ok: charts with moving data, servers coloured by state, no console error"

# ---- the admin address ----
wait_port "$A"
post() { # PATH [curl args]: prints the status
    p=$1; shift
    curl -s -o "$T/post.out" -w '%{http_code}' -X POST "$@" "http://127.0.0.1:$A$p"
}
state() { curl -s "http://127.0.0.1:$M/stats" | grep -o "\"name\":\"$1\",\"address\":\"[^\"]*\",\"state\":\"[a-z]*\"" | sed 's/.*"state":"//; s/"//'; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$M/admin/drain?cluster=app&server=d2")" = 405 ] ||
    fail "POST on the read-only metrics address was not 405"
[ "$(post '/admin/drain?cluster=app&server=d2')" = 401 ] || fail "a drain without a token was not 401"
[ "$(post '/admin/drain?cluster=app&server=d2' -H 'Authorization: Bearer wrong-token-wrong-token')" = 401 ] ||
    fail "a drain with a wrong token was not 401"
[ "$(post '/admin/drain?cluster=app&server=d2' -H "Authorization: Bearer ${TOKEN}x")" = 401 ] ||
    fail "a drain with the token plus one character was not 401"
[ "$(state d2)" = up ] || fail "a refused drain changed d2's state to $(state d2)"
[ "$(post '/admin/drain?cluster=app&server=nope' -H "Authorization: Bearer $TOKEN")" = 404 ] ||
    fail "a drain of an unknown server was not 404"
[ "$(post '/admin/drain?cluster=app' -H "Authorization: Bearer $TOKEN")" = 400 ] ||
    fail "a drain without a server was not 400"
[ "$(post '/admin/drain?cluster=app&server=d2' -H "Authorization: Bearer $TOKEN")" = 200 ] ||
    fail "the drain with the token failed: $(cat "$T/post.out")"
[ "$(state d2)" = draining ] || fail "d2 is $(state d2) after the drain"
chrome --virtual-time-budget=3000 --dump-dom "http://127.0.0.1:$A/" >"$T/admin.html" 2>"$T/admin.err" ||
    fail "chromium --dump-dom of the admin page failed"
grep -q '<button data-act="undrain" data-cluster="app" data-name="d2">undrain</button>' "$T/admin.html" ||
    fail "the admin page offers no undrain for d2"
grep -q '<button data-act="drain" data-cluster="app" data-name="d1">drain</button>' "$T/admin.html" ||
    fail "the admin page offers no drain for d1"
[ "$(post '/admin/undrain?cluster=app&server=d2' -H "Authorization: Bearer $TOKEN")" = 200 ] ||
    fail "the undrain failed: $(cat "$T/post.out")"
[ "$(state d2)" = up ] || fail "d2 is $(state d2) after the undrain"
echo "ok: the admin address drains and undrains with the token only"
stop "$LB_PID"
[ "$STOP_RC" = 0 ] || fail "lb exited $STOP_RC"
echo PASS
