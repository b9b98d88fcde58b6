#!/bin/sh
# The monitoring kit (packaging/prometheus/lb-alerts.yml, packaging/grafana/lb-dashboard.json)
# names only metrics lb emits: a real lb with every feature those metrics come from (an http
# listener with a health-checked cluster, a TLS listener, a protocol: redis listener in front of
# a real redis-server) takes some traffic, and every lb_* name in a rule expression or a panel
# query must be a sample name in its /metrics. Also: the rules file is well-formed (every rule
# has alert, expr and a severity) and the dashboard is JSON whose panels all have queries;
# promtool, when installed (Debian's prometheus package), parses the rules and every
# dashboard query.
. "$(dirname "$0")/lib.sh"
need python3 curl openssl redis-server
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"
RULES="$ROOT/packaging/prometheus/lb-alerts.yml"
DASH="$ROOT/packaging/grafana/lb-dashboard.json"

D1=$(free_port)
R1=$(free_port)
L=$(free_port)
LT=$(free_port)
LR=$(free_port)
M=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=kit.test \
    -addext subjectAltName=DNS:kit.test -keyout "$T/kit.key" -out "$T/kit.pem" >"$T/openssl.log" 2>&1 ||
    fail "openssl: $(tail -n 3 "$T/openssl.log")"
bg d1 "$DEMO" -l "127.0.0.1:$D1" -n d1
bg redis redis-server --port "$R1" --bind 127.0.0.1 --save '' --appendonly no
cat >"$T/lb.yaml" <<EOC
global:
  workers: 2
  admin: { socket: $T/lb.sock }
  metrics: { listen: 127.0.0.1:$M }
  redis: { nodes: [127.0.0.1:$R1] }         # lb_redis_up, lb_enqueue_total
listeners:
  - name: web
    bind: 127.0.0.1:$L
    protocol: http
    limits: { per_ip_connections: 1000 }    # lb_listener_limited_total exists with limits only
    routes:
      - { match: { path_prefix: /q/, methods: [POST] }, enqueue: { redis_list: kitq } }
      - cluster: app
  - name: https
    bind: 127.0.0.1:$LT
    protocol: http
    tls: { certificates: [ { cert: $T/kit.pem, key: $T/kit.key } ] }
    routes:
      - cluster: app
  - { name: cache, bind: 127.0.0.1:$LR, protocol: redis, cluster: shards }
clusters:
  app:
    servers:
      - { name: d1, address: 127.0.0.1:$D1 }
    health: { check: http, path: /, interval: 200ms, timeout: 150ms }
  shards:
    balance: maglev
    servers:
      - { name: r1, address: 127.0.0.1:$R1 }
EOC
"$LB" -t -c "$T/lb.yaml" >"$T/check.out" 2>&1 || fail "lb -t: $(cat "$T/check.out")"
wait_port "$D1"
wait_port "$R1"
bg lb "$LB" -c "$T/lb.yaml"
LB_PID=$LAST_PID
wait_port "$L"
wait_port "$M"

# Some traffic on each kind, so that counters and histograms have samples.
for i in 1 2 3; do
    curl -s -o /dev/null "http://127.0.0.1:$L/" || fail "http request failed"
    curl -sk -o /dev/null --resolve "kit.test:$LT:127.0.0.1" "https://kit.test:$LT/" ||
        fail "https request failed"
done
python3 - "$LR" <<'EOF_PY' || fail "redis request through lb failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nkit\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$3\r\nkit\r\n")
got = b""
while got.count(b"\r\n") < 3:
    got += s.recv(100)
assert got.startswith(b"+OK\r\n$1\r\n1\r\n"), got
EOF_PY
probed() { curl -s "http://127.0.0.1:$M/metrics" | grep -q '^lb_server_check_success{cluster="app",server="d1"} 1'; }
wait_for 10 "no health check result for d1" probed
curl -s "http://127.0.0.1:$M/metrics" >"$T/metrics.txt" || fail "no /metrics"

python3 - "$RULES" "$DASH" "$T/metrics.txt" <<'EOF_PY' || fail "monitoring kit check failed"
import json, re, sys
import yaml
rules_file, dash_file, metrics_file = sys.argv[1:4]
have = set()
for line in open(metrics_file):
    if line.startswith("lb_"):
        have.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
NAME = re.compile(r"\blb_[a-z0-9_]+\b")

doc = yaml.safe_load(open(rules_file))
rule_names = set()
nrules = 0
for g in doc["groups"]:
    for r in g["rules"]:
        assert r.get("alert") and r.get("expr"), "a rule without alert or expr: %r" % r
        assert r.get("labels", {}).get("severity") in ("warning", "critical"), r["alert"]
        found = set(NAME.findall(r["expr"]))
        assert found, "rule %s names no lb metric" % r["alert"]
        rule_names |= found
        nrules += 1

dash = json.load(open(dash_file))
dash_names = set()
npanels = 0
def walk(v):
    global npanels
    if isinstance(v, dict):
        if v.get("type") not in (None, "row") and "gridPos" in v:
            assert v.get("targets"), "panel %r has no query" % v.get("title")
            npanels += 1
        for k, x in v.items():
            if k in ("expr", "query", "definition") and isinstance(x, str):
                dash_names.update(NAME.findall(x))
            else:
                walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(dash)

# A parser that found nothing would pass vacuously.
assert nrules >= 8 and len(rule_names) >= 8, (nrules, rule_names)
assert npanels >= 15 and len(dash_names) >= 25, (npanels, dash_names)
missing = sorted((rule_names | dash_names) - have)
assert not missing, "named in the kit but not in lb's /metrics: %s" % missing
print("%d rules naming %d metrics, %d panels naming %d metrics, all in /metrics"
      % (nrules, len(rule_names), npanels, len(dash_names)))
EOF_PY
if command -v promtool >/dev/null 2>&1; then
    promtool check rules "$RULES" || fail "promtool check rules"
    # The dashboard's queries, with Grafana's variables filled in, as recording rules: promtool
    # parses each one.
    python3 - "$DASH" >"$T/dash-rules.yml" <<'EOF_PY' || fail "cannot extract the dashboard queries"
import json, sys
exprs = []
def walk(v):
    if isinstance(v, dict):
        if isinstance(v.get("expr"), str):
            exprs.append(v["expr"])
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(json.load(open(sys.argv[1])))
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    e = e.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$cluster", ".*")
    print("      - record: dashboard:q%d\n        expr: %s" % (i, json.dumps(e)))
EOF_PY
    promtool check rules "$T/dash-rules.yml" >"$T/promtool.log" 2>&1 ||
        fail "a dashboard query does not parse: $(cat "$T/promtool.log")"
    echo "promtool: the rules and the dashboard's $(grep -c record: "$T/dash-rules.yml") queries parse"
else
    echo "note: promtool not installed, rule syntax checked by YAML structure only"
fi
stop "$LB_PID"
[ "$STOP_RC" = 0 ] || fail "lb exited $STOP_RC"
echo PASS
