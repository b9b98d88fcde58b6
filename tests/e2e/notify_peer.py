#!/usr/bin/env python3
"""A stand-in for systemd's side of sd_notify(3), for tests/e2e/notify.sh.

Usage: notify_peer.py SOCKET OUT PORT

Binds a unix datagram socket at SOCKET and appends each message to OUT as one line, its
fields joined by ' | '. When a message says READY=1 it connects to 127.0.0.1:PORT at once
and writes 'CONNECT ok' or 'CONNECT refused' on the next line: READY=1 must only come once
the listening sockets accept.
"""
import os
import socket
import sys

path, out, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    f.write("LISTENING\n")
    while True:
        msg = s.recv(4096).decode("utf-8", "replace")
        fields = [x for x in msg.split("\n") if x]
        f.write(" | ".join(fields) + "\n")
        if "READY=1" in fields:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                f.write("CONNECT ok\n")
            except OSError:
                f.write("CONNECT refused\n")
        os.fsync(f.fileno())
