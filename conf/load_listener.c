/*
 * The loader of listeners: with their routes (match, action, hash key, cache, enqueue) and
 * TLS. Each object gets its defaults, then its table of keys (load.c's conf_map), then the
 * rules that involve several keys of that one object (one action per route, ...). Rules
 * across objects, such as references, are validate.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/load.h"

#define Q(buf, n) conf_quote((buf), sizeof(buf), (n)->str, (n)->len)
#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define KIB 1024ull
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

static bool pos_before(struct conf_pos a, struct conf_pos b)
{
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* ---- routes ---- */

static const struct conf_enum_name methods[] = {
    {"GET", CONF_M_GET},       {"HEAD", CONF_M_HEAD},
    {"POST", CONF_M_POST},     {"PUT", CONF_M_PUT},
    {"DELETE", CONF_M_DELETE}, {"OPTIONS", CONF_M_OPTIONS},
    {"PATCH", CONF_M_PATCH},   {"CONNECT", CONF_M_CONNECT},
    {"TRACE", CONF_M_TRACE},   {NULL, 0},
};

static int set_methods(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    const struct conf_key one = {.name = "method", .set = conf_set_enum, .arg = methods};
    uint32_t *bits = field;
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of methods such as [GET, HEAD]"))
        return -EINVAL;
    if (n->nkids == 0) {
        conf_err(x, n->pos,
                 "an empty list of methods would match nothing; leave methods out to "
                 "match any method");
        return -EINVAL;
    }
    int rc = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        const struct conf_node *v = n->kids[i];
        int m = 0;
        size_t mark = conf_path_push(x, "[%zu]", i);
        if (v->bad || conf_set_enum(x, v, &m, &one) < 0) {
            rc = -EINVAL;
        } else if (*bits & (uint32_t)m) {
            conf_err(x, v->pos, "method %s is listed twice", Q(q, v));
            rc = -EINVAL;
        }
        *bits |= (uint32_t)m;
        conf_path_pop(x, mark);
    }
    return rc;
}

/* A Host to match: a DNS name or an IP literal, without port; kept lowercased. */
static int set_host(struct conf_ctx *x, const struct conf_node *n, void *field,
                    const struct conf_key *k)
{
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "a host name such as api.example.com"))
        return -EINVAL;
    if (strchr(n->str, ':') && n->str[0] != '[') {
        conf_err(x, n->pos, "host '%s' has a port: hosts are matched without their port", Q(q, n));
        return -EINVAL;
    }
    bool ok = n->len <= 253;
    for (size_t i = 0; ok && i < n->len; i++) {
        unsigned char ch = (unsigned char)n->str[i];
        ok = isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '[' || ch == ']' ||
             ch == ':';
    }
    if (!ok) {
        conf_err(x, n->pos, "expected a host name such as api.example.com, got '%s'", Q(q, n));
        return -EINVAL;
    }
    char **dst = field;
    char *s = strdup(n->str);
    if (!s) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    free(*dst);
    *dst = s;
    return 0;
}

