/*
 * The route decision (lb/route/route.c): what lb does with one parsed HTTP request on one
 * listener. One function decides it, route_decide(), and both the data path
 * (lb/http/proxy.c, client_dispatch) and the admin socket's `explain` (lb/admin/explain.c)
 * call it, so that explain cannot say anything the data path would not do.
 *
 * The decision is pure: a config, the request's bytes and its parse, the client address's
 * hash in; a struct out. No worker, no I/O, no clock. The one thing it cannot know is
 * whether a static route's snapshot set holds the path: the caller looks that up and asks
 * route_static_miss() what a miss means.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/http/h1.h"

#define ROUTE_ALLOW_MAX 80 /* "Allow: " + every method routes can name + CRLF + NUL */

/* An answer lb gives itself instead of passing the request on. */
struct route_answer {
    uint16_t status;             /* 0: no answer, the request goes on */
    bool close;                  /* the connection ends after it: a body follows unread,
                                    the framing is in doubt, or the client asked for it */
    const char *why;             /* one line for people (explain); static text */
    char hdr[ROUTE_ALLOW_MAX];   /* header lines the answer adds, each ending in CRLF
                                    ("Allow: GET, HEAD\r\n" with 405), or "" */
    char allow[ROUTE_ALLOW_MAX]; /* 405: the Allow value alone ("GET, HEAD"), else "" */
};

/* Where a redirect route sends the request: Location is
 * "<scheme>://<host><port><uri>", each part pointing into the config or the request. */
struct route_location {
    const char *scheme; /* "http" or "https" */
    const char *host;   /* the route's host, or the request's Host without its port */
    size_t host_len;
    char port[8];    /* ":8443", or "" for the scheme's default port */
    const char *uri; /* the request's path and query, as received */
    size_t uri_len;
};

struct route_decision {
    struct route_answer answer; /* status != 0: lb answers this at once */
    int route;                  /* index in l->routes of the route that takes the request, or
                                   -1 (answered before or without a route) */
    enum conf_action action;    /* that route's action (route >= 0) */
    int set;                    /* static route: index in conf.statics, else -1 */
    struct route_answer miss;   /* static route: the answer when the set has no snapshot at
                                   the path (404 without a fallback cluster, 413 when the
                                   fallback would get a body over the limit); status 0: the
                                   request goes on to @cluster */
    int cluster;                /* index in conf.clusters the request goes to (a static
                                   route's fallback), or -1 */
    bool body_refused;          /* Content-Length over the listener's max_body_bytes (413
                                   before any server is asked) */
    bool hashed;                /* @cluster balances by hash: @key_hash is the request's key */
    const char *key;            /* hashed: the key's text (inside the request's buffer), or
                                   NULL when the client's address is the key */
    size_t key_len;
    uint64_t key_hash;              /* hashed: lb_hash64 of @key, or the client hash; else 0 */
    struct route_location location; /* a redirect route's answer (answer.status 301-308) */
};

/*
 * Decides what happens to @req (parsed from @buf) on listener @l of config @cf, in the data
 * path's order: CONNECT is refused (405, Allow lists what lb proxies); the first matching
 * route takes the request, and when none does lb answers 405 with Allow (a route matched
 * all but the method) or 404; an action lb does not serve gets 501; a declared
 * Content-Length over max_body_bytes gets 413 (for a static route only once the snapshot
 * missed, see @d->miss); a redirect route answers its code with @d->location (400 when the
 * request names no host, or its target is no path: "OPTIONS *"); for a hashing cluster the route's
 * hash_key gives the key (header, cookie, path, uri; a missing header or cookie, client_ip and a
 * static fallback take
 * @client_hash). Hosts compare without the port and case-insensitively.
 * Fills all of @d; returns d->answer.status (0: the request goes on to its route).
 */
int route_decide(const struct conf *cf, const struct conf_listener *l, const char *buf,
                 const struct http_req *req, uint64_t client_hash, struct route_decision *d);

/*
 * For a static route, after snap_lookup() of @req's path past the route's prefix returned
 * @lookup_rc (not 0: 0 serves the snapshot): -ENOENT (a miss, or no set published yet) is
 * d->miss; -EINVAL (a malformed path) is 400; any other error (a path no snapshot can have)
 * is 404 without asking the fallback. Sets d->answer and returns its status (0: go on to
 * d->cluster).
 */
int route_static_miss(struct route_decision *d, const struct http_req *req, int lookup_rc);

/*
 * Parses a whole request header section in @buf with @l's limits, as the data path does
 * (client_on_header: the section within max_header_bytes, the target within
 * min(max_header_bytes, 8192)). For callers holding the whole request at once (explain,
 * tests). Returns what http_parse_request() returns: header_len, HTTP_AGAIN (incomplete) or
 * -status (400, 414, 431, 501, 505), which lb answers and then closes.
 */
int route_parse(const struct conf_listener *l, const char *buf, size_t len, struct http_req *req);

#endif
