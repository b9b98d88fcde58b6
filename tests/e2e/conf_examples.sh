# Every YAML file we ship (conf/lb.yaml, conf/examples/*.yaml) passes `lb -t -c FILE`, checked
# where it lives so that its relative paths (snapshot dirs, TLS files) resolve as a user's would.
# Then broken files: `lb -t` exits 1 and prints FILE:LINE:COLUMN: message for every problem in
# one run; a missing file and bad options are refused too, and -h prints usage.
. "$(dirname "$0")/lib.sh"
[ -x "$LB" ] || fail "$LB is not built"

n=0
for f in "$ROOT"/conf/lb.yaml "$ROOT"/conf/examples/*.yaml; do
    [ -f "$f" ] || fail "no such file: $f"
    out=$("$LB" -t -c "$f" 2>&1) || fail "lb -t rejects the shipped $f:
$out"
    [ "$out" = "$f: configuration ok" ] || fail "unexpected output for $f: $out"
    n=$((n + 1))
done
[ "$n" -ge 8 ] || fail "expected conf/lb.yaml and 7 examples, found $n files"
echo "ok: $n shipped files pass lb -t"

# An example copied elsewhere without its snapshot dir fails at the dir's line and column.
cp "$ROOT/conf/examples/static_snapshots.yaml" "$T/moved.yaml"
line=$(grep -n 'dir: snapshots/catalog' "$T/moved.yaml" | cut -d: -f1)
rc=0; "$LB" -t -c "$T/moved.yaml" >"$T/moved.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "moved example: exit $rc, expected 1"
grep -q "^$T/moved.yaml:$line:10: static.catalog.dir: directory 'snapshots/catalog'" \
    "$T/moved.out" || fail "moved example: $(cat "$T/moved.out")"

# Three mistakes, all reported in one run, in file order, each at its line and column.
cat >"$T/bad.yaml" <<'EOC'
listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocl: http
    routes:
      - cluster: ap
clusters:
  app:
    servers:
      - { name: a1, address: 127.0.0.1:9001, weight: 300 }
EOC
rc=0; "$LB" -t -c "$T/bad.yaml" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
[ $rc -eq 1 ] || fail "broken file: exit $rc, expected 1"
[ ! -s "$T/bad.out" ] || fail "errors belong on stderr, stdout has: $(cat "$T/bad.out")"
cat >"$T/want.err" <<EOC
$T/bad.yaml:4:5: listeners[0]: unknown key 'protocl'; did you mean 'protocol'?
$T/bad.yaml:6:18: listeners[0].routes[0].cluster: undefined cluster 'ap'; did you mean 'app'?
$T/bad.yaml:10:54: clusters.app.servers[0].weight: 300 is out of range: expected an integer 1..256
EOC
diff -u "$T/want.err" "$T/bad.err" || fail "broken file: unexpected errors"

# A YAML syntax error carries libyaml's position.
printf 'listeners:\n  - name: web\n    bind: [127.0.0.1:8080\n' >"$T/syntax.yaml"
rc=0; "$LB" -t -c "$T/syntax.yaml" >"$T/syntax.err" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "syntax error: exit $rc, expected 1"
grep -qE "^$T/syntax.yaml:[0-9]+:[0-9]+: YAML syntax error" "$T/syntax.err" ||
    fail "syntax error: $(cat "$T/syntax.err")"

# Not UTF-8: the bad byte's line and column.
printf 'listeners:\n  - name: w\377b\n' >"$T/latin1.yaml"
rc=0; "$LB" -t -c "$T/latin1.yaml" >"$T/latin1.err" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "non-UTF-8: exit $rc, expected 1"
grep -q "^$T/latin1.yaml:2:12: invalid UTF-8 (byte 0xff)" "$T/latin1.err" ||
    fail "non-UTF-8: $(cat "$T/latin1.err")"

# A missing file: exit 1, "FILE: message" without a position.
rc=0; "$LB" -t -c "$T/none.yaml" >"$T/none.err" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "missing file: exit $rc, expected 1"
grep -q "^$T/none.yaml: cannot read: No such file or directory" "$T/none.err" ||
    fail "missing file: $(cat "$T/none.err")"

# Usage: -h prints it and exits 0; a bad invocation exits 2.
"$LB" -h | grep -q '^usage: lb ' || fail "lb -h prints no usage"
"$LBCTL" -h | grep -q '^usage: lbctl ' || fail "lbctl -h prints no usage"
rc=0; "$LB" -t >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "lb -t without -c: exit $rc, expected 2"
echo "ok: broken files exit 1 with FILE:LINE:COLUMN errors"

# global.redis with no Redis there: lb starts all the same and says at once that drains apply
# to this instance only until Redis is back, so nobody believes they reach the fleet.
P=$(free_port)
cat >"$T/fleet.yaml" <<EOC
global: { admin: { socket: $T/fleet.sock }, redis: { nodes: [127.0.0.1:1] } }
listeners: [ { name: t, bind: 127.0.0.1:$P, protocol: tcp, cluster: c } ]
clusters: { c: { servers: [ { name: a, address: 127.0.0.1:1 } ] } }
EOC
bg fleet "$LB" -c "$T/fleet.yaml"
FLEETPID=$LAST_PID
wait_port "$P"
grep -q 'fleet: Redis unreachable: serving with the last state; changes apply here' \
    "$T/fleet.log" || fail "global.redis: no warning: $(cat "$T/fleet.log")"
stop "$FLEETPID"
[ "$STOP_RC" = 0 ] || fail "lb with global.redis: exit $STOP_RC"
echo "ok: global.redis without a Redis starts, with a warning"