/* RFC 9110 token characters: what a header or cookie name may be made of. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static int set_hash_key(struct conf_ctx *x, const struct conf_node *n, void *field,
                        const struct conf_key *k)
{
    const char *what = "header:NAME, cookie:NAME, path, uri or client_ip";
    struct conf_hash_key *h = field;
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    struct conf_hash_key v = {CONF_HASH_NONE, NULL};
    const char *name = NULL;
    if (!strcmp(n->str, "client_ip"))
        v.kind = CONF_HASH_CLIENT_IP;
    else if (!strcmp(n->str, "path"))
        v.kind = CONF_HASH_PATH;
    else if (!strcmp(n->str, "uri"))
        v.kind = CONF_HASH_URI;
    else if (!strncmp(n->str, "header:", 7))
        v.kind = CONF_HASH_HEADER, name = n->str + 7;
    else if (!strncmp(n->str, "cookie:", 7))
        v.kind = CONF_HASH_COOKIE, name = n->str + 7;
    if (v.kind == CONF_HASH_NONE) {
        conf_err(x, n->pos, "unknown hash_key '%s'; expected %s", Q(q, n), what);
        return -EINVAL;
    }
    if (name && (!is_token(name) || strlen(name) > 128)) {
        conf_err(x, n->pos, "bad %s name in '%s': expected an HTTP token such as X-User-Id",
                 v.kind == CONF_HASH_HEADER ? "header" : "cookie", Q(q, n));
        return -EINVAL;
    }
    if (name && !(v.name = strdup(name))) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    free(h->name);
    *h = v;
    return 0;
}

static const struct conf_key match_keys[] = {
    {.name = "host", .set = set_host, .off = offsetof(struct conf_route, host)},
    {.name = "path_prefix",
     .set = conf_set_url_path,
     .off = offsetof(struct conf_route, path_prefix)},
    {.name = "methods", .set = set_methods, .off = offsetof(struct conf_route, methods)},
    {.name = NULL},
};

static int set_match(struct conf_ctx *x, const struct conf_node *n, void *field,
                     const struct conf_key *k)
{
    struct conf_route *r = field;
    r->has_match = true;
    return conf_map(x, n, r, match_keys, NULL);
}

static int set_route_cluster(struct conf_ctx *x, const struct conf_node *n, void *field,
                             const struct conf_key *k)
{
    struct conf_route *r = field;
    r->action = CONF_ACT_CLUSTER;
    return conf_set_name(x, n, &r->target, k);
}

static int set_route_static(struct conf_ctx *x, const struct conf_node *n, void *field,
                            const struct conf_key *k)
{
    struct conf_route *r = field;
    r->action = CONF_ACT_STATIC;
    return conf_set_name(x, n, &r->target, k);
}

/* A header name is an RFC 9110 token; stored lowercased, each name once. */
static bool enq_header_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int add_enq_header(struct conf_ctx *x, const struct conf_node *v, struct conf_enqueue *e)
{
    char q[48];
    if (v->bad || !conf_expect(x, v, CONF_NODE_SCALAR, "a header name"))
        return -EINVAL;
    for (size_t i = 0; i < v->len; i++) {
        if (!enq_header_char((unsigned char)v->str[i])) {
            conf_err(x, v->pos, "'%s' is not a header name (letters, digits, -, _ ...)", Q(q, v));
            return -EINVAL;
        }
    }
    if (v->len == 0) {
        conf_err(x, v->pos, "an empty header name");
        return -EINVAL;
    }
    for (size_t j = 0; j < e->nheaders; j++) {
        if (!strcasecmp(e->headers[j], v->str)) {
            conf_err(x, v->pos, "header '%s' is listed twice", Q(q, v));
            return -EINVAL;
        }
    }
    char *name = strdup(v->str);
    if (!name) {
        conf_err(x, v->pos, "out of memory");
        return -ENOMEM;
    }
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    e->headers[e->nheaders++] = name;
    return 0;
}

static int set_enq_headers(struct conf_ctx *x, const struct conf_node *n, void *field,
                           const struct conf_key *k)
{
    struct conf_enqueue *e = field;
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of header names such as [X-Request-Id]"))
        return -EINVAL;
    if (n->nkids > CONF_ENQ_MAX_HEADERS) {
        conf_err(x, n->pos, "headers takes at most %d names", CONF_ENQ_MAX_HEADERS);
        return -EINVAL;
    }
    int rc = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        if (add_enq_header(x, n->kids[i], e) < 0)
            rc = -EINVAL;
    }
    return rc;
}

static const struct conf_key enqueue_keys[] = {
    {.name = "redis_list",
     .set = conf_set_str,
     .off = offsetof(struct conf_enqueue, redis_list),
     .flags = CONF_K_REQUIRED},
    {.name = "max_length",
     .set = conf_set_u64,
     .off = offsetof(struct conf_enqueue, max_length),
     .min = 1,
     .max = 1000000000},
    {.name = "max_body",
     .set = conf_set_size,
     .off = offsetof(struct conf_enqueue, max_body),
     .min = 0,
     .max = 64 * MIB},
    {.name = "headers", .set = set_enq_headers},
    {.name = NULL},
};

