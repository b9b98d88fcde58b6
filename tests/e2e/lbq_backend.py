#!/usr/bin/env python3
"""The application behind lbq in tests/e2e/lbq.sh: an HTTP/1.1 keep-alive server that writes
one line per request to LOG: "ID STATUS METHOD PATH BODY_MD5 CONTENT_TYPE".

  lbq_backend.py PORT LOG [--fail-ids A,B] [--fail-first K] [--delay-ms MS] [--bad-ids A,B]

--fail-ids: those ids always get 500; --fail-first: every id gets 500 on its first K
requests; --delay-ms: each request waits that long before its answer (an entry "in hand");
--bad-ids: those ids get a malformed response (status "bad" in LOG), a different one on each
request (the Nth id in the list starts N further), then the connection is closed.
"""
import hashlib
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, log_path = int(sys.argv[1]), sys.argv[2]
opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
fail_ids = set(filter(None, opts.get("--fail-ids", "").split(",")))
fail_first = int(opts.get("--fail-first", "0"))
delay = int(opts.get("--delay-ms", "0")) / 1000.0
bad_ids = list(filter(None, opts.get("--bad-ids", "").split(",")))
BAD = [
    b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n",  # NUL in the head
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",  # head over 64 KiB
]
lock = threading.Lock()
seen = {}
log = open(log_path, "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""
        ident = self.headers.get("X-Lbq-Id", "-")
        if delay:
            time.sleep(delay)
        with lock:
            seen[ident] = seen.get(ident, 0) + 1
            if ident in bad_ids:
                log.write("%s bad %s %s - -\n" % (ident, self.command, self.path))
                k = (bad_ids.index(ident) + seen[ident] - 1) % len(BAD)
                self.wfile.write(BAD[k])
                self.wfile.flush()
                self.close_connection = True
                return
            status = 500 if ident in fail_ids or seen[ident] <= fail_first else 200
            log.write("%s %d %s %s %s %s\n" % (ident, status, self.command, self.path,
                      hashlib.md5(body).hexdigest(), self.headers.get("Content-Type", "-")))
        out = b"ok\n" if status == 200 else b"no\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = handle_any


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
