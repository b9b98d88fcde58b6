# Running out of connection slots and file descriptors, with the real build/lb:
#  - max_connections: a worker at its limit closes new connections at once, says so (at most
#    once a second), counts them in lb_listener_refused_total, and serves again as soon as
#    connections close;
#  - ulimit -n: when lb's fixed-file table is full, accepting pauses (clients wait in the
#    listen queue, nothing spins), lb says so with the limit and counts it in
#    lb_listener_accept_paused_total, and once connections close the waiting clients are
#    served. The kernel closes the connection whose accept found the table full (one per
#    pause of the multishot accept): a few of the 150 may see a reset, never more.
. "$(dirname "$0")/lib.sh"
need python3 curl
need_uring
L1=$(free_port); L2=$(free_port); MP1=$(free_port); MP2=$(free_port)
for n in 1 2; do
    eval "L=\$L$n MP=\$MP$n"
    cat >"$T/lb$n.yaml" <<EOC
global: { workers: 1, max_connections: 64, admin: { socket: $T/lb$n.sock }, metrics: { listen: 127.0.0.1:$MP } }
# lb answers every request itself (a redirect): every slot can hold a client.
listeners: [ { name: web, bind: 127.0.0.1:$L, routes: [ { redirect: { scheme: https } } ] } ]
EOC
done
# lb2 gets 1,000 slots but a file limit that holds far fewer sockets.
sed -i 's/max_connections: 64/max_connections: 1000/' "$T/lb2.yaml"
bg lb1 "$LB" -c "$T/lb1.yaml"
bg lb2 sh -c "ulimit -n 200 && exec \"$LB\" -c \"$T/lb2.yaml\""
wait_port "$L1"; wait_port "$L2"

# hold PORT N: opens N connections at once, then sends a request on each; prints how many
# were answered at once, then closes 40 answered ones and prints how many were answered
# within 10 s in all.
cat >"$T/hold.py" <<'EOF_PY'
import select, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
time.sleep(0.5)
for s in conns:
    try:
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
    except OSError:
        pass
def answered(pending, wait):
    got, end = [], time.time() + wait
    while pending and time.time() < end:
        r, _, _ = select.select(pending, [], [], 0.2)
        for s in r:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            pending.remove(s)
            if data.startswith(b"HTTP/1.1 308"):
                got.append(s)
    return got
first = answered(list(conns), 2)
print("first", len(first), flush=True)
for s in first[:40]:
    s.close()
rest = [s for s in conns if s not in first]
late = answered(rest, 10)
print("total", len(first) + len(late), flush=True)
EOF_PY

python3 "$T/hold.py" "$L1" 80 >"$T/hold1.out" 2>&1 || fail "hold 1: $(cat "$T/hold1.out")"
cat "$T/hold1.out"
first=$(sed -n 's/^first //p' "$T/hold1.out")
[ "$first" -le 64 ] && [ "$first" -ge 50 ] || fail "max_connections 64: $first answered at once"
curl -s "http://127.0.0.1:$MP1/metrics" | grep -q '^lb_listener_refused_total{listener="web"} [1-9]' ||
    fail "refused not counted: $(curl -s "http://127.0.0.1:$MP1/metrics" | grep refused)"
n=$(grep -c 'msg="connection refused: worker at max_connections"' "$T/lb1.log")
[ "$n" -ge 1 ] && [ "$n" -le 5 ] || fail "$n refusal lines for ~16 refusals (one a second at most)"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$L1/headers")" = 308 ] ||
    fail "lb1 does not serve after the refusals"
echo "ok: max_connections refuses at once, says so once, counts it, and serves again"

python3 "$T/hold.py" "$L2" 150 >"$T/hold2.out" 2>&1 || fail "hold 2: $(cat "$T/hold2.out")"
cat "$T/hold2.out"
first=$(sed -n 's/^first //p' "$T/hold2.out")
total=$(sed -n 's/^total //p' "$T/hold2.out")
[ "$first" -lt 150 ] || fail "the file limit never filled ($first of 150 at once)"
[ "$total" -ge 145 ] || fail "after connections closed, only $total of 150 were answered"
grep -q 'msg="accept paused: no free file slot, resumed when a connection closes".*files_per_worker=' \
    "$T/lb2.log" || fail "no accept paused line: $(grep -i paus "$T/lb2.log")"
curl -s "http://127.0.0.1:$MP2/metrics" | grep -q '^lb_listener_accept_paused_total{listener="web"} [1-9]' ||
    fail "pause not counted"
echo "ok: at the file limit accepting pauses ($first served at once), says so, and $total of 150 are served"
