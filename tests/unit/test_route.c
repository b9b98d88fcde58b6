/*
 * The route decision (lb/route/route.c) and `explain` (lb/admin/explain.c) agree: every row
 * of one table (a listener of one config, a raw request, the expected outcome) goes through
 * the data path's steps (route_parse as client_on_header parses, route_decide, the snapshot
 * lookup and route_static_miss as client_dispatch makes them) and through admin_explain,
 * whose JSON must say the same: answer, Allow, close, route, cluster, hash key, and for a
 * hash key the same server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/cluster/balance.h"
#include "lb/core/runtime.h"
#include "lb/route/route.h"
#include "tools/ctl_json.c"

#define CLIENT_HASH 0x1234567890abcdefull /* what the data path would hash from an address */

/* The routes are numbered as rows name them; %s is the temp dir holding the snapshots. */
static const char t_conf_fmt[] =
    "global: { workers: 1, redis: { nodes: [127.0.0.1:6379] } }\n"
    "listeners:\n"
    "  - name: web\n"
    "    bind: 127.0.0.1:8080\n"
    "    limits: { max_body_bytes: 1k }\n"
    "    routes:\n"
    "      - match: { host: api.example.com, path_prefix: /orders, methods: [GET, HEAD] }  # 0\n"
    "        cluster: ring\n"
    "        hash_key: header:X-User-Id\n"
    "      - match: { host: api.example.com, path_prefix: /orders, methods: [DELETE] }  # 1\n"
    "        cluster: app\n"
    "      - { match: { path_prefix: /snap/ }, static: catalog }  # 2\n"
    "      - { match: { path_prefix: /bare/ }, static: bare }  # 3\n"
    "      - { match: { path_prefix: /hsnap/ }, static: hashed }  # 4\n"
    "      - { match: { path_prefix: /c/ }, cluster: ring, hash_key: cookie:sid }  # 5\n"
    "      - { match: { path_prefix: /p/ }, cluster: ring, hash_key: path }  # 6\n"
    "      - { match: { path_prefix: /u/ }, cluster: ring, hash_key: uri }  # 7\n"
    "      - { match: { path_prefix: /ip/ }, cluster: ring }  # 8\n"
    "      - match: { path_prefix: /q/, methods: [POST] }  # 9\n"
    "        enqueue: { redis_list: q }\n"
    "      - { match: { path_prefix: /ro/, methods: [GET] }, cluster: app }  # 10\n"
    "      - { match: { path_prefix: /r/ }, redirect: { scheme: https, port: 8443 } }  # 11\n"
    "      - { match: { path_prefix: /moved/ }, redirect: { host: new.example.com, code: 301 } }"
    "  # 12\n"
    "      - { match: { path_prefix: /p443/ }, redirect: { scheme: https, port: 443, code: 302 } }"
    "  # 13\n"
    "  - name: small\n"
    "    bind: 127.0.0.1:8081\n"
    "    limits: { max_header_bytes: 1k, max_body_bytes: 0 }\n"
    "    routes:\n"
    "      - cluster: app\n"
    "clusters:\n"
    "  app:\n"
    "    servers: [ { name: a1, address: 127.0.0.1:9001 }, { name: a2, address: "
    "127.0.0.1:9002 } ]\n"
    "  ring:\n"
    "    balance: ring_hash\n"
    "    servers: [ { name: r1, address: 127.0.0.1:9011 }, { name: r2, address: "
    "127.0.0.1:9012 },\n"
    "               { name: r3, address: 127.0.0.1:9013 } ]\n"
    "static:\n"
    "  catalog: { dir: %s/catalog, fallback: app }\n"
    "  bare: { dir: %s/bare }\n"
    "  hashed: { dir: %s/catalog, fallback: ring }\n";

#define KEY_CLIENT ((const char *)1) /* the key is the client's address */
#define CONNECT_ALLOW "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"

