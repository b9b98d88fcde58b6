#!/usr/bin/env python3
"""Idle TLS keep-alive clients for tools/bench/tls.sh.

Usage: tls_idle.py PORT N STATUS

Opens connections to 127.0.0.1:PORT over TLS 1.3 (no certificate check), sends one `GET /`
on each and reads the whole answer, then holds them. After the first 50 it writes "warm" to
STATUS and waits for SIGUSR1; then opens N more and writes "held N ERRORS"; then waits for
SIGUSR1 again and exits, closing everything. Errors (a failed handshake, a close, an answer
other than 200) are counted, and the first few described on stderr.
"""
import os
import resource
import signal
import socket
import ssl
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: lb-bench-tls-idle\r\n\r\n"
port, n, status_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
held, errors = [], 0


def status(line):
    with open(status_path + ".tmp", "w") as f:
        f.write(line + "\n")
    os.rename(status_path + ".tmp", status_path)


def one():
    global errors
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
        s.sendall(REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed before the answer")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError("answer: %r" % head[:40])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed in the body")
            body += chunk
        held.append(s)
    except (OSError, ssl.SSLError) as e:
        errors += 1
        if errors <= 5:
            print("tls_idle: %s" % e, file=sys.stderr)


for _ in range(50):
    one()
status("warm")
signal.sigwait([signal.SIGUSR1])
for _ in range(n):
    one()
status("held %d %d" % (len(held) - 50, errors))
signal.sigwait([signal.SIGUSR1])