static int set_enqueue(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    struct conf_route *r = field;
    r->action = CONF_ACT_ENQUEUE;
    r->enqueue.max_length = 100000;
    r->enqueue.max_body = 64 * KIB;
    return conf_map(x, n, &r->enqueue, enqueue_keys, NULL);
}

static const struct conf_enum_name schemes[] = {
    {"http", CONF_SCHEME_HTTP},
    {"https", CONF_SCHEME_HTTPS},
    {NULL, 0},
};

static const struct conf_enum_name redirect_codes[] = {
    {"301", 301}, {"302", 302}, {"307", 307}, {"308", 308}, {NULL, 0},
};

static const struct conf_key redirect_keys[] = {
    {.name = "scheme",
     .set = conf_set_enum,
     .off = offsetof(struct conf_redirect, scheme),
     .arg = schemes},
    {.name = "host", .set = set_host, .off = offsetof(struct conf_redirect, host)},
    {.name = "port",
     .set = conf_set_u32,
     .off = offsetof(struct conf_redirect, port),
     .min = 1,
     .max = 65535},
    {.name = "code",
     .set = conf_set_enum,
     .off = offsetof(struct conf_redirect, code),
     .arg = redirect_codes},
    {.name = NULL},
};

static int set_redirect(struct conf_ctx *x, const struct conf_node *n, void *field,
                        const struct conf_key *k)
{
    struct conf_route *r = field;
    r->action = CONF_ACT_REDIRECT;
    r->redirect.code = 308;
    return conf_map(x, n, &r->redirect, redirect_keys, NULL);
}

static const struct conf_key cache_keys[] = {
    {.name = "ttl",
     .set = conf_set_duration,
     .off = offsetof(struct conf_cache, ttl_ms),
     .min = 0,
     .max = 24 * HOUR},
    {.name = "max_ttl",
     .set = conf_set_duration,
     .off = offsetof(struct conf_cache, max_ttl_ms),
     .min = 0,
     .max = 30 * 24 * HOUR},
    {.name = "debug_header",
     .set = conf_set_onoff,
     .off = offsetof(struct conf_cache, debug_header)},
    {.name = "max_bytes",
     .set = conf_set_size,
     .off = offsetof(struct conf_cache, max_bytes),
     .min = 1 * KIB,
     .max = 64 * GIB},
    {.name = "shared", .set = conf_set_cache_shared, .off = offsetof(struct conf_cache, shared)},
    {.name = NULL},
};

static int set_cache(struct conf_ctx *x, const struct conf_node *n, void *field,
                     const struct conf_key *k)
{
    struct conf_cache *cache = field;
    cache->max_bytes = 64 * MIB;
    if (conf_map(x, n, cache, cache_keys, NULL) < 0)
        return -EINVAL;
    cache->enabled = true;
    return 0;
}

static const struct conf_key route_keys[] = {
    {.name = "match", .set = set_match},
    {.name = "cluster", .set = set_route_cluster},
    {.name = "static", .set = set_route_static},
    {.name = "enqueue", .set = set_enqueue},
    {.name = "redirect", .set = set_redirect},
    {.name = "hash_key", .set = set_hash_key, .off = offsetof(struct conf_route, hash_key)},
    {.name = "cache", .set = set_cache, .off = offsetof(struct conf_route, cache)},
    {.name = NULL},
};