struct row {
    const char *listener;
    const char *req;
    int status;        /* 0: the request goes on (to a cluster or a snapshot) */
    const char *allow; /* 405: the Allow value */
    bool close;
    int route;            /* -1: none */
    const char *cluster;  /* where it goes (also named with 413), or NULL */
    const char *key;      /* hashed: the key's text or KEY_CLIENT; NULL: no hash */
    const char *snapshot; /* static routes: found, miss, bad path */
    const char *location; /* redirect routes: the Location field's value */
};

#define H "Host: h\r\n"
#define API "Host: api.example.com\r\n"

static const struct row rows[] = {
    /* Host: with a port, any letter case; path prefix; methods. */
    {"web", "GET /orders/1 HTTP/1.1\r\nHost: API.Example.com:8080\r\nX-User-Id: alice\r\n\r\n", 0,
     NULL, false, 0, "ring", "alice", NULL, NULL},
    {"web", "GET http://api.example.com/orders/9 HTTP/1.1\r\n" API "X-User-Id: bob\r\n\r\n", 0,
     NULL, false, 0, "ring", "bob", NULL, NULL},
    {"web", "HEAD /orders HTTP/1.1\r\nHost: api.EXAMPLE.com\r\n\r\n", 0, NULL, false, 0, "ring",
     KEY_CLIENT, NULL, NULL},
    {"web", "GET /orders HTTP/1.1\r\nHost: other.example.com\r\n\r\n", 404, NULL, false, -1, NULL,
     NULL, NULL, NULL},
    {"web", "GET /Orders HTTP/1.1\r\n" API "\r\n", 404, NULL, false, -1, NULL, NULL, NULL, NULL},
    {"web", "DELETE /orders/1 HTTP/1.1\r\n" API "\r\n", 0, NULL, false, 1, "app", NULL, NULL, NULL},
    {"web", "PUT /orders HTTP/1.1\r\n" API "\r\n", 405, "GET, HEAD, DELETE", false, -1, NULL, NULL,
     NULL, NULL},
    /* A body that follows an answer would be read as the next request: close. */
    {"web", "POST /orders/1 HTTP/1.1\r\n" API "Content-Length: 3\r\n\r\n", 405, "GET, HEAD, DELETE",
     true, -1, NULL, NULL, NULL, NULL},
    {"web", "POST /orders HTTP/1.1\r\n" API "Transfer-Encoding: chunked\r\n\r\n", 405,
     "GET, HEAD, DELETE", true, -1, NULL, NULL, NULL, NULL},
    {"web", "PURGE /orders HTTP/1.1\r\n" API "\r\n", 405, "GET, HEAD, DELETE", false, -1, NULL,
     NULL, NULL, NULL},
    {"web", "POST /ro/x HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 405, "GET", true, -1, NULL,
     NULL, NULL, NULL},
    {"web", "GET /nope HTTP/1.1\r\n" H "Connection: close\r\n\r\n", 404, NULL, true, -1, NULL, NULL,
     NULL, NULL},
    {"web", "GET /nope HTTP/1.0\r\n\r\n", 404, NULL, true, -1, NULL, NULL, NULL, NULL},
    /* CONNECT is refused before any route, whatever the routes say. */
    {"web", "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n", 405,
     CONNECT_ALLOW, true, -1, NULL, NULL, NULL, NULL},
    {"small", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405, CONNECT_ALLOW, true, -1, NULL,
     NULL, NULL, NULL},
    /* max_body_bytes: a declared length over it is 413 before any server is asked; a
     * chunked body is not declared. */
    {"web", "POST /ip/x HTTP/1.1\r\n" H "Content-Length: 1025\r\n\r\n", 413, NULL, true, 8, "ring",
     NULL, NULL, NULL},
    {"web", "POST /ip/x HTTP/1.1\r\n" H "Content-Length: 1024\r\n\r\n", 0, NULL, false, 8, "ring",
     KEY_CLIENT, NULL, NULL},
    {"web", "POST /ip/x HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", 0, NULL, false, 8,
     "ring", KEY_CLIENT, NULL, NULL},
    {"small", "POST /x HTTP/1.1\r\n" H "Content-Length: 99999999999\r\n\r\n", 0, NULL, false, 0,
     "app", NULL, NULL, NULL},
    /* Static routes: a snapshot answers; a miss goes to the fallback (413 there too), or is
     * 404 without one. */
    {"web", "GET /snap/a.json HTTP/1.1\r\n" H "\r\n", 0, NULL, false, 2, NULL, NULL, "found", NULL},
    {"web", "POST /snap/a.json HTTP/1.1\r\n" H "Content-Length: 2000\r\n\r\n", 0, NULL, false, 2,
     NULL, NULL, "found", NULL},
    {"web", "GET /snap/nothing.json HTTP/1.1\r\n" H "\r\n", 0, NULL, false, 2, "app", NULL, "miss",
     NULL},
    {"web", "POST /snap/nothing.json HTTP/1.1\r\n" H "Content-Length: 2000\r\n\r\n", 413, NULL,
     true, 2, "app", NULL, "miss", NULL},
    {"web", "GET /snap/%zz HTTP/1.1\r\n" H "\r\n", 400, NULL, false, 2, NULL, NULL, "bad path",
     NULL},
    {"web", "GET /bare/nothing.json HTTP/1.1\r\n" H "\r\n", 404, NULL, false, 3, NULL, NULL, "miss",
     NULL},
    /* Its body unread, a 404 that kept the connection would serve the body as a request. */
    {"web", "POST /bare/x HTTP/1.1\r\n" H "Content-Length: 34\r\n\r\n", 404, NULL, true, 3, NULL,
     NULL, "miss", NULL},
    {"web", "GET /hsnap/nothing.json HTTP/1.1\r\n" H "\r\n", 0, NULL, false, 4, "ring", KEY_CLIENT,
     "miss", NULL},
    /* Hash keys. */
    {"web", "GET /c/x HTTP/1.1\r\n" H "Cookie: a=1; sid=s42; b=2\r\n\r\n", 0, NULL, false, 5,
     "ring", "s42", NULL, NULL},
    {"web", "GET /c/x HTTP/1.1\r\n" H "Cookie: a=1\r\nCookie: sid=late\r\n\r\n", 0, NULL, false, 5,
     "ring", "late", NULL, NULL},
    {"web", "GET /c/x HTTP/1.1\r\n" H "Cookie: a=1\r\n\r\n", 0, NULL, false, 5, "ring", KEY_CLIENT,
     NULL, NULL},
    {"web", "GET /p/abc?x=1 HTTP/1.1\r\n" H "\r\n", 0, NULL, false, 6, "ring", "/p/abc", NULL,
     NULL},
    {"web", "GET /u/abc?x=1 HTTP/1.1\r\n" H "\r\n", 0, NULL, false, 7, "ring", "/u/abc?x=1", NULL,
     NULL},
    {"web", "GET /ip/ HTTP/1.1\r\n" H "X-User-Id: ignored\r\n\r\n", 0, NULL, false, 8, "ring",
     KEY_CLIENT, NULL, NULL},
    /* Enqueue: to lb's Redis cluster; a declared body over the route's max_body (64k by
     * default) is refused before it is read. */
    {"web", "POST /q/x HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 0, NULL, false, 9,
     CONF_REDIS_CLUSTER, NULL, NULL, NULL},
    {"web", "POST /q/x HTTP/1.1\r\n" H "Content-Length: 65537\r\n\r\n", 413, NULL, true, 9, NULL,
     NULL, NULL, NULL},
    /* Redirects keep the path and query; the port is the route's, unless the scheme's
     * default; the Host's port goes. An unread body closes. */
    {"web", "GET /r/a?b=1 HTTP/1.1\r\nHost: h:8080\r\n\r\n", 308, NULL, false, 11, NULL, NULL, NULL,
     "https://h:8443/r/a?b=1"},
    {"web", "POST /r/x HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\n", 308, NULL, true, 11, NULL, NULL,
     NULL, "https://h:8443/r/x"},
    {"web", "GET http://api.example.com/r/z?q HTTP/1.1\r\n" API "\r\n", 308, NULL, false, 11, NULL,
     NULL, NULL, "https://api.example.com:8443/r/z?q"},
    {"web", "GET /moved/%41 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 301, NULL, false, 12, NULL, NULL,
     NULL, "http://new.example.com/moved/%41"},
    {"web", "HEAD /p443/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 302, NULL, false, 13, NULL, NULL,
     NULL, "https://[::1]/p443/"},
    {"web", "GET /r/x HTTP/1.0\r\n\r\n", 400, NULL, true, 11, NULL, NULL, NULL, NULL},
    /* The parser's answers, with the listener's own limits. */
    {"web", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, NULL, true, -1, NULL, NULL, NULL,
     NULL},
    {"web", "GET /x HTTP/1.2\r\n" H "\r\n", 505, NULL, true, -1, NULL, NULL, NULL, NULL},
    {"small", "GET /x HTTP/1.1\r\n" H "X-Pad: @1100\r\n\r\n", 431, NULL, true, -1, NULL, NULL, NULL,
     NULL},
    {"web", "GET /ip/x HTTP/1.1\r\n" H "X-Pad: @1100\r\n\r\n", 0, NULL, false, 8, "ring",
     KEY_CLIENT, NULL, NULL},
};

