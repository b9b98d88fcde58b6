#!/usr/bin/env python3
"""HTTP and WebSocket peers for lb's end-to-end tests, bounded in time. Every command
prints one result line; a non-zero exit means failure.

  raw PORT HEX_OR_TEXT [WAIT]     sends the bytes (\\r\\n escapes allowed), waits up to WAIT s
                                  (default 5) for the answer, prints its status line
  stall PORT TEXT                 sends TEXT, then nothing; prints the status lb answers with
  pipeline PORT N                 N GET requests in one write, prints the statuses in order
  ws-server PORT                  WebSocket echo server (one thread per connection)
  ws-client PORT N                opens a WebSocket through lb, echoes N messages, checks them
  bad-backend PORT KIND           answers every request with a broken response:
                                  garbage | both-cl-te | two-cl | body-on-204 | huge-header
"""
import base64, hashlib, os, socket, struct, sys, threading

def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1")

def read_status(c, wait):
    c.settimeout(wait)
    data = b""
    try:
        while b"\r\n" not in data:
            d = c.recv(4096)
            if not d:
                break
            data += d
    except socket.timeout:
        return "timeout"
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return line or "closed"

def cmd_raw(port, text, wait="5"):
    c = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    c.sendall(unescape(text))
    print(read_status(c, float(wait)))
    return 0

def cmd_pipeline(port, n):
    n = int(n)
    c = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    req = b"".join(b"GET /?i=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(n))
    c.sendall(req)
    c.settimeout(5)
    data = b""
    statuses = []
    while len(statuses) < n:
        d = c.recv(65536)
        if not d:
            break
        data += d
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if not sep:
                break
            lines = head.split(b"\r\n")
            length = 0
            for l in lines[1:]:
                k, _, v = l.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            if len(rest) < length:
                break
            statuses.append(lines[0].split(b" ")[1].decode())
            data = rest[length:]
    print(" ".join(statuses))
    return 0 if len(statuses) == n else 1

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

def ws_frame(payload, mask):
    hdr = bytearray([0x81])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr.append(mbit | n)
    elif n < 65536:
        hdr.append(mbit | 126)
        hdr += struct.pack(">H", n)
    else:
        hdr.append(mbit | 127)
        hdr += struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        hdr += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(hdr) + payload

def recv_exact(c, n):
    data = b""
    while len(data) < n:
        d = c.recv(n - len(data))
        if not d:
            raise EOFError
        data += d
    return data

def ws_read(c):
    b0, b1 = recv_exact(c, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(c, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(c, 8))[0]
    key = recv_exact(c, 4) if b1 & 0x80 else None
    payload = recv_exact(c, n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload

def ws_serve_one(c):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        key = b""
        for l in data.split(b"\r\n"):
            k, _, v = l.partition(b":")
            if k.strip().lower() == b"sec-websocket-key":
                key = v.strip()
        acc = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        while True:
            op, payload = ws_read(c)
            if op == 8:
                return
            c.sendall(ws_frame(payload, False))
    except (OSError, EOFError):
        pass
    finally:
        c.close()

def cmd_ws_server(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(port)))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=ws_serve_one, args=(c,), daemon=True).start()

def cmd_ws_client(port, n):
    c = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16))
    c.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(4096)
        if not d:
            print("closed before the handshake answer")
            return 1
        data += d
    status = data.split(b"\r\n", 1)[0]
    want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    if b" 101 " not in status or want not in data:
        print("bad handshake:", data.split(b"\r\n\r\n")[0].decode("latin-1"))
        return 1
    ok = 0
    for i in range(int(n)):
        msg = os.urandom(10 + i * 97 % 70000)
        c.sendall(ws_frame(msg, True))
        op, payload = ws_read(c)
        ok += payload == msg
    print(f"messages={n} echoed={ok}")
    return 0 if ok == int(n) else 1

BAD = {
    "garbage": b"HTTP/1.1 2x0 OK\r\n\r\n",
    "both-cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n\r\n",
    "two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "body-on-204": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
    # A header section far over any limit lb keeps (its header buffers are sized by the
    # listeners' max_header_bytes): refused as too large, not as malformed.
    "huge-header": b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"h" * 100000 + b"\r\n"
                   b"Content-Length: 0\r\n\r\n",
}

def cmd_bad_backend(port, kind):
    answer = BAD[kind]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(port)))
    s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                d = c.recv(4096)
                if not d:
                    break
                data += d
            c.sendall(answer)
        except OSError:
            pass
        finally:
            c.close()

def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"raw": cmd_raw, "stall": cmd_raw, "pipeline": cmd_pipeline,
          "ws-server": cmd_ws_server, "ws-client": cmd_ws_client,
          "bad-backend": cmd_bad_backend}.get(cmd)
    if not fn:
        print(__doc__)
        return 2
    return fn(*args)

if __name__ == "__main__":
    sys.exit(main() or 0)
