# Hot reload (SIGHUP and lbctl reload) with the real build/lb under continuous load:
#  - ten reloads, alternating SIGHUP and `lbctl reload`, while keep-alive clients and
#    new-connection-per-request clients run: zero failed requests, zero refused connections;
#  - the reloads change things: a weight, a new listener (then served), a removed listener
#    (then no longer accepting), a new server in the cluster (then reached);
#  - a drain made with lbctl before the reloads still holds after them (no request reaches
#    the drained server), and lbctl status still says draining;
#  - an L4 connection opened before the reloads keeps working until it closes;
#  - a config with an error: lbctl reload exits 1 and prints FILE:LINE:COLUMN, SIGHUP logs
#    it, and the running configuration keeps serving;
#  - SIGTERM afterwards: exit 0.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
[ -x "$DEMO" ] || skip "build/demo-backend not built"
PEER="python3 $ROOT/tests/e2e/peer.py"

A=$(free_port); B=$(free_port); C=$(free_port); D=$(free_port); E=$(free_port)
L1=$(free_port); L2=$(free_port); L3=$(free_port)
bg a "$DEMO" -l "127.0.0.1:$A" -n a -c "$T/a.count"
bg b "$DEMO" -l "127.0.0.1:$B" -n b -c "$T/b.count"
bg c "$DEMO" -l "127.0.0.1:$C" -n c -c "$T/c.count"
bg d "$DEMO" -l "127.0.0.1:$D" -n d -c "$T/d.count"
bg echo $PEER echo "$E"
for p in $A $B $C $D $E; do wait_port "$p"; done

# gen N: the config of reload N (0 = the first start).
gen() {
    n=$1
    extra_listener=""
    if [ "$n" -ge 3 ] && [ "$n" -lt 7 ]; then
        extra_listener="  - { name: extra, bind: 127.0.0.1:$L3, protocol: http, routes: [ { cluster: app } ] }"
    fi
    new_server=""
    [ "$n" -ge 5 ] && new_server="      - { name: d, address: 127.0.0.1:$D }"
    cat <<EOC
global:
  workers: 2
  max_connections: 2000
  shutdown_timeout: 20s
  admin: { socket: $T/lb.sock }
  log: { level: info }
listeners:
  - { name: web, bind: 127.0.0.1:$L1, protocol: http, routes: [ { cluster: app } ] }
  - { name: echo, bind: 127.0.0.1:$L2, protocol: tcp, cluster: echo }
$extra_listener
clusters:
  app:
    servers:
      - { name: a, address: 127.0.0.1:$A, weight: $((1 + n % 3)) }
      - { name: b, address: 127.0.0.1:$B }
      - { name: c, address: 127.0.0.1:$C }
$new_server
  echo:
    servers: [ { name: e1, address: 127.0.0.1:$E } ]
EOC
}
gen 0 >"$T/lb.yaml"
"$LB" -t -c "$T/lb.yaml" || fail "config rejected"
bg lb "$LB" -c "$T/lb.yaml"
LBPID=$LAST_PID
wait_port "$L1"; wait_port "$L2"
CTL="$LBCTL -s $T/lb.sock"

echo "== drain c before the reloads"
$CTL drain app c || fail "drain"

# Load: 3 keep-alive clients and 2 clients opening a connection per request, counting
# failures and refused connects; plus one L4 connection held open, echoing now and then.
python3 - "$L1" "$L2" "$T/load.json" "$T/stop" <<'EOF_PY' &
import http.client, json, os, socket, sys, threading, time
port, l4port, out, stopfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
st = {"ok": 0, "failed": 0, "refused": 0, "names": {}, "l4_ok": 0, "l4_failed": 0, "errors": []}
lock = threading.Lock()
def note(name=None, err=None, refused=False):
    with lock:
        if err is None:
            st["ok"] += 1
            st["names"][name] = st["names"].get(name, 0) + 1
        else:
            st["refused" if refused else "failed"] += 1
            if len(st["errors"]) < 10:
                st["errors"].append(err)
def keepalive():
    conn = None
    while not os.path.exists(stopfile):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            r = conn.getresponse()
            body = r.read().decode().strip()
            if r.status != 200:
                note(err=f"status {r.status}")
            else:
                note(body)
            if r.getheader("Connection", "").lower() == "close":
                conn.close(); conn = None
        except Exception as e:
            note(err=f"keepalive: {e!r}")
            conn = None
        time.sleep(0.002)
