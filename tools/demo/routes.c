/*
 * The endpoints: / (and unknown paths), /healthz, /admin/health/down|up, /status/NNN,
 * /delay/MS, /bytes/N, /chunked/N, /echo, /headers, /stats. `demo-backend -h` lists them for
 * people; tests/e2e/demo_backend.sh checks each one.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tools/demo/demo.h"

#define DELAY_MAX_MS 600000
#define BYTES_MAX (1ULL << 40)

static bool path_is(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* If @p starts with @prefix, points *rest at what follows it. */
static bool path_after(const char *p, size_t n, const char *prefix, const char **rest,
                       size_t *rest_len)
{
    size_t pl = strlen(prefix);
    if (n < pl || memcmp(p, prefix, pl) != 0)
        return false;
    *rest = p + pl;
    *rest_len = n - pl;
    return true;
}

static bool health_is_down(void)
{
    if (atomic_load(&g_health_down))
        return true;
    return g_health_file && access(g_health_file, F_OK) == 0;
}

void demo_respond_name(struct conn *c)
{
    char body[NAME_MAX_LEN + 2];
    int n = snprintf(body, sizeof(body), "%s\n", g_name);
    demo_respond(c, 200, "text/plain", body, (size_t)n);
}

/* The path of the request target in @head: absolute-form (what a client sends to a forward
 * proxy) keeps only its path, and the query is left out. */
static void target_path(const char *head, const struct req *r, const char **path, size_t *len)
{
    const char *p = head + r->target_off;
    size_t n = r->target_len;
    const char *scheme = n > 3 ? memmem(p, n, "://", 3) : NULL;
    if (scheme && p[0] != '/') {
        const char *auth = scheme + 3;
        const char *slash = memchr(auth, '/', n - (size_t)(auth - p));
        n = slash ? n - (size_t)(slash - p) : 1;
        p = slash ? slash : "/";
    }
    const char *query = memchr(p, '?', n);
    if (query)
        n = (size_t)(query - p);
    *path = p;
    *len = n;
}

/* /status/NNN: an answer with that status and NNN as its body (none for 204 and 304). */
static void route_status(struct conn *c, const char *arg, size_t arg_len)
{
    uint64_t v;
    if (arg_len != 3 || demo_parse_u64(arg, arg_len, 599, &v) < 0 || v < 200) {
        demo_respond_text(c, 400, "usage: /status/NNN with NNN in 200..599\n");
        return;
    }
    char text[8];
    int tl = snprintf(text, sizeof(text), "%u\n", (unsigned)v);
    demo_respond(c, (int)v, "text/plain", text, (size_t)tl);
}

/* /delay/MS: the name, MS milliseconds later (the worker's timer answers). */
static void route_delay(struct worker *w, struct conn *c, const char *arg, size_t arg_len)
{
    uint64_t v;
    if (demo_parse_u64(arg, arg_len, DELAY_MAX_MS, &v) < 0)
        demo_respond_text(c, 400, "usage: /delay/MS with MS at most 600000\n");
    else if (v == 0)
        demo_respond_name(c);
    else
        demo_timer_set(w, c, WAIT_DELAY, demo_now_ms() + v);
}

/* /bytes/N and /chunked/N: N bytes of PATTERN, produced by demo_gen_fill(). */
static void route_bytes(struct conn *c, const char *arg, size_t arg_len, bool chunked)
{
    uint64_t v;
    if (demo_parse_u64(arg, arg_len, BYTES_MAX, &v) < 0) {
        demo_respond_text(c, 400, "usage: /bytes/N or /chunked/N with N at most 2^40\n");
        return;
    }
    demo_respond_head(c, 200, "application/octet-stream", chunked ? BODY_CHUNKED : (int64_t)v);
    if (!c->req.is_head && (v > 0 || chunked)) {
        c->gen_active = true;
        c->gen_chunked = chunked;
        c->gen_left = v;
        c->gen_pos = 0;
    }
}

/* /stats: the process-wide counters as JSON. */
static void route_stats(struct conn *c)
{
    char json[256];
    int jl = snprintf(json, sizeof(json),
                      "{\"name\":\"%s\",\"requests\":%" PRIuFAST64 ",\"connections\":%" PRIuFAST64
                      ",\"active\":%" PRIuFAST64 ",\"healthy\":%s}\n",
                      g_name, atomic_load(&g_requests), atomic_load(&g_connections),
                      atomic_load(&g_active), health_is_down() ? "false" : "true");
    demo_respond(c, 200, "application/json", json, (size_t)jl);
}

/* Answers one complete request. @head is its head (c->req.head_len bytes), @body its decoded
 * body. A /delay answer is left to the worker's timer, a /bytes or /chunked body to
 * demo_gen_fill(); in both cases no later request is parsed until that one is done. */
void demo_dispatch(struct worker *w, struct conn *c, const char *head, const char *body,
                   size_t body_len)
{
    struct req *r = &c->req;
    const char *p, *arg;
    size_t n, arg_len;
    target_path(head, r, &p, &n);

    if (path_is(p, n, "/healthz")) {
        if (health_is_down())
            demo_respond_text(c, 500, "down\n");
        else
            demo_respond_text(c, 200, "ok\n");
    } else if (path_is(p, n, "/admin/health/down")) {
        atomic_store(&g_health_down, true);
        demo_respond_text(c, 200, "health: down\n");
    } else if (path_is(p, n, "/admin/health/up")) {
        atomic_store(&g_health_down, false);
        demo_respond_text(c, 200, "health: up\n");
    } else if (path_after(p, n, "/status/", &arg, &arg_len)) {
        route_status(c, arg, arg_len);
    } else if (path_after(p, n, "/delay/", &arg, &arg_len)) {
        route_delay(w, c, arg, arg_len);
    } else if (path_after(p, n, "/bytes/", &arg, &arg_len)) {
        route_bytes(c, arg, arg_len, false);
    } else if (path_after(p, n, "/chunked/", &arg, &arg_len)) {
        route_bytes(c, arg, arg_len, r->minor == 1); /* HTTP/1.0 cannot take chunks */
    } else if (path_is(p, n, "/echo")) {
        demo_respond(c, 200, "application/octet-stream", body, body_len);
    } else if (path_is(p, n, "/headers")) {
        demo_respond(c, 200, "text/plain", head, r->head_len);
    } else if (path_is(p, n, "/stats")) {
        route_stats(c);
    } else {
        demo_respond_name(c);
    }
}
