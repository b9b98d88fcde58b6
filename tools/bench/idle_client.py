#!/usr/bin/env python3
"""Idle keep-alive client for tools/bench/idle_mem.sh.

Usage: idle_client.py PORT N STATUS

Opens N connections to 127.0.0.1:PORT, binding them round-robin to the source addresses
127.0.0.2 .. 127.0.0.9 (one source address has about 28,000 ephemeral ports; several runs of
10,000 plus TIME_WAIT would run out), sends one `GET /` on each, reads the whole response and
keeps the connection open. At most WINDOW connections are being set up at a time, so the
proxy's listen backlog never overflows and no SYN waits for a retransmit.

Halfway (N/2 set up) it writes "half HELD ERRORS" to STATUS (atomically) and waits for
SIGUSR1, so that the memory of N/2 and of N held connections can be compared. Once every
connection is held (or has failed), it writes "idle HELD ERRORS SECONDS" and waits for SIGUSR1, counting connections the proxy closes meanwhile as
errors. On SIGUSR1 it sends a second `GET /` on every held connection at once (10,000
concurrent active connections), times each response, writes
"active OK SETUP_ERRORS IDLE_ERRORS ACTIVE_ERRORS P50_US P99_US P999_US" to STATUS and exits,
closing everything.

Errors are connect failures, resets, timeouts, closes before a complete response, and
responses other than 200. The first few are described on stderr.
"""
import errno
import os
import resource
import selectors
import signal
import socket
import sys
import time

WINDOW = 256
TIMEOUT = 60.0
SOURCES = ["127.0.0.%d" % i for i in range(2, 10)]
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: lb-bench-idle\r\n\r\n"

port, n, status_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if n + 64 > hard:
    sys.exit("idle_client: %d connections need ulimit -n above %d; the hard limit is %d"
             % (n, n + 64, hard))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])

reported = 0


def note(why):
    global reported
    reported += 1
    if reported <= 5:
        print("idle_client: %s" % why, file=sys.stderr)


def write_status(line):
    tmp = status_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(line + "\n")
    os.rename(tmp, status_path)


class Conn:
    __slots__ = ("sock", "buf", "t0")

    def __init__(self, sock):
        self.sock, self.buf, self.t0 = sock, b"", time.monotonic()


def complete(buf):
    """None while more is needed; else the status code of a whole response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        code = int(head[0].split()[1])
    except (IndexError, ValueError):
        return -1
    body = buf[end + 4:]
    for h in head[1:]:
        k, _, v = h.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            return code if len(body) >= int(v) else None
        if k == "transfer-encoding" and "chunked" in v.lower():
            return code if body.endswith(b"0\r\n\r\n") else None
    return code


sel = selectors.DefaultSelector()
held = []
errors = 0
t_start = time.monotonic()

# Phase 1: set up N connections, at most WINDOW at a time.
next_i = 0
pending = 0
half = n // 2
while next_i < n or pending:
    if next_i == half and not pending and half:
        half = 0
        write_status("half %d %d" % (len(held), errors))
        signal.sigwait([signal.SIGUSR1])
    while next_i < n and pending < WINDOW and (next_i < half or not half):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((SOURCES[next_i % len(SOURCES)], 0))
            err = s.connect_ex(("127.0.0.1", port))
        except OSError as e:
            err = e.errno
        next_i += 1
        if err not in (0, errno.EINPROGRESS):
            errors += 1
            note("connect: %s" % os.strerror(err))
            s.close()
            continue
        sel.register(s, selectors.EVENT_WRITE, Conn(s))
        pending += 1
    for key, ev in sel.select(timeout=1.0):
        c = key.data
        done = fail = None
        if ev & selectors.EVENT_WRITE:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                fail = "connect: %s" % os.strerror(err)
            else:
                try:
                    c.sock.send(REQUEST)  # 70 bytes into an empty socket buffer
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                except OSError as e:
                    fail = "send: %s" % e
        elif ev & selectors.EVENT_READ:
            try:
                data = c.sock.recv(65536)
            except OSError as e:
                data, fail = None, "recv: %s" % e
            if data == b"":
                fail = "closed before a complete response"
            elif data:
                c.buf += data
                code = complete(c.buf)
                if code is not None:
                    if code == 200:
                        done = True
                    else:
                        fail = "status %d" % code
        if fail or done:
            sel.unregister(c.sock)
            pending -= 1
            if fail:
                errors += 1
                note(fail)
                c.sock.close()
            else:
                c.buf = b""
                held.append(c)
    now = time.monotonic()
    for key in list(sel.get_map().values()):
        if now - key.data.t0 > TIMEOUT:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            pending -= 1
            errors += 1
            note("no response within %.0fs" % TIMEOUT)

setup_errors = errors
write_status("idle %d %d %.1f" % (len(held), setup_errors, time.monotonic() - t_start))

# Idle: watch the held connections for closes by the proxy until SIGUSR1.
for c in held:
    sel.register(c.sock, selectors.EVENT_READ, c)
while not signal.sigpending():
    for key, _ in sel.select(timeout=0.2):
        c = key.data
        try:
            data = c.sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(c.sock)
            c.sock.close()
            held.remove(c)
            errors += 1
            note("closed by the proxy while idle")
signal.sigwait([signal.SIGUSR1])
idle_errors = errors - setup_errors
errors = 0

# Phase 2: one more request on every held connection at once.
lat = []
t0 = time.monotonic()
for c in held:
    c.t0 = t0
    try:
        c.sock.send(REQUEST)
    except OSError as e:
        sel.unregister(c.sock)
        errors += 1
        note("send: %s" % e)
live = len(sel.get_map())
while live and time.monotonic() - t0 < TIMEOUT:
    for key, _ in sel.select(timeout=1.0):
        c = key.data
        fail = None
        try:
            data = c.sock.recv(65536)
        except OSError as e:
            data, fail = b"", "recv: %s" % e
        if not data:
            fail = fail or "closed before a complete response"
        else:
            c.buf += data
            code = complete(c.buf)
            if code is None:
                continue
            if code != 200:
                fail = "status %d" % code
            else:
                lat.append(time.monotonic() - c.t0)
        sel.unregister(c.sock)
        live -= 1
        if fail:
            errors += 1
            note(fail)
if live:
    errors += live
    note("%d responses missing after %.0fs" % (live, TIMEOUT))


def pct(p):
    if not lat:
        return -1
    lat.sort()
    return lat[min(len(lat) - 1, int(len(lat) * p / 100.0))] * 1e6


write_status("active %d %d %d %d %.0f %.0f %.0f" % (len(lat), setup_errors, idle_errors, errors,
                                                   pct(50), pct(99), pct(99.9)))