static void load_route(struct conf_ctx *x, const struct conf_node *n, struct conf_route *r)
{
    struct conf_seen seen[CONF_MAX_KEYS];
    static const char *const actions[] = {"cluster", "static", "enqueue", "redirect"};
    const size_t nactions = sizeof(actions) / sizeof(actions[0]);

    r->pos = n->pos;
    r->target_idx = -1;
    if (conf_map(x, n, r, route_keys, seen) < 0)
        return;

    /* Exactly one action; every extra one is reported where it is written. */
    const struct conf_seen *first = NULL;
    const char *first_name = NULL;
    for (size_t i = 0; i < nactions; i++) {
        const struct conf_seen *s = conf_seen_get(route_keys, seen, actions[i]);
        if (s->key && (!first || pos_before(s->key->pos, first->key->pos))) {
            first = s;
            first_name = actions[i];
        }
    }
    for (size_t i = 0; first && i < nactions; i++) {
        const struct conf_seen *s = conf_seen_get(route_keys, seen, actions[i]);
        if (s->key && s != first)
            conf_err(x, s->key->pos,
                     "a route takes exactly one action, and it already has "
                     "'%s' (%u:%u)",
                     first_name, first->key->pos.line, first->key->pos.col);
    }
    if (!first) {
        conf_err(x, n->pos, "a route needs an action: cluster, static, enqueue or redirect");
        return;
    }
    r->target_pos = first->val->pos;
    bool single = true;
    for (size_t i = 0; i < nactions; i++) {
        const struct conf_seen *s = conf_seen_get(route_keys, seen, actions[i]);
        single &= !s->key || s == first;
    }

    const struct conf_seen *hk = conf_seen_get(route_keys, seen, "hash_key");
    const struct conf_seen *ca = conf_seen_get(route_keys, seen, "cache");
    if (hk->key)
        r->hash_key_pos = hk->val->pos;
    if (single && strcmp(first_name, "cluster")) {
        if (hk->key)
            conf_err(x, hk->key->pos,
                     "hash_key applies only to routes with a cluster, not "
                     "to '%s'",
                     first_name);
        if (ca->key)
            conf_err(x, ca->key->pos,
                     "cache applies only to routes with a cluster, not to "
                     "'%s'",
                     first_name);
    }
}

static int set_routes(struct conf_ctx *x, const struct conf_node *n, void *field,
                      const struct conf_key *k)
{
    struct conf_listener *l = field;
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of routes"))
        return -EINVAL;
    if (n->nkids == 0) {
        conf_err(x, n->pos,
                 "an empty list of routes: add at least one, such as "
                 "- cluster: NAME");
        return -EINVAL;
    }
    l->routes = calloc(n->nkids, sizeof(*l->routes));
    if (!l->routes) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    l->nroutes = n->nkids;
    bool caught = false;
    for (size_t i = 0; i < n->nkids; i++) {
        const struct conf_node *v = n->kids[i];
        size_t mark = conf_path_push(x, "[%zu]", i);
        l->routes[i].target_idx = -1;
        if (caught) {
            conf_err(x, v->pos,
                     "this route can never match: routes[%zu] above has no match block and "
                     "takes every request (put the default route last)",
                     i - 1);
            caught = false; /* once is enough */
        }
        if (!v->bad) {
            load_route(x, v, &l->routes[i]);
            caught = !l->routes[i].has_match && i + 1 < n->nkids;
        }
        conf_path_pop(x, mark);
    }
    return 0;
}

/* ---- listeners ---- */

static const struct conf_enum_name protocols[] = {
    {"http", CONF_PROTO_HTTP},
    {"tcp", CONF_PROTO_TCP},
    {"redis", CONF_PROTO_REDIS},
    {NULL, 0},
};

static const struct conf_key cert_keys[] = {
    {.name = "cert",
     .set = conf_set_file,
     .off = offsetof(struct conf_tls_cert, cert),
     .flags = CONF_K_REQUIRED},
    {.name = "key",
     .set = conf_set_file,
     .off = offsetof(struct conf_tls_cert, key),
     .flags = CONF_K_REQUIRED},
    {.name = "ocsp", .set = conf_set_file, .off = offsetof(struct conf_tls_cert, ocsp)},
    {.name = NULL},
};

static void load_cert(struct conf_ctx *x, const struct conf_node *n, struct conf_tls_cert *ct)
{
    struct conf_seen seen[CONF_MAX_KEYS];
    ct->pos = n->pos;
    if (conf_map(x, n, ct, cert_keys, seen) < 0)
        return;
    /* Where each file was named: lb -t reports what OpenSSL thinks of it there. */
    const struct conf_seen *v = conf_seen_get(cert_keys, seen, "cert");
    ct->cert_pos = v->val ? v->val->pos : n->pos;
    v = conf_seen_get(cert_keys, seen, "key");
    ct->key_pos = v->val ? v->val->pos : n->pos;
    v = conf_seen_get(cert_keys, seen, "ocsp");
    ct->ocsp_pos = v->val ? v->val->pos : n->pos;
}

