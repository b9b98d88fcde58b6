#!/usr/bin/env python3
"""Helpers for tests/e2e/health.sh: HTTP clients through an L4 listener of lb in front of
demo-backend servers, and log timing. Every command is bounded in time.

  load PORT OUT [THREADS]     until SIGTERM: each thread opens a connection, sends GET / with
                              Connection: close, reads the answer to EOF; appends one line per
                              connection to OUT: "EPOCH_SECONDS NAME" (the body of demo-backend's
                              /, its name) or "EPOCH_SECONDS ERR reason", stamped with the time
                              the connection STARTED: lb picks the server then, so a window
                              after a state change holds only connections picked after it, even
                              when a busy machine makes one last a while
  mute PORT                   listens on PORT and never accepts nor answers, until killed
  burst PORT N                N sequential requests; prints {"errors": E, NAME: COUNT...}
  waitlog LOG REGEX SINCE SECS  waits until a line of LOG matches REGEX with a ts= after SINCE
                              (epoch seconds); prints the delay in ms from SINCE to that ts;
                              exits 1 after SECS
  first OUT NAME SINCE [SECS] waits until OUT has a NAME line after SINCE; prints the delay in ms
  window OUT FROM TO          counts of OUT's lines with FROM <= t < TO as JSON ("ERR": errors)
  last OUT NAME               epoch of NAME's last line in OUT (0 when none)
  gap LOG A_RX B_RX SECS       waits until LOG has a B_RX line after its first A_RX line; prints the
                              ms between their ts= (exits 1 after SECS)
  between LOG FROM_RX TO_RX RX  counts LOG lines matching RX after the first FROM_RX line and
                              before the next TO_RX line (to the end when none)
"""
import datetime, json, re, signal, socket, sys, threading, time

REQ = b"GET / HTTP/1.1\r\nHost: health-e2e\r\nConnection: close\r\n\r\n"


def one_request(port):
    """Returns the server's name, or raises OSError/ValueError."""
    c = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    try:
        c.sendall(REQ)
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
    finally:
        c.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        raise ValueError("bad answer %r" % data[:40])
    return body.decode().strip()


def cmd_load(port, out, threads="2"):
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    f = open(out, "a", buffering=1)
    lock = threading.Lock()

    def run():
        while not stop.is_set():
            t0 = time.time()
            try:
                name = one_request(port)
            except (OSError, ValueError) as e:
                name = "ERR " + type(e).__name__ + ":" + str(e).replace(" ", "_")[:60]
            with lock:
                f.write("%.4f %s\n" % (t0, name))
            time.sleep(0.003)

    ts = [threading.Thread(target=run) for _ in range(int(threads))]
    for t in ts:
        t.start()
    while not stop.is_set():
        stop.wait(0.2)
    for t in ts:
        t.join(10)
    f.close()
    return 0


def cmd_mute(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(port)))
    s.listen(128)  # the kernel completes handshakes into the backlog; nobody reads
    while True:
        time.sleep(60)


def cmd_burst(port, n):
    counts = {"errors": 0}
    for _ in range(int(n)):
        try:
            name = one_request(port)
            counts[name] = counts.get(name, 0) + 1
        except (OSError, ValueError):
            counts["errors"] += 1
    print(json.dumps(counts, sort_keys=True))
    return 0


TS = re.compile(r"^ts=(\S+)Z ")


def line_epoch(line):
    m = TS.match(line)
    if not m:
        return None
    dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def cmd_waitlog(log, regex, since, secs):
    since, end, rx = float(since), time.time() + float(secs), re.compile(regex)
    while True:
        with open(log, errors="replace") as f:
            for line in f:
                if rx.search(line):
                    t = line_epoch(line)
                    # the log has ms resolution: a line in the same ms as SINCE counts
                    if t is not None and t >= since - 0.001:
                        print("%d" % max(0, round((t - since) * 1000)))
                        return 0
        if time.time() > end:
            print("timeout")
            return 1
        time.sleep(0.02)


def read_out(out):
    rows = []
    try:
        f = open(out)
    except FileNotFoundError:  # the load client has not started yet
        return rows
    with f:
        for line in f:
            parts = line.split(" ", 1)
            if len(parts) == 2 and line.endswith("\n"):  # not a line being written
                rows.append((float(parts[0]), parts[1].strip()))
    return rows


def cmd_first(out, name, since, secs="10"):
    since, end = float(since), time.time() + float(secs)
    while True:
        for t, n in read_out(out):
            if n == name and t >= since:
                print("%d" % round((t - since) * 1000))
                return 0
        if time.time() > end:
            print("timeout")
            return 1
        time.sleep(0.02)


def cmd_window(out, t0, t1):
    counts = {}
    for t, n in read_out(out):
        if float(t0) <= t < float(t1):
            k = "ERR" if n.startswith("ERR") else n
            counts[k] = counts.get(k, 0) + 1
    print(json.dumps(counts, sort_keys=True))
    return 0


def cmd_last(out, name):
    last = 0.0
    for t, n in read_out(out):
        if n == name:
            last = max(last, t)
    print("%.4f" % last)
    return 0


def cmd_gap(log, a_rx, b_rx, secs):
    end = time.time() + float(secs)
    while True:
        ta = None
        with open(log, errors="replace") as f:
            for line in f:
                if ta is None and re.search(a_rx, line):
                    ta = line_epoch(line)
                elif ta is not None and re.search(b_rx, line):
                    print("%d" % round((line_epoch(line) - ta) * 1000))
                    return 0
        if time.time() > end:
            print("timeout")
            return 1
        time.sleep(0.02)


def cmd_between(log, from_rx, to_rx, rx):
    state, n = 0, 0
    with open(log, errors="replace") as f:
        for line in f:
            if state == 0 and re.search(from_rx, line):
                state = 1
            elif state == 1 and re.search(to_rx, line):
                break
            elif state == 1 and re.search(rx, line):
                n += 1
    print(n if state else "none")
    return 0 if state else 1


def main():
    cmds = {"load": cmd_load, "mute": cmd_mute, "burst": cmd_burst, "waitlog": cmd_waitlog, "first": cmd_first,
            "window": cmd_window, "last": cmd_last, "between": cmd_between,
            "gap": cmd_gap}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        return 2
    return cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main() or 0)
