/*
 * lbq's HTTP/1.1 client: one blocking keep-alive connection per delivery thread, plain
 * http:// only (lbq delivers to an application next to it; put a TLS terminator in front of
 * anything remote). Requests carry the entry's method, URI (after the URL's path), headers
 * and body; the response body is read and dropped.
 */
#ifndef TOOLS_LBQ_HTTP_H
#define TOOLS_LBQ_HTTP_H

#include <stddef.h>

#include "conf/err.h"
#include "tools/lbq/entry.h"

#define LBQ_HTTP_BUF (64 * 1024) /* response head limit, and the read buffer */

struct lbq_url {
    char host[256];
    char port[8];
    char path[1024];     /* prefix put before each entry's URI, without a trailing '/' */
    char authority[300]; /* Host header */
};

struct lbq_http {
    const struct lbq_url *url;
    int fd; /* -1: not connected */
    int timeout_ms;
    size_t rlen; /* bytes buffered in @rbuf */
    char rbuf[LBQ_HTTP_BUF];
};

/* Parses "http://HOST[:PORT][/PATH]". 0 or -EINVAL with a message. */
int lbq_url_parse(struct lbq_url *u, const char *s, struct lb_err *err);

void lbq_http_init(struct lbq_http *h, const struct lbq_url *u, int timeout_ms);

/*
 * Delivers @e (try number @attempt goes in X-Lbq-Try, the id in X-Lbq-Id) and reads the
 * whole response. Returns its status code, or -errno with a message (connection refused,
 * timeout, malformed response). A reused connection that the server closed before answering
 * is reopened once. Any failure closes the connection.
 */
int lbq_http_deliver(struct lbq_http *h, const struct lbq_entry *e, unsigned attempt,
                     struct lb_err *err);

void lbq_http_close(struct lbq_http *h);

#endif