def fresh():
    while not os.path.exists(stopfile):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except ConnectionRefusedError as e:
            note(err=repr(e), refused=True); continue
        except OSError as e:
            note(err=f"connect: {e!r}"); continue
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(4096)
                if not d: break
                data += d
            if data.startswith(b"HTTP/1.1 200"):
                note(data.split(b"\r\n\r\n", 1)[1].decode().strip())
            else:
                note(err=f"fresh: {data[:40]!r}")
        except OSError as e:
            note(err=f"fresh: {e!r}")
        finally:
            s.close()
        time.sleep(0.002)
def l4():
    s = socket.create_connection(("127.0.0.1", l4port), timeout=10)
    i = 0
    while not os.path.exists(stopfile):
        msg = b"ping %d\n" % i
        try:
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(100)
                if not d: raise OSError("closed")
                got += d
            with lock:
                st["l4_ok" if got == msg else "l4_failed"] += 1
        except OSError as e:
            with lock:
                st["l4_failed"] += 1
                st["errors"].append(f"l4: {e!r}")
            return
        i += 1
        time.sleep(0.05)
ts = [threading.Thread(target=keepalive) for _ in range(3)] + \
     [threading.Thread(target=fresh) for _ in range(2)] + [threading.Thread(target=l4)]
for t in ts: t.start()
for t in ts: t.join(60)
json.dump(st, open(out, "w"))
EOF_PY
LOADPID=$!; PIDS="$PIDS $LOADPID"
sleep 1

echo "== ten reloads under load"
# Each reload is awaited in the log before the next: two SIGHUPs that reach lb before it
# takes the first one are one signal, and the checks of reloads 4 and 8 need the reload done.
reloads_logged() { [ "$(grep -c 'msg="reloaded: the previous generation drains"' "$T/lb.log")" -ge "$1" ]; }
# A removed listener stops accepting once its generation's workers have closed it.
refuses() { ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=2)" 2>/dev/null; }
for n in 1 2 3 4 5 6 7 8 9 10; do
    gen "$n" >"$T/lb.yaml.new" && mv "$T/lb.yaml.new" "$T/lb.yaml"
    if [ $((n % 2)) = 1 ]; then
        kill -HUP "$LBPID"; how=SIGHUP
    else
        $CTL reload >/dev/null || fail "lbctl reload $n failed"; how="lbctl reload"
    fi
    wait_for 20 "reload $n ($how) not logged" reloads_logged "$n"
    echo "reload $n ($how)"
    sleep 0.7 # the load runs a while on each generation
    if [ "$n" = 4 ]; then
        out=$(curl -s --max-time 5 "http://127.0.0.1:$L3/") || fail "the new listener does not serve"
        echo "new listener answered: $out"
    fi
    if [ "$n" = 8 ]; then
        wait_for 10 "the removed listener still accepts" refuses "$L3"
        echo "removed listener no longer accepts"
    fi
done
sleep 1
touch "$T/stop"
wait "$LOADPID" || true
cat "$T/load.json"; echo
python3 - "$T/load.json" <<'EOF_PY' || fail "requests failed or were refused across the reloads"
import json, sys
st = json.load(open(sys.argv[1]))
ok = st["failed"] == 0 and st["refused"] == 0 and st["ok"] > 500 and st["l4_failed"] == 0 \
     and st["l4_ok"] > 50 and st["names"].get("c", 0) == 0 and st["names"].get("d", 0) > 0
sys.exit(0 if ok else 1)
EOF_PY
grep -c 'msg="lb started"' "$T/lb.log" | grep -qx 11 || fail "want 11 generations started"
$CTL status | grep -E '^app +c +' | grep -q draining || { $CTL status; fail "the drain did not survive the reloads"; }

echo "== a config with an error keeps the running one"
cp "$T/lb.yaml" "$T/good.yaml"
sed 's/balance_typo_here//; s/  app:/  app:\n    balance: round_robbin/' "$T/good.yaml" >"$T/lb.yaml"
$CTL reload >"$T/reload.out" 2>&1 && fail "a broken config was accepted"
cat "$T/reload.out"
grep -qE "lb.yaml:[0-9]+:[0-9]+: " "$T/reload.out" || fail "no FILE:LINE:COLUMN error shown"
failed_reloads() { grep -c 'msg="reload failed: the configuration has errors' "$T/lb.log" || true; }
more_failed() { [ "$(failed_reloads)" -gt "$1" ]; }
before=$(failed_reloads)
kill -HUP "$LBPID"
wait_for 10 "SIGHUP error not logged" more_failed "$before"
[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$L1/")" = 200 ] ||
    fail "the running configuration stopped serving"

echo "== SIGTERM"
stop "$LBPID"; rc=$STOP_RC
[ "$rc" = 0 ] || fail "lb exited $rc on SIGTERM"
echo "ok"
