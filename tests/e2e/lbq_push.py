#!/usr/bin/env python3
"""Pushes queue entries as lb's enqueue routes do (LPUSH of one JSON object each), for
tests/e2e/lbq.sh, over a raw RESP socket (no Redis module needed).

  lbq_push.py PORT QUEUE PREFIX COUNT [MANIFEST] [--ts-ago MS]
  lbq_push.py PORT QUEUE --raw TEXT

Ids are PREFIX-0 .. PREFIX-(COUNT-1). Bodies are JSON with non-ASCII text written as \\u
escapes (surrogate pairs included); every 7th entry carries a binary body as body_b64. One
line per entry, "ID MD5-OF-BODY", is appended to MANIFEST when given.
"""
import base64
import hashlib
import json
import socket
import sys
import time


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def send(port, cmds):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"".join(cmds))
    got = b""
    while got.count(b"\r\n") < len(cmds):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("redis closed the connection")
        got += chunk
    if b"-ERR" in got:
        sys.exit("redis error: %r" % got[:200])


def main():
    port, queue = int(sys.argv[1]), sys.argv[2]
    if sys.argv[3] == "--raw":
        send(port, [resp("LPUSH", queue, sys.argv[4].encode())])
        return
    prefix, count = sys.argv[3], int(sys.argv[4])
    rest = sys.argv[5:]
    ago = 0
    if "--ts-ago" in rest:
        ago = int(rest[rest.index("--ts-ago") + 1])
        del rest[rest.index("--ts-ago"):rest.index("--ts-ago") + 2]
    manifest = open(rest[0], "a") if rest else None
    now = int(time.time() * 1000)
    cmds = []
    for i in range(count):
        ident = "%s-%d" % (prefix, i)
        entry = {"id": ident, "ts": now - ago, "method": "POST",
                 "uri": "/flash/%s?n=%d" % (prefix, i),
                 "headers": {"Content-Type": "application/json",
                             "X-Forwarded-For": "10.0.%d.%d" % (i // 256 % 256, i % 256)}}
        if i % 7 == 3:
            body = bytes([i % 256, 0, 255, 128, 10, 13]) + b"\xc3(" * (i % 5)
            entry["body_b64"] = base64.b64encode(body).decode()
            entry["headers"]["Content-Type"] = "application/octet-stream"
        else:
            text = json.dumps({"n": i, "s": "caf\u00e9 \u20ac \U0001F600 \"q\" \\ /"},
                              ensure_ascii=False)
            body = text.encode()
            entry["body"] = text
        cmds.append(resp("LPUSH", queue, json.dumps(entry)))
        if manifest:
            manifest.write("%s %s\n" % (ident, hashlib.md5(body).hexdigest()))
    for k in range(0, len(cmds), 500):
        send(port, cmds[k:k + 500])


main()
