#!/usr/bin/env python3
"""Clients for tests/e2e/admin.sh (the admin socket and drain), beside peer.py's servers.
Every loop is bounded in time; every command prints one result line; non-zero exit = failure.

  load PORT OUT MARKER STOP     connects to PORT again and again (peer.py `name` servers answer
                                their name), appending "PHASE NAME" per connection to OUT, where
                                PHASE is "post" once the file MARKER exists before the connect
                                starts, else "pre"; a failed connection is "PHASE ERROR". Stops
                                when the file STOP exists.
  hold PORT RELEASE             connects to PORT (an echo server), checks one echo, prints
                                "held", keeps the connection open until the file RELEASE exists
  garbage SOCKET                throws junk at lb's admin socket: random bytes, 500 pipelined
                                commands, a half-close, a 10 KiB line, more clients than it
                                takes, a client that never ends its line;
                                then checks a fresh client still gets a status answer
"""
import json, os, socket, sys, time

LIMIT = 120  # seconds: no loop here runs longer


def cmd_load(port, out, marker, stop):
    end = time.monotonic() + LIMIT
    n = errors = 0
    with open(out, "a", buffering=1) as f:
        while not os.path.exists(stop) and time.monotonic() < end:
            phase = "post" if os.path.exists(marker) else "pre"
            try:
                c = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
                data = b""
                while True:
                    d = c.recv(100)
                    if not d:
                        break
                    data += d
                c.close()
                name = data.decode().strip() or "EMPTY"
            except OSError as e:
                name = "ERROR"
                errors += 1
                print(f"connection error: {e}", file=sys.stderr)
            f.write(f"{phase} {name}\n")
            n += 1
            time.sleep(0.002)  # steady load, without starving lb of the shared cores
    print(f"connections={n} errors={errors}")
    return 0


def cmd_hold(port, release):
    c = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    c.sendall(b"ping\n")
    got = b""
    while len(got) < 5:
        d = c.recv(100)
        if not d:
            break
        got += d
    if got != b"ping\n":
        print(f"bad echo {got!r}")
        return 1
    print("held", flush=True)
    end = time.monotonic() + LIMIT
    while not os.path.exists(release) and time.monotonic() < end:
        time.sleep(0.05)
    c.close()
    return 0


def admin(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    return s


def read_line(s):
    data = b""
    while not data.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        data += d
    return data


def cmd_garbage(path):
    problems = []
    # A client that starts a command and never finishes it: lb must drop it (timeout), not
    # wait for it. Checked last, so the rest runs meanwhile.
    slow = admin(path)
    slow.sendall(b"stat")

    # Random bytes in 80 lines: every line is answered, with an error.
    s = admin(path)
    raw = os.urandom(8000).replace(b"\n", b"")
    lines = [raw[i:i + 100] for i in range(0, 8000, 100) if raw[i:i + 100]]
    s.sendall(b"\n".join(lines) + b"\n")
    f = s.makefile("rb")
    for i in range(len(lines)):
        ans = f.readline()
        try:
            if json.loads(ans).get("ok") is not False:
                problems.append(f"random line {i} answered {ans[:100]!r}")
        except ValueError:
            problems.append(f"random line {i}: answer is not JSON: {ans[:100]!r}")
            break
    f.close()
    s.close()

    # Pipelined commands, far more answer bytes than lb queues per client: every one is
    # answered, in order (lb pauses reading while answers are unread, then resumes).
    s = admin(path)
    # The last one is an error answer (no such snapshot set) that must come last, in order.
    s.sendall(b"status\n" * 500 + b"snapshots reload nosuch\n")
    f = s.makefile("rb")
    answers = [f.readline() for _ in range(501)]
    if not all(b'"ok":true' in a for a in answers[:500]) or b"no snapshot set named nosuch" not in answers[500]:
        problems.append("pipelined commands not all answered in order")
    f.close()
    s.close()

    # A client that half-closes after its command still gets the answer.
    s = admin(path)
    s.sendall(b"status\n")
    s.shutdown(socket.SHUT_WR)
    if b'"ok":true' not in read_line(s):
        problems.append("no answer after a half-close")
    s.close()

    # A 10 KiB line: an error answer, then the connection is closed.
    s = admin(path)
    try:
        s.sendall(b"drain " + b"x" * 10240 + b"\n")
    except OSError:
        pass  # lb may close before reading it all
    ans = read_line(s)
    if b"too long" not in ans:
        problems.append(f"10 KiB line answered {ans[:100]!r}")
    s.close()

    # More clients than lb takes: each gets one answer line, a status or "too many".
    many, refused = [], 0
    for _ in range(40):
        many.append(admin(path))
    for c in many:
        try:
            c.sendall(b"status\n")
        except OSError:
            pass  # a refused client may be closed already
    for c in many:
        ans = read_line(c)
        if b"too many" in ans:
            refused += 1
        elif b'"ok":true' not in ans:
            problems.append(f"one of 40 clients got {ans[:100]!r}")
    for c in many:
        c.close()
    if refused == 0:
        problems.append("40 clients at once: none was refused")

    # lb still answers a well-behaved client.
    ok = False
    for _ in range(50):  # closed clients free their slots as lb notices the EOFs
        s = admin(path)
        s.sendall(b"status\n")
        ans = read_line(s)
        s.close()
        if b'"ok":true' in ans:
            ok = True
            break
        time.sleep(0.1)
    if not ok:
        problems.append("no status answer after the junk")

    # The slow client was dropped: lb closed it (EOF), with or without an answer.
    try:
        while slow.recv(4096):
            pass
    except socket.timeout:
        problems.append("a client that never finished its line was never dropped")
    slow.close()

    print(json.dumps({"refused_clients": refused, "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    cmds = {"load": cmd_load, "hold": cmd_hold, "garbage": cmd_garbage}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](*sys.argv[2:]))