static int set_certs(struct conf_ctx *x, const struct conf_node *n, void *field,
                     const struct conf_key *k)
{
    struct conf_tls *tls = field;
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of { cert: FILE, key: FILE }"))
        return -EINVAL;
    if (n->nkids == 0) {
        conf_err(x, n->pos, "at least one certificate is needed");
        return -EINVAL;
    }
    tls->certs = calloc(n->nkids, sizeof(*tls->certs));
    if (!tls->certs) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    tls->ncerts = n->nkids;
    for (size_t i = 0; i < n->nkids; i++) {
        size_t mark = conf_path_push(x, "[%zu]", i);
        if (!n->kids[i]->bad)
            load_cert(x, n->kids[i], &tls->certs[i]);
        conf_path_pop(x, mark);
    }
    return 0;
}

/* ALPN protocol ids lb speaks; h2 has a place here once lb speaks it. */
static int set_alpn(struct conf_ctx *x, const struct conf_node *n, void *field,
                    const struct conf_key *k)
{
    struct conf_tls *tls = field;
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of protocols such as [http/1.1]"))
        return -EINVAL;
    if (n->nkids == 0 || n->nkids > CONF_TLS_MAX_ALPN) {
        conf_err(x, n->pos, "alpn takes 1 to %d protocols", CONF_TLS_MAX_ALPN);
        return -EINVAL;
    }
    tls->alpn_pos = n->pos;
    for (size_t i = 0; i < tls->nalpn; i++)
        free(tls->alpn[i]);
    tls->nalpn = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        const struct conf_node *v = n->kids[i];
        if (v->bad || !conf_expect(x, v, CONF_NODE_SCALAR, "a protocol id"))
            return -EINVAL;
        if (strcmp(v->str, "http/1.1")) {
            conf_err(x, v->pos,
                     "alpn protocol '%s' is not spoken by lb; the one supported today is http/1.1",
                     Q(q, v));
            return -EINVAL;
        }
        for (size_t j = 0; j < tls->nalpn; j++) {
            if (!strcmp(tls->alpn[j], v->str)) {
                conf_err(x, v->pos, "alpn protocol '%s' is listed twice", Q(q, v));
                return -EINVAL;
            }
        }
        tls->alpn[tls->nalpn] = strdup(v->str);
        if (!tls->alpn[tls->nalpn]) {
            conf_err(x, v->pos, "out of memory");
            return -ENOMEM;
        }
        tls->nalpn++;
    }
    return 0;
}

static const struct conf_enum_name tls_versions[] = {
    {"tls1.2", CONF_TLS_1_2},
    {"tls1.3", CONF_TLS_1_3},
    {NULL, 0},
};

static const struct conf_key tls_keys[] = {
    {.name = "certificates", .set = set_certs, .flags = CONF_K_REQUIRED},
    {.name = "min_version",
     .set = conf_set_enum,
     .off = offsetof(struct conf_tls, min_version),
     .arg = tls_versions},
    {.name = "alpn", .set = set_alpn},
    {.name = "session_tickets",
     .set = conf_set_onoff,
     .off = offsetof(struct conf_tls, session_tickets)},
    {.name = "client_ca", .set = conf_set_file, .off = offsetof(struct conf_tls, client_ca)},
    {.name = NULL},
};

static int set_tls(struct conf_ctx *x, const struct conf_node *n, void *field,
                   const struct conf_key *k)
{
    struct conf_tls *tls = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    tls->pos = n->pos;
    tls->session_tickets = true;
    if (conf_map(x, n, tls, tls_keys, seen) < 0)
        return -EINVAL;
    const struct conf_seen *ca = conf_seen_get(tls_keys, seen, "client_ca");
    tls->client_ca_pos = ca->val ? ca->val->pos : n->pos;
    if (!tls->nalpn) {
        tls->alpn[0] = strdup("http/1.1");
        if (!tls->alpn[0]) {
            conf_err(x, n->pos, "out of memory");
            return -ENOMEM;
        }
        tls->nalpn = 1;
    }
    tls->enabled = tls->ncerts > 0;
    return 0;
}

