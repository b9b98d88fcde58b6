#!/usr/bin/env python3
"""A misbehaving HTTP/1.1 backend for tests/e2e/backend_faults.sh. The request path picks
the fault; every connection is served in its own thread and nothing lives past SECONDS.

  /ok        200 with a 2-byte body, keep-alive
  /reset     200 declaring 100000 bytes, sends 10000, then resets the connection (RST)
  /garbage   a line that is not a status line, then close
  /hang      reads the request and never answers (until the peer closes)
  /slow      answers 200 after DELAY seconds
  /half      200 declaring 1000 bytes, sends 500, then closes cleanly (FIN)

Usage: fault_peer.py PORT SECONDS [DELAY]
Prints "ready" once listening; counts of requests per path go to stdout at exit.
"""
import collections, socket, struct, sys, threading, time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
counts = collections.Counter()
lock = threading.Lock()


def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            return None
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    return line[1] if len(line) == 3 else None


def reset(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def serve(c):
    try:
        while True:
            path = read_request(c)
            if path is None:
                return
            with lock:
                counts[path] += 1
            if path == "/ok":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                continue
            if path == "/reset":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"r" * 10000)
                time.sleep(0.1)
                reset(c)
                return
            if path == "/garbage":
                c.sendall(b"SPAM SPAM SPAM\r\n\r\n")
                return
            if path == "/hang":
                c.settimeout(seconds)
                while c.recv(4096):
                    pass
                return
            if path == "/slow":
                time.sleep(delay)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
                continue
            if path == "/half":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"h" * 500)
                c.shutdown(socket.SHUT_WR)
                return
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    except OSError:
        pass
    finally:
        try:
            c.close()
        except OSError:
            pass


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(512)
    s.settimeout(0.5)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    print(dict(counts), flush=True)


main()