struct t_rt {
    struct lb_runtime rt;
    struct conf_diags d;
    char dir[64];
};

static struct t_rt *T;

static void put_file(const char *dir, const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct t_rt *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "/tmp/test_route.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    char p[128];
    snprintf(p, sizeof(p), "%s/catalog", t->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    put_file(p, "a.json", "{\"a\":1}\n");
    snprintf(p, sizeof(p), "%s/bare", t->dir);
    assert_int_equal(mkdir(p, 0700), 0);

    char text[4096];
    int n = snprintf(text, sizeof(text), t_conf_fmt, t->dir, t->dir, t->dir);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    struct lb_runtime *rt = &t->rt;
    rt->conf = conf_load_buf("t.yaml", text, (size_t)n, &t->d);
    if (!rt->conf)
        conf_diags_print(&t->d, "t.yaml", stderr);
    assert_non_null(rt->conf);
    rt->clusters = calloc(rt->conf->nclusters, sizeof(*rt->clusters));
    assert_non_null(rt->clusters);
    for (size_t i = 0; i < rt->conf->nclusters; i++)
        assert_int_equal(cl_cluster_init(&rt->clusters[i], &rt->conf->clusters[i], NULL), 0);
    rt->snap_slots = calloc(rt->conf->nstatics, sizeof(*rt->snap_slots));
    assert_non_null(rt->snap_slots);
    for (size_t i = 0; i < rt->conf->nstatics; i++) {
        snap_slot_init(&rt->snap_slots[i]);
        rt->nsnap_slots = i + 1;
        struct snap_set *set = NULL;
        struct lb_err err = {0};
        assert_int_equal(snap_set_load(&rt->conf->statics[i], &set, &err), 0);
        snap_slot_publish(&rt->snap_slots[i], set);
    }
    T = t;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t_rt *t = *state;
    struct lb_runtime *rt = &t->rt;
    for (size_t i = 0; i < rt->nsnap_slots; i++)
        snap_slot_destroy(&rt->snap_slots[i]);
    free(rt->snap_slots);
    for (size_t i = 0; i < rt->conf->nclusters; i++)
        cl_cluster_destroy(&rt->clusters[i]);
    free(rt->clusters);
    conf_free(rt->conf);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
    free(t);
    return 0;
}

/* The row's request as bytes: "@N" stands for N 'x's (long fields). */
static size_t expand(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '@') {
            char *end;
            unsigned long n = strtoul(p + 1, &end, 10);
            assert_true(o + n < cap);
            memset(out + o, 'x', n);
            o += n;
            p = end - 1;
            continue;
        }
        assert_true(o + 1 < cap);
        out[o++] = *p;
    }
    return o;
}