static const struct conf_key listener_timeout_keys[] = {
    {.name = "header",
     .set = conf_set_duration,
     .off = offsetof(struct conf_listener, header_timeout_ms),
     .min = 1,
     .max = HOUR},
    {.name = "idle",
     .set = conf_set_duration,
     .off = offsetof(struct conf_listener, idle_timeout_ms),
     .min = 1,
     .max = 24 * HOUR},
    {.name = "body",
     .set = conf_set_duration,
     .off = offsetof(struct conf_listener, body_timeout_ms),
     .min = 1,
     .max = 24 * HOUR},
    {.name = NULL},
};

/* A rate: N or "N/s", 1..1000000 a second. */
static int set_rate(struct conf_ctx *x, const struct conf_node *n, void *field,
                    const struct conf_key *k)
{
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "a rate such as 100/s"))
        return -EINVAL;
    char *end;
    unsigned long v = strtoul(n->str, &end, 10);
    if (end == n->str || (*end && strcmp(end, "/s")) || v < 1 || v > 1000000) {
        conf_err(x, n->pos, "expected a rate such as 100/s (1..1000000 a second), got '%s'",
                 Q(q, n));
        return -EINVAL;
    }
    *(uint32_t *)field = (uint32_t)v;
    return 0;
}

static const struct conf_key listener_limit_keys[] = {
    {.name = "max_header_bytes",
     .set = conf_set_size,
     .off = offsetof(struct conf_listener, max_header_bytes),
     .min = 1 * KIB,
     .max = 1 * MIB},
    {.name = "max_body_bytes",
     .set = conf_set_size,
     .off = offsetof(struct conf_listener, max_body_bytes),
     .max = 64 * GIB},
    {.name = "per_ip_connections",
     .set = conf_set_u32,
     .off = offsetof(struct conf_listener, per_ip_connections),
     .max = 1000000},
    {.name = "per_ip_rate", .set = set_rate, .off = offsetof(struct conf_listener, per_ip_rate)},
    {.name = NULL},
};

static const struct conf_key listener_keys[] = {
    {.name = "name",
     .set = conf_set_name,
     .off = offsetof(struct conf_listener, name),
     .flags = CONF_K_REQUIRED},
    {.name = "bind",
     .set = conf_set_addr,
     .off = offsetof(struct conf_listener, bind),
     .flags = CONF_K_REQUIRED},
    {.name = "protocol",
     .set = conf_set_enum,
     .off = offsetof(struct conf_listener, protocol),
     .arg = protocols},
    {.name = "tls", .set = set_tls, .off = offsetof(struct conf_listener, tls)},
    {.name = "timeouts", .set = conf_set_map, .arg = listener_timeout_keys},
    {.name = "limits", .set = conf_set_map, .arg = listener_limit_keys},
    {.name = "routes", .set = set_routes},
    {.name = "cluster", .set = conf_set_name, .off = offsetof(struct conf_listener, cluster)},
    {.name = "hash_key", .set = set_hash_key, .off = offsetof(struct conf_listener, hash_key)},
    {.name = NULL},
};

