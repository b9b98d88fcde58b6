#!/usr/bin/env python3
"""The origin behind the route cache in tests/e2e/cache_rfc.sh and cache_l2.sh: an HTTP/1.1 keep-alive server
whose answer headers depend on the path, and which counts the requests for each path.

  cache_origin.py PORT

GET /_count/PATH (asked directly, not through lb) answers how many GETs PATH got. Every
other answer's body is "PATH N" (N: that request's number for the path, so a client can
tell a stored answer from a new one) and its headers are:

  /maxage/*     Cache-Control: max-age=60
  /day/*        Cache-Control: max-age=86400 (for tests slower than a minute on a busy host)
  /slow/*       the same, answered after 1 s (a fill that a burst of misses piles up on)
  /expired      Expires in the past (and no Cache-Control)
  /badexpires   Expires: 0 (invalid: already expired)
  /nostore      Cache-Control: no-store, max-age=60
  /mustreval    Cache-Control: max-age=2, must-revalidate
  /etag         ETag: "v1", Cache-Control: max-age=60; If-None-Match "v1" gets 304
  /vary         Vary: Accept-Language, max-age=60; the body also says the language
  /reval        ETag: "r1", Cache-Control: max-age=1; If-None-Match "r1" gets 304 (with
                X-Refreshed: N, which a refreshed stored answer then carries)
  /reval-lm     Last-Modified (fixed), max-age=1; If-Modified-Since not before it gets 304
  /nocache      ETag: "n1", Cache-Control: no-cache; If-None-Match "n1" gets 304
  /sie          max-age=1, stale-if-error=60 the first time, then 500
  /sie-mr       the same with must-revalidate (which forbids serving it stale)
  /sie-down     max-age=1, stale-if-error=60 always (the test stops the origin)
  /swr          max-age=4, stale-while-revalidate=60; every answer but the first waits 0.5 s
  /plain        nothing about caching (heuristic: the route's ttl)
  POST PATH     200; with ?loc=L, Location: L and Content-Location: L
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

port = int(sys.argv[1])
lock = threading.Lock()
counts = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def count(self, path):
        with lock:
            counts[path] = counts.get(path, 0) + 1
            return counts[path]

    def do_GET(self):
        u = urlsplit(self.path)
        path = u.path
        if path.startswith("/_count/"):
            with lock:
                n = counts.get(path[len("/_count"):], 0)
            return self.answer(200, [], b"%d" % n)
        n = self.count(path)
        body = b"%s %d" % (path.encode(), n)
        h = []  # send_response() adds Date
        if path.startswith("/day/"):
            return self.answer(200, [("Cache-Control", "max-age=86400")], body)
        if path.startswith("/maxage/"):
            h.append(("Cache-Control", "max-age=60"))
        elif path.startswith("/slow/"):
            h.append(("Cache-Control", "max-age=60"))
            time.sleep(1)
        elif path == "/expired":
            h.append(("Expires", "Sun, 06 Nov 1994 08:49:37 GMT"))
        elif path == "/badexpires":
            h.append(("Expires", "0"))
        elif path == "/nostore":
            h.append(("Cache-Control", "no-store, max-age=60"))
        elif path == "/mustreval":
            h.append(("Cache-Control", "max-age=2, must-revalidate"))
        elif path == "/etag":
            h += [("ETag", '"v1"'), ("Cache-Control", "max-age=60")]
            if self.headers.get("If-None-Match") == '"v1"':
                return self.answer(304, h)
        elif path == "/reval":
            h += [("ETag", '"r1"'), ("Cache-Control", "max-age=1")]
            if self.headers.get("If-None-Match") == '"r1"':
                return self.answer(304, h + [("X-Refreshed", str(n))])
        elif path == "/reval-lm":
            lm = "Sun, 06 Nov 1994 08:49:37 GMT"
            h += [("Last-Modified", lm), ("Cache-Control", "max-age=1")]
            if self.headers.get("If-Modified-Since") == lm:
                return self.answer(304, h)
        elif path == "/nocache":
            h += [("ETag", '"n1"'), ("Cache-Control", "no-cache")]
            if self.headers.get("If-None-Match") == '"n1"':
                return self.answer(304, h)
        elif path in ("/sie", "/sie-mr", "/sie-down"):
            mr = ", must-revalidate" if path == "/sie-mr" else ""
            h.append(("Cache-Control", "max-age=1, stale-if-error=60" + mr))
            if n > 1 and path != "/sie-down":
                return self.answer(500, [], b"origin failure")
        elif path == "/swr":
            h.append(("Cache-Control", "max-age=4, stale-while-revalidate=60"))
            if n > 1:
                time.sleep(0.5)
        elif path == "/vary":
            h += [("Vary", "Accept-Language"), ("Cache-Control", "max-age=60")]
            body += b" " + self.headers.get("Accept-Language", "-").encode()
        self.answer(200, h, body)

    def do_POST(self):
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length", "0"))
        if n:
            self.rfile.read(n)
        self.count("POST " + u.path)
        h = []
        loc = parse_qs(u.query).get("loc")
        if loc:
            h += [("Location", loc[0]), ("Content-Location", loc[0])]
        self.answer(200, h, b"posted")


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
