#!/usr/bin/env python3
"""Test peers for lb's end-to-end tests: small TCP servers and clients, each bounded in
time and count. Every command prints one result line; non-zero exit means failure.

  echo PORT                       echo server (half-close aware: echoes until EOF, then FIN)
  name PORT NAME                  sends NAME and closes, for every connection
  flood PORT MIB                  sends MIB MiB to every connection, then closes
  stream PORT MIB                 client: sends MIB MiB random, FIN, reads the echo back,
                                  compares sha256 of both ends
  many PORT N                     client: N concurrent connections, each echoes its id
  names PORT N                    client: N sequential connections, prints name counts as JSON
  slow PORT SECONDS               client: connects, prints "stalled", reads nothing for
                                  SECONDS, then drains
  churn PORT N                    client: N rounds of a short connection closed right after
                                  its echo, then a new one that echoes 20 times; counts
                                  connections that lost data or saw an early FIN
"""
import hashlib, json, os, socket, sys, threading, time, selectors

def serve(port, handler):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(port)))
    s.listen(2048)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()

def h_echo(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        c.close()

def connect(port):
    c = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
    return c

def cmd_stream(port, mib):
    total = int(mib) << 20
    c = connect(port)
    sent_h, recv_h = hashlib.sha256(), hashlib.sha256()
    got = [0]
    def reader():
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            recv_h.update(d)
            got[0] += len(d)
    t = threading.Thread(target=reader)
    t.start()
    rnd = os.urandom(1 << 20)
    for i in range(total >> 20):
        chunk = hashlib.sha256(rnd + i.to_bytes(4, "little")).digest() * (1 << 15)
        sent_h.update(chunk)
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)   # half-close: the echo must still come back in full
    t.join(120)
    ok = sent_h.hexdigest() == recv_h.hexdigest() and got[0] == total
    print(f"sent={total} received={got[0]} sha_sent={sent_h.hexdigest()[:16]} "
          f"sha_received={recv_h.hexdigest()[:16]} {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1

def cmd_many(port, n):
    n = int(n)
    conns = []
    for i in range(n):
        conns.append(connect(port))
    for i, c in enumerate(conns):
        c.sendall(b"conn-%d\n" % i)
    bad = 0
    for i, c in enumerate(conns):
        want = b"conn-%d\n" % i
        got = b""
        while len(got) < len(want):
            d = c.recv(100)
            if not d:
                break
            got += d
        bad += got != want
    for c in conns:
        c.close()
    print(f"connections={n} concurrent_open={len(conns)} bad={bad}")
    return 0 if bad == 0 else 1

def cmd_names(port, n):
    counts, errors = {}, 0
    for _ in range(int(n)):
        try:
            c = connect(port)
            data = b""
            while True:
                d = c.recv(100)
                if not d:
                    break
                data += d
            c.close()
            name = data.decode().strip() or "<empty>"
            counts[name] = counts.get(name, 0) + 1
        except OSError:
            errors += 1
    counts["errors"] = errors
    print(json.dumps(counts, sort_keys=True))
    return 0

def cmd_churn(port, n):
    # A connection torn down just as the next one is accepted is where a fixed-file slot
    # closed too early would hand one client's shutdown to the next client.
    bad = 0
    for _ in range(int(n)):
        try:
            a = connect(port)
            a.sendall(b"ping\n")
            ok = a.recv(100) == b"ping\n"
            a.close()
            b = connect(port)
            for j in range(20):
                msg = b"hello %d\n" % j
                b.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    d = b.recv(100)
                    if not d:
                        break
                    got += d
                ok = ok and got == msg
            b.close()
        except OSError:
            ok = False
        bad += 0 if ok else 1
    print(f"rounds={n} bad={bad}")
    return 0 if bad == 0 else 1

def cmd_slow(port, seconds):
    c = connect(port)
    print("stalled", flush=True)  # the caller measures from here, not from our start
    # No SO_RCVBUF shrinking: a window below the MSS makes loopback TCP crawl (silly
    # window avoidance plus retransmit timeouts), which tests TCP, not lb. The kernel's
    # own buffers hold a few MiB; the flood is 256 MiB, so lb still has to push back.
    time.sleep(float(seconds))
    n = 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        n += len(d)
    print(f"received={n}")
    return 0

def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo":
        serve(args[0], h_echo)
    elif cmd == "name":
        name = args[1].encode() + b"\n"
        def h(c):
            try:
                c.sendall(name)
            finally:
                c.close()
        serve(args[0], h)
    elif cmd == "flood":
        size = int(args[1]) << 20
        block = b"x" * (1 << 16)
        def h(c):
            try:
                for _ in range(size // len(block)):
                    c.sendall(block)
            except OSError:
                pass
            finally:
                c.close()
        serve(args[0], h)
    elif cmd == "stream":
        return cmd_stream(*args)
    elif cmd == "many":
        return cmd_many(*args)
    elif cmd == "names":
        return cmd_names(*args)
    elif cmd == "slow":
        return cmd_slow(*args)
    elif cmd == "churn":
        return cmd_churn(*args)
    else:
        print(__doc__)
        return 2

if __name__ == "__main__":
    sys.exit(main() or 0)