static void load_listener(struct conf_ctx *x, const struct conf_node *n, struct conf_listener *l)
{
    struct conf_seen seen[CONF_MAX_KEYS];

    l->pos = n->pos;
    l->protocol = CONF_PROTO_HTTP;
    l->header_timeout_ms = 10 * SEC;
    l->idle_timeout_ms = 60 * SEC;
    l->body_timeout_ms = 30 * SEC;
    l->max_header_bytes = 16 * KIB;
    l->max_body_bytes = 10 * MIB;
    l->cluster_idx = -1;
    if (conf_map(x, n, l, listener_keys, seen) < 0)
        return;

    const struct conf_seen *nm = conf_seen_get(listener_keys, seen, "name");
    const struct conf_seen *bi = conf_seen_get(listener_keys, seen, "bind");
    const struct conf_seen *pr = conf_seen_get(listener_keys, seen, "protocol");
    const struct conf_seen *ro = conf_seen_get(listener_keys, seen, "routes");
    const struct conf_seen *cl = conf_seen_get(listener_keys, seen, "cluster");
    const struct conf_seen *hk = conf_seen_get(listener_keys, seen, "hash_key");
    l->name_pos = nm->key ? nm->val->pos : n->pos;
    l->bind_pos = bi->key ? bi->val->pos : n->pos;
    if (cl->key)
        l->cluster_pos = cl->val->pos;
    if (hk->key)
        l->hash_key_pos = hk->val->pos;
    if (pr->bad)
        return; /* which rules apply is unknown */

    if (l->protocol == CONF_PROTO_HTTP) {
        if (cl->key)
            conf_err(x, cl->key->pos,
                     "an http listener sends requests through routes, e.g. routes: "
                     "[ { cluster: NAME } ]; 'cluster' is for tcp listeners");
        if (hk->key)
            conf_err(x, hk->key->pos, "an http listener sets hash_key on each route");
        if (!ro->key)
            conf_err(x, n->pos,
                     "an http listener needs routes, e.g. routes: [ { cluster: NAME } ]");
    } else if (l->protocol == CONF_PROTO_REDIS) {
        if (ro->key)
            conf_err(x, ro->key->pos,
                     "a redis listener has no routes: each command goes to the server of its "
                     "'cluster' that owns the command's key");
        if (!cl->key)
            conf_err(x, n->pos, "a redis listener needs 'cluster'");
        if (hk->key)
            conf_err(x, hk->key->pos,
                     "a redis listener hashes each command's key ({hash tag} honoured): it "
                     "takes no hash_key");
    } else {
        if (ro->key)
            conf_err(x, ro->key->pos,
                     "a tcp listener has no routes: it forwards every connection to its "
                     "'cluster'");
        if (!cl->key)
            conf_err(x, n->pos, "a tcp listener needs 'cluster'");
        if (hk->key && !hk->bad && l->hash_key.kind != CONF_HASH_CLIENT_IP) {
            size_t mark = conf_path_push(x, ".hash_key");
            conf_err(x, hk->val->pos,
                     "a tcp listener can only hash client_ip (a tcp stream has no headers, "
                     "cookies or paths)");
            conf_path_pop(x, mark);
            /* Reported: keep the validator from adding its own complaint about it. */
            free(l->hash_key.name);
            l->hash_key = (struct conf_hash_key){CONF_HASH_NONE, NULL};
        }
    }
}

int conf_set_listeners(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    struct conf *c = field;
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of listeners"))
        return -EINVAL;
    if (n->nkids == 0) {
        conf_err(x, n->pos, "at least one listener is needed");
        return -EINVAL;
    }
    c->listeners = calloc(n->nkids, sizeof(*c->listeners));
    if (!c->listeners) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    c->nlisteners = n->nkids;
    for (size_t i = 0; i < n->nkids; i++) {
        size_t mark = conf_path_push(x, "[%zu]", i);
        c->listeners[i].cluster_idx = -1;
        if (!n->kids[i]->bad)
            load_listener(x, n->kids[i], &c->listeners[i]);
        conf_path_pop(x, mark);
    }
    return 0;
}

/* For conf_keys_each() (keys.c): the tables this file's setters map themselves. */
const struct conf_key_root conf_roots_listener[] = {
    {"listeners[]", listener_keys},
    {"listeners[].tls", tls_keys},
    {"listeners[].tls.certificates[]", cert_keys},
    {"listeners[].routes[]", route_keys},
    {"listeners[].routes[].match", match_keys},
    {"listeners[].routes[].enqueue", enqueue_keys},
    {"listeners[].routes[].redirect", redirect_keys},
    {"listeners[].routes[].cache", cache_keys},
    {NULL, NULL},
};