static const struct conf_listener *listener(const char *name)
{
    for (size_t i = 0; i < T->rt.conf->nlisteners; i++)
        if (!strcmp(T->rt.conf->listeners[i].name, name))
            return &T->rt.conf->listeners[i];
    fail_msg("no listener %s", name);
    return NULL;
}

/* What came out of one side, in the row's terms. */
struct outcome {
    int status;
    char allow[ROUTE_ALLOW_MAX];
    bool close;
    int route;
    char cluster[CONF_NAME_MAX]; /* "" none */
    const char *key;             /* KEY_CLIENT, text, or NULL */
    char key_text[256];
    char snapshot[16];
    char server[CONF_NAME_MAX]; /* hashed, with a key: the first pick */
    char location[256];
    char json[2048]; /* explain: its answer, for the failure message */
};

static void check(const struct row *w, const struct outcome *o, const char *side, size_t i)
{
    const char *what = NULL;
    if (o->status != w->status)
        what = "status";
    else if (strcmp(o->allow, w->allow ? w->allow : ""))
        what = "allow";
    else if (o->close != w->close)
        what = "close";
    else if (o->route != w->route)
        what = "route";
    else if (strcmp(o->cluster, w->cluster ? w->cluster : ""))
        what = "cluster";
    else if ((o->key == NULL) != (w->key == NULL) ||
             (o->key == KEY_CLIENT) != (w->key == KEY_CLIENT))
        what = "key kind";
    else if (w->key && w->key != KEY_CLIENT && strcmp(o->key_text, w->key))
        what = "key";
    else if (strcmp(o->snapshot, w->snapshot ? w->snapshot : ""))
        what = "snapshot";
    else if (strcmp(o->location, w->location ? w->location : ""))
        what = "location";
    if (what)
        fail_msg("row %zu (%s: %.*s): %s says %s: status %d allow '%s' close %d route %d "
                 "cluster '%s' key %s snapshot '%s' location '%s' %s",
                 i, w->listener, (int)strcspn(w->req, "\r"), w->req, side, what, o->status,
                 o->allow, o->close, o->route, o->cluster,
                 o->key == KEY_CLIENT ? "(client)"
                 : o->key             ? o->key_text
                                      : "(none)",
                 o->snapshot, o->location, o->json);
}

