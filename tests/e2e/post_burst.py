#!/usr/bin/env python3
"""POSTs N requests over C keep-alive connections at once, for tests/e2e/enqueue.sh.

  post_burst.py PORT PATH N C OUT

Each body is {"n": I} (I from 0 to N-1). Writes to OUT one line per answer: "STATUS BODY";
prints a JSON summary: answers by status, connection errors, seconds, rate.
"""
import asyncio, json, sys, time

port, path, total, conc, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
lines, errors, nxt = [], [0], [0]


async def reader_answer(r):
    head = await r.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for h in head.split(b"\r\n")[1:]:
        if h.lower().startswith(b"content-length:"):
            length = int(h.split(b":", 1)[1])
    body = await r.readexactly(length) if length else b""
    return status, body, b"connection: close" in head.lower()


async def worker():
    conn = None
    while nxt[0] < total:
        i = nxt[0]
        nxt[0] += 1
        body = json.dumps({"n": i}).encode()
        req = (b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            conn[1].write(req)
            status, rb, close = await asyncio.wait_for(reader_answer(conn[0]), 30)
            lines.append("%d %s" % (status, rb.decode(errors="replace").strip()))
            if close:
                conn[1].close()
                conn = None
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
            errors[0] += 1
            lines.append("error %s" % type(e).__name__)
            if conn:
                conn[1].close()
            conn = None
    if conn:
        conn[1].close()


async def main():
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conc)))
    dt = time.monotonic() - t0
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    by = {}
    for l in lines:
        k = l.split(" ", 1)[0]
        by[k] = by.get(k, 0) + 1
    print(json.dumps({"status": by, "errors": errors[0], "seconds": round(dt, 2),
                      "rate": round(total / dt)}))


asyncio.run(main())
