#!/usr/bin/env python3
"""The application behind lbq in tests/e2e/lbq.sh: an HTTP/1.1 keep-alive server that writes
one line per request to LOG: "ID STATUS METHOD PATH BODY_MD5 CONTENT_TYPE".

  lbq_backend.py PORT LOG [--fail-ids A,B] [--fail-first K] [--delay-ms MS]

--fail-ids: those ids always get 500; --fail-first: every id gets 500 on its first K
requests; --delay-ms: each request waits that long before its answer (an entry "in hand").
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