/* The first server a pick with @key gives, as explain's "server". */
static void first_pick(int ci, uint64_t key, char *out)
{
    struct cl_cluster *cl = &T->rt.clusters[ci];
    struct cl_cluster_wstate ws;
    assert_int_equal(cl_cluster_wstate_init(&ws, cl, 1), 0);
    int s = cl_cluster_pick(cl, &ws, key, NULL);
    assert_true(s >= 0);
    snprintf(out, CONF_NAME_MAX, "%s", cl->servers[s].cf->name);
    cl_cluster_wstate_free(&ws);
}

/* The data path's steps: client_on_header's parse, client_dispatch's decision and lookup. */
static void data_path(const struct conf_listener *l, const char *buf, size_t len, struct outcome *o)
{
    static struct http_req req;
    memset(o, 0, sizeof(*o));
    o->route = -1;
    int rc = route_parse(l, buf, len, &req);
    assert_int_not_equal(rc, HTTP_AGAIN);
    if (rc < 0) {
        o->status = -rc;
        o->close = true;
        return;
    }
    struct route_decision d;
    int status = route_decide(T->rt.conf, l, buf, &req, CLIENT_HASH, &d);
    assert_int_equal(status, d.answer.status);
    o->route = d.route;
    bool found = false;
    if (!status && d.set >= 0) {
        const struct conf_route *r = &l->routes[d.route];
        size_t pl = r->path_prefix ? strlen(r->path_prefix) : 0;
        struct snap_set *set = snap_slot_get(&T->rt.snap_slots[d.set]);
        char pbuf[SNAP_PATH_MAX];
        const struct snap_entry *e = NULL;
        int lr = set ? snap_lookup(set, buf + req.path.off + pl, req.path.len - pl, pbuf,
                                   sizeof(pbuf), &e)
                     : -ENOENT;
        snap_set_unref(set);
        found = lr == 0;
        snprintf(o->snapshot, sizeof(o->snapshot), "%s",
                 found           ? "found"
                 : lr == -EINVAL ? "bad path"
                                 : "miss");
        if (!found)
            status = route_static_miss(&d, &req, lr);
    }
    o->status = status;
    o->close = d.answer.close;
    if (d.action == CONF_ACT_REDIRECT && status < 400) {
        const struct route_location *loc = &d.location;
        snprintf(o->location, sizeof(o->location), "%s://%.*s%s%.*s", loc->scheme,
                 (int)loc->host_len, loc->host, loc->port, (int)loc->uri_len, loc->uri);
    }
    snprintf(o->allow, sizeof(o->allow), "%s", d.answer.allow);
    if (status == 405)
        assert_true(!strncmp(d.answer.hdr, "Allow: ", 7) &&
                    !strcmp(d.answer.hdr + 7 + strlen(d.answer.allow), "\r\n"));
    else
        assert_string_equal(d.answer.hdr, "");
    if (found || (status && status != 413) || d.cluster < 0)
        return;
    snprintf(o->cluster, sizeof(o->cluster), "%s", T->rt.conf->clusters[d.cluster].name);
    if (status || !d.hashed) {
        assert_int_equal(d.key_hash, 0);
        return;
    }
    if (d.key) {
        snprintf(o->key_text, sizeof(o->key_text), "%.*s", (int)d.key_len, d.key);
        o->key = o->key_text;
        assert_true(d.key_hash == lb_hash64(d.key, d.key_len, 0));
        first_pick(d.cluster, d.key_hash, o->server);
    } else {
        o->key = KEY_CLIENT;
        assert_true(d.key_hash == CLIENT_HASH);
    }
}

/* explain's JSON for the row's listener, in the same terms. */
static void explain(const char *lname, const char *buf, size_t len, struct outcome *o)
{
    struct admin_cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.verb = ADMIN_EXPLAIN;
    assert_true(len <= sizeof(cmd.request));
    memcpy(cmd.request, buf, len);
    cmd.request_len = len;
    struct lb_jbuf j;
    lb_jbuf_init(&j, ADMIN_ANSWER_MAX);
    assert_int_equal(admin_explain(&T->rt, &cmd, &j), 0);
    char jerr[128];
    struct ctl_json *v = ctl_json_parse(j.p, j.len, jerr, sizeof(jerr));
    if (!v)
        fail_msg("bad JSON (%s): %s", jerr, j.p);
    memset(o, 0, sizeof(*o));
    o->route = -1;
    snprintf(o->json, sizeof(o->json), "%s", j.p);
    const struct ctl_json *l = NULL;
    if (ctl_json_get(v, "answer")) {
        /* Refused before any listener: every listener would refuse it so. */
        o->status = (int)ctl_json_num(v, "answer", 0);
        o->close = true;
        goto out;
    }
    const struct ctl_json *ls = ctl_json_get(v, "listeners");
    for (l = ls ? ls->child : NULL; l; l = l->next)
        if (!strcmp(ctl_json_str(l, "listener", ""), lname))
            break;
    if (!l)
        fail_msg("explain has no listener %s: %s", lname, j.p);
    o->status = (int)ctl_json_num(l, "answer", 0);
    if (o->status && !ctl_json_get(l, "close"))
        fail_msg("an answer without \"close\": %s", j.p);
    o->close = ctl_json_bool(l, "close", false);
    snprintf(o->allow, sizeof(o->allow), "%s", ctl_json_str(l, "allow", ""));
    const struct ctl_json *r = ctl_json_get(l, "route");
    assert_non_null(r);
    o->route = r->type == CTL_JSON_NUM ? (int)r->num : -1;
    snprintf(o->cluster, sizeof(o->cluster), "%s", ctl_json_str(l, "cluster", ""));
    snprintf(o->snapshot, sizeof(o->snapshot), "%s", ctl_json_str(l, "snapshot", ""));
    snprintf(o->location, sizeof(o->location), "%s", ctl_json_str(l, "location", ""));
    const struct ctl_json *k = ctl_json_get(l, "key");
    if (k && k->type == CTL_JSON_STR) {
        snprintf(o->key_text, sizeof(o->key_text), "%s", k->str);
        o->key = o->key_text;
        snprintf(o->server, sizeof(o->server), "%s", ctl_json_str(l, "server", ""));
    } else if (k) {
        o->key = KEY_CLIENT;
    }
out:
    ctl_json_free(v);
    lb_jbuf_free(&j);
}

static void test_table(void **state)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        char buf[ADMIN_EXPLAIN_MAX];
        size_t len = expand(w->req, buf, sizeof(buf));
        struct outcome dp, ex;
        data_path(listener(w->listener), buf, len, &dp);
        check(w, &dp, "the data path", i);
        explain(w->listener, buf, len, &ex);
        check(w, &ex, "explain", i);
        if (strcmp(dp.server, ex.server))
            fail_msg("row %zu: the data path picks %s, explain says %s", i, dp.server, ex.server);
    }
}

/* A config built in code, not from YAML: the decision needs nothing but the structs. */
static void test_built_listener(void **state)
{
    struct conf_cluster cl = {.name = "c", .balance = CONF_BAL_MAGLEV};
    struct conf_route routes[] = {
        {.has_match = true,
         .host = "a.test",
         .methods = CONF_M_GET | CONF_M_TRACE,
         .action = CONF_ACT_CLUSTER,
         .target_idx = 0,
         .hash_key = {.kind = CONF_HASH_HEADER, .name = "x-k"}},
    };
    struct conf_listener l = {
        .name = "b", .max_header_bytes = 16384, .routes = routes, .nroutes = 1};
    struct conf cf = {.listeners = &l, .nlisteners = 1, .clusters = &cl, .nclusters = 1};
    static struct http_req req;
    struct route_decision d;

    const char *a = "GET / HTTP/1.1\r\nHost: A.test:1\r\nX-K: v\r\n\r\n";
    assert_true(route_parse(&l, a, strlen(a), &req) > 0);
    assert_int_equal(route_decide(&cf, &l, a, &req, 7, &d), 0);
    assert_int_equal(d.route, 0);
    assert_int_equal(d.cluster, 0);
    assert_true(d.hashed && d.key_len == 1 && d.key[0] == 'v');

    const char *b = "OPTIONS / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    assert_true(route_parse(&l, b, strlen(b), &req) > 0);
    assert_int_equal(route_decide(&cf, &l, b, &req, 7, &d), 405);
    assert_string_equal(d.answer.allow, "GET, TRACE");
    assert_string_equal(d.answer.hdr, "Allow: GET, TRACE\r\n");
    assert_false(d.answer.close);

    const char *c = "GET / HTTP/1.1\r\nHost: b.test\r\n\r\n";
    assert_true(route_parse(&l, c, strlen(c), &req) > 0);
    assert_int_equal(route_decide(&cf, &l, c, &req, 7, &d), 404);
    assert_int_equal(d.route, -1);
    assert_int_equal(d.cluster, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_built_listener),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
