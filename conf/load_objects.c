/*
 * The loader for the named objects of a config: listeners (with their routes and TLS),
 * clusters (with servers, health checks and passive detection) and static snapshot sets. Each
 * object gets its defaults, then its table of keys (load.c's conf_map), then the rules that
 * involve several keys of that one object (one action per route, bounded_load only on a
 * hashing balancer...). Rules across objects, such as references, are validate.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- clusters ---- */

static const struct conf_enum_name balances[] = {
    {"round_robin", CONF_BAL_ROUND_ROBIN}, {"least_conn", CONF_BAL_LEAST_CONN},
    {"random_two", CONF_BAL_RANDOM_TWO},   {"maglev", CONF_BAL_MAGLEV},
    {"ring_hash", CONF_BAL_RING_HASH},     {NULL, 0},
};

static const struct conf_enum_name checks[] = {
    {"http", CONF_CHECK_HTTP},
    {"tcp", CONF_CHECK_TCP},
    {"none", CONF_CHECK_NONE},
    {NULL, 0},
};

static const struct conf_key server_keys[] = {
    {.name = "name",
     .set = conf_set_name,
     .off = offsetof(struct conf_server, name),
     .flags = CONF_K_REQUIRED},
    {.name = "address",
     .set = conf_set_addr,
     .off = offsetof(struct conf_server, addr),
     .flags = CONF_K_REQUIRED},
    {.name = "weight",
     .set = conf_set_u32,
     .off = offsetof(struct conf_server, weight),
     .min = 1,
     .max = 256},
    {.name = "backup", .set = conf_set_bool, .off = offsetof(struct conf_server, backup)},
    {.name = NULL},
};

static const struct conf_key health_keys[] = {
    {.name = "check",
     .set = conf_set_enum,
     .off = offsetof(struct conf_health, check),
     .arg = checks},
    {.name = "path", .set = conf_set_url_path, .off = offsetof(struct conf_health, path)},
    {.name = "host", .set = conf_set_str, .off = offsetof(struct conf_health, host)},
    {.name = "expect_status",
     .set = conf_set_int,
     .off = offsetof(struct conf_health, expect_status),
     .min = 100,
     .max = 599},
    {.name = "expect_body", .set = conf_set_text, .off = offsetof(struct conf_health, expect_body)},
    {.name = "interval",
     .set = conf_set_duration,
     .off = offsetof(struct conf_health, interval_ms),
     .min = 100,
     .max = HOUR},
    {.name = "timeout",
     .set = conf_set_duration,
     .off = offsetof(struct conf_health, timeout_ms),
     .min = 10,
     .max = HOUR},
    {.name = "rise",
     .set = conf_set_u32,
     .off = offsetof(struct conf_health, rise),
     .min = 1,
     .max = 100},
    {.name = "fall",
     .set = conf_set_u32,
     .off = offsetof(struct conf_health, fall),
     .min = 1,
     .max = 100},
    {.name = NULL},
};

static const struct conf_key passive_keys[] = {
    {.name = "consecutive_failures",
     .set = conf_set_u32,
     .off = offsetof(struct conf_passive, consecutive_failures),
     .min = 1,
     .max = 1000},
    {.name = "ejection",
     .set = conf_set_duration,
     .off = offsetof(struct conf_passive, ejection_ms),
     .min = 100,
     .max = HOUR},
    {.name = "max_ejection",
     .set = conf_set_duration,
     .off = offsetof(struct conf_passive, max_ejection_ms),
     .min = 100,
     .max = 24 * HOUR},
    {.name = "max_ejected_percent",
     .set = conf_set_u32,
     .off = offsetof(struct conf_passive, max_ejected_percent),
     .min = 1,
     .max = 100},
    {.name = NULL},
};

static const struct conf_key cluster_timeout_keys[] = {
    {.name = "connect",
     .set = conf_set_duration,
     .off = offsetof(struct conf_cluster, connect_timeout_ms),
     .min = 1,
     .max = HOUR},
    {.name = "response",
     .set = conf_set_duration,
     .off = offsetof(struct conf_cluster, response_timeout_ms),
     .min = 1,
     .max = 24 * HOUR},
    {.name = "idle",
     .set = conf_set_duration,
     .off = offsetof(struct conf_cluster, idle_timeout_ms),
     .min = 1,
     .max = 24 * HOUR},
    {.name = NULL},
};

static int set_health(struct conf_ctx *x, const struct conf_node *n, void *field,
                      const struct conf_key *k)
{
    struct conf_health *h = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    char a[24], b[24];
    if (conf_map(x, n, h, health_keys, seen) < 0)
        return -EINVAL;
    const struct conf_seen *t = conf_seen_get(health_keys, seen, "timeout");
    const struct conf_seen *iv = conf_seen_get(health_keys, seen, "interval");
    if (h->timeout_ms > h->interval_ms && !t->bad && !iv->bad) {
        conf_err(x, t->key ? t->val->pos : iv->val->pos,
                 "timeout %s is longer than interval %s: a probe must end before the next",
                 conf_fmt_duration(a, sizeof(a), h->timeout_ms),
                 conf_fmt_duration(b, sizeof(b), h->interval_ms));
        return -EINVAL;
    }
    return 0;
}

static int set_passive(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    struct conf_passive *p = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    char a[24], b[24];
    if (conf_map(x, n, p, passive_keys, seen) < 0)
        return -EINVAL;
    p->enabled = true;
    const struct conf_seen *mx = conf_seen_get(passive_keys, seen, "max_ejection");
    const struct conf_seen *ej = conf_seen_get(passive_keys, seen, "ejection");
    if (p->max_ejection_ms < p->ejection_ms && !mx->bad && !ej->bad) {
        conf_err(x, mx->key ? mx->val->pos : ej->val->pos,
                 "max_ejection %s is shorter than ejection %s",
                 conf_fmt_duration(a, sizeof(a), p->max_ejection_ms),
                 conf_fmt_duration(b, sizeof(b), p->ejection_ms));
        return -EINVAL;
    }
    return 0;
}

/* bounded_load: a plain decimal above 1.0. strtod alone would take "inf", "nan" and hex. */
static int set_ratio(struct conf_ctx *x, const struct conf_node *n, void *field,
                     const struct conf_key *k)
{
    const char *what = "a number above 1.0 and at most 100 (such as 1.25)";
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    size_t digits = 0, dots = 0;
    for (size_t i = 0; i < n->len; i++) {
        if (isdigit((unsigned char)n->str[i]))
            digits++;
        else if (n->str[i] == '.')
            dots++;
        else
            digits = 0, i = n->len; /* anything else: refuse */
    }
    double v = digits && dots <= 1 && digits + dots == n->len ? strtod(n->str, NULL) : 0;
    if (!(v > 1.0 && v <= 100.0)) {
        conf_err(x, n->pos, "expected %s, got '%s'", what, Q(q, n));
        return -EINVAL;
    }
    *(double *)field = v;
    return 0;
}

static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    for (uint64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

static uint64_t next_prime(uint64_t n)
{
    while (!is_prime(n))
        n++;
    return n;
}

struct server_dups {
    struct conf_ctx *x;
    struct conf_cluster *cl;
    struct conf_pos *name_pos;
};

static int server_name_cmp(size_t a, size_t b, void *arg)
{
    const struct server_dups *s = arg;
    const char *na = s->cl->servers[a].name, *nb = s->cl->servers[b].name;
    if (!na || !nb) /* unnamed (already reported): never a duplicate */
        return a < b ? -1 : a > b;
    return strcmp(na, nb);
}

static void server_name_dup(size_t dup, size_t first, void *arg)
{
    const struct server_dups *s = arg;
    size_t mark = conf_path_push(s->x, "[%zu].name", dup);
    conf_err(s->x, s->name_pos[dup], "duplicate server name '%s' (first at %u:%u)",
             s->cl->servers[dup].name, s->name_pos[first].line, s->name_pos[first].col);
    conf_path_pop(s->x, mark);
}

static int server_addr_cmp(size_t a, size_t b, void *arg)
{
    const struct server_dups *s = arg;
    const struct conf_addr *aa = &s->cl->servers[a].addr, *ab = &s->cl->servers[b].addr;
    if (!aa->len || !ab->len)
        return a < b ? -1 : a > b;
    return conf_addr_cmp(aa, ab);
}

static void server_addr_dup(size_t dup, size_t first, void *arg)
{
    const struct server_dups *s = arg;
    const struct conf_server *f = &s->cl->servers[first];
    size_t mark = conf_path_push(s->x, "[%zu].address", dup);
    conf_err(s->x, s->cl->servers[dup].addr_pos, "%s is already used by server '%s' (%u:%u)",
             s->cl->servers[dup].addr.text, f->name ? f->name : "?", f->addr_pos.line,
             f->addr_pos.col);
    conf_path_pop(s->x, mark);
}

static int set_servers(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    struct conf_cluster *cl = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of servers"))
        return -EINVAL;
    if (n->nkids == 0) {
        conf_err(x, n->pos, "a cluster needs at least one server");
        return -EINVAL;
    }
    struct conf_pos *name_pos = calloc(n->nkids, sizeof(*name_pos));
    cl->servers = calloc(n->nkids, sizeof(*cl->servers));
    if (!cl->servers || !name_pos) {
        free(name_pos);
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    cl->nservers = n->nkids;
    size_t primaries = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        struct conf_server *s = &cl->servers[i];
        const struct conf_node *v = n->kids[i];
        s->weight = 1;
        s->pos = v->pos;
        name_pos[i] = v->pos;
        size_t mark = conf_path_push(x, "[%zu]", i);
        if (!v->bad && conf_map(x, v, s, server_keys, seen) == 0) {
            const struct conf_seen *nm = conf_seen_get(server_keys, seen, "name");
            const struct conf_seen *ad = conf_seen_get(server_keys, seen, "address");
            if (nm->key)
                name_pos[i] = nm->val->pos;
            if (ad->key)
                s->addr_pos = ad->val->pos;
        }
        conf_path_pop(x, mark);
        primaries += !s->backup;
    }
    struct server_dups sd = {x, cl, name_pos};
    if (conf_find_dups(cl->nservers, server_name_cmp, server_name_dup, &sd) < 0 ||
        conf_find_dups(cl->nservers, server_addr_cmp, server_addr_dup, &sd) < 0)
        conf_err(x, n->pos, "out of memory");
    free(name_pos);
    if (primaries == 0) {
        conf_err(x, n->pos,
                 "every server is a backup: at least one server must be a primary (backups get "
                 "traffic only while no primary is usable)");
        return -EINVAL;
    }
    return 0;
}

static const struct conf_key cluster_keys[] = {
    {.name = "balance",
     .set = conf_set_enum,
     .off = offsetof(struct conf_cluster, balance),
     .arg = balances},
    {.name = "bounded_load", .set = set_ratio, .off = offsetof(struct conf_cluster, bounded_load)},
    {.name = "table_size",
     .set = conf_set_u32,
     .off = offsetof(struct conf_cluster, table_size),
     .min = 100,
     .max = 20000000},
    {.name = "servers", .set = set_servers, .flags = CONF_K_REQUIRED},
    {.name = "health", .set = set_health, .off = offsetof(struct conf_cluster, health)},
    {.name = "passive", .set = set_passive, .off = offsetof(struct conf_cluster, passive)},
    {.name = "timeouts", .set = conf_set_map, .arg = cluster_timeout_keys},
    {.name = "retries",
     .set = conf_set_u32,
     .off = offsetof(struct conf_cluster, retries),
     .max = 10},
    {.name = "slow_start",
     .set = conf_set_duration,
     .off = offsetof(struct conf_cluster, slow_start_ms),
     .max = HOUR},
    {.name = "max_connections_per_server",
     .set = conf_set_u32,
     .off = offsetof(struct conf_cluster, max_connections_per_server),
     .max = 1000000},
    {.name = NULL},
};

#define MAGLEV_DEFAULT_TABLE 65537

static void load_cluster(struct conf_ctx *x, const struct conf_node *n, struct conf_cluster *cl,
                         uint8_t *flags)
{
    struct conf_seen seen[CONF_MAX_KEYS];

    cl->balance = CONF_BAL_ROUND_ROBIN;
    cl->health.check = CONF_CHECK_NONE;
    cl->health.path = strdup("/healthz");
    cl->health.expect_status = 200;
    cl->health.interval_ms = 2 * SEC;
    cl->health.timeout_ms = 1 * SEC;
    cl->health.rise = 2;
    cl->health.fall = 3;
    cl->passive.consecutive_failures = 5;
    cl->passive.ejection_ms = 10 * SEC;
    cl->passive.max_ejection_ms = 5 * MIN;
    cl->passive.max_ejected_percent = 50;
    cl->connect_timeout_ms = 1 * SEC;
    cl->response_timeout_ms = 30 * SEC;
    cl->idle_timeout_ms = 60 * SEC;
    cl->retries = 2;
    if (!cl->health.path) {
        conf_err(x, n->pos, "out of memory");
        return;
    }
    if (conf_map(x, n, cl, cluster_keys, seen) < 0)
        return;

    const struct conf_seen *bal = conf_seen_get(cluster_keys, seen, "balance");
    const struct conf_seen *bl = conf_seen_get(cluster_keys, seen, "bounded_load");
    const struct conf_seen *ts = conf_seen_get(cluster_keys, seen, "table_size");
    if (bal->bad)
        *flags |= CONF_CF_BAD_BALANCE;
    if (bl->key && !bl->bad && !bal->bad && !conf_balance_is_hash(cl->balance))
        conf_err(x, bl->key->pos,
                 "bounded_load needs a hashing balancer (maglev or ring_hash); this cluster uses "
                 "%s",
                 conf_balance_name(cl->balance));

    uint64_t min_table = 100 * (uint64_t)cl->nservers;
    if (ts->key && !ts->bad && !bal->bad) {
        if (cl->balance != CONF_BAL_MAGLEV)
            conf_err(x, ts->key->pos, "table_size applies to maglev only; this cluster uses %s",
                     conf_balance_name(cl->balance));
        else if (!is_prime(cl->table_size))
            conf_err(x, ts->val->pos, "table_size %u is not a prime; try %llu", cl->table_size,
                     (unsigned long long)next_prime(cl->table_size));
        else if (cl->table_size < min_table)
            conf_err(x, ts->val->pos,
                     "table_size %u is too small for %zu servers: it must be a prime >= 100 x "
                     "servers; try %llu",
                     cl->table_size, cl->nservers, (unsigned long long)next_prime(min_table));
    } else if (!ts->key) {
        cl->table_size = MAGLEV_DEFAULT_TABLE;
        if (min_table > MAGLEV_DEFAULT_TABLE)
            cl->table_size = (uint32_t)next_prime(min_table);
    }
}

/* Shared by clusters: and static:, which map names to objects. Returns the key's name for the
 * object (a new string) or NULL when it is not a valid name (reported). */
static char *object_name(struct conf_ctx *x, const struct conf_node *k, const char *what)
{
    if (conf_check_name_at(x, k, what) < 0)
        return NULL;
    char *s = strdup(k->str);
    if (!s)
        conf_err(x, k->pos, "out of memory");
    return s;
}

int conf_set_clusters(struct conf_ctx *x, const struct conf_node *n, void *field,
                      const struct conf_key *k)
{
    struct conf *c = field;
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_MAP, "a mapping of cluster names to clusters"))
        return -EINVAL;
    size_t npairs = n->nkids / 2;
    if (npairs == 0)
        return 0;
    c->clusters = calloc(npairs, sizeof(*c->clusters));
    x->cluster_flags = calloc(npairs, 1);
    if (!c->clusters || !x->cluster_flags) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < npairs; i++) {
        const struct conf_node *key = n->kids[2 * i], *v = n->kids[2 * i + 1];
        if (key->bad)
            continue;
        if (key->dup_of) {
            conf_err(x, key->pos, "duplicate cluster '%s' (first at %u:%u)", Q(q, key),
                     key->dup_of->pos.line, key->dup_of->pos.col);
            continue;
        }
        size_t idx = c->nclusters++;
        struct conf_cluster *cl = &c->clusters[idx];
        cl->pos = key->pos;
        cl->name = object_name(x, key, "cluster name");
        size_t mark = conf_path_push(x, ".%s", Q(q, key));
        if (!v->bad)
            load_cluster(x, v, cl, &x->cluster_flags[idx]);
        conf_path_pop(x, mark);
    }
    return 0;
}

/* ---- static sets ---- */

static const struct conf_key static_keys[] = {
    {.name = "dir",
     .set = conf_set_dir,
     .off = offsetof(struct conf_static, dir),
     .flags = CONF_K_REQUIRED},
    {.name = "fallback", .set = conf_set_name, .off = offsetof(struct conf_static, fallback)},
    {.name = "max_age",
     .set = conf_set_duration,
     .off = offsetof(struct conf_static, max_age_ms),
     .max = 365 * 24 * HOUR},
    {.name = "max_file_size",
     .set = conf_set_size,
     .off = offsetof(struct conf_static, max_file_bytes),
     .min = 1,
     .max = 1 * GIB},
    {.name = NULL},
};

int conf_set_statics(struct conf_ctx *x, const struct conf_node *n, void *field,
                     const struct conf_key *k)
{
    struct conf *c = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_MAP, "a mapping of set names to snapshot sets"))
        return -EINVAL;
    size_t npairs = n->nkids / 2;
    if (npairs == 0)
        return 0;
    c->statics = calloc(npairs, sizeof(*c->statics));
    if (!c->statics) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < npairs; i++) {
        const struct conf_node *key = n->kids[2 * i], *v = n->kids[2 * i + 1];
        if (key->bad)
            continue;
        if (key->dup_of) {
            conf_err(x, key->pos, "duplicate static set '%s' (first at %u:%u)", Q(q, key),
                     key->dup_of->pos.line, key->dup_of->pos.col);
            continue;
        }
        struct conf_static *st = &c->statics[c->nstatics++];
        st->pos = key->pos;
        st->fallback_idx = -1;
        st->max_age_ms = 60 * SEC;
        st->max_file_bytes = 16 * MIB;
        st->name = object_name(x, key, "static set name");
        size_t mark = conf_path_push(x, ".%s", Q(q, key));
        if (!v->bad && conf_map(x, v, st, static_keys, seen) == 0) {
            const struct conf_seen *fb = conf_seen_get(static_keys, seen, "fallback");
            if (fb->key)
                st->fallback_pos = fb->val->pos;
        }
        conf_path_pop(x, mark);
    }
    return 0;
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
    {.name = NULL},
};

static int set_enqueue(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    struct conf_route *r = field;
    r->action = CONF_ACT_ENQUEUE;
    r->enqueue.max_length = 100000;
    return conf_map(x, n, &r->enqueue, enqueue_keys, NULL);
}

static const struct conf_key cache_keys[] = {
    {.name = "ttl",
     .set = conf_set_duration,
     .off = offsetof(struct conf_cache, ttl_ms),
     .min = 1,
     .max = 24 * HOUR,
     .flags = CONF_K_REQUIRED},
    {.name = "max_bytes",
     .set = conf_set_size,
     .off = offsetof(struct conf_cache, max_bytes),
     .min = 1 * KIB,
     .max = 64 * GIB},
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
    {.name = "hash_key", .set = set_hash_key, .off = offsetof(struct conf_route, hash_key)},
    {.name = "cache", .set = set_cache, .off = offsetof(struct conf_route, cache)},
    {.name = NULL},
};

static void load_route(struct conf_ctx *x, const struct conf_node *n, struct conf_route *r)
{
    struct conf_seen seen[CONF_MAX_KEYS];
    static const char *const actions[] = {"cluster", "static", "enqueue"};

    r->pos = n->pos;
    r->target_idx = -1;
    if (conf_map(x, n, r, route_keys, seen) < 0)
        return;

    /* Exactly one action; every extra one is reported where it is written. */
    const struct conf_seen *first = NULL;
    const char *first_name = NULL;
    for (size_t i = 0; i < 3; i++) {
        const struct conf_seen *s = conf_seen_get(route_keys, seen, actions[i]);
        if (s->key && (!first || pos_before(s->key->pos, first->key->pos))) {
            first = s;
            first_name = actions[i];
        }
    }
    for (size_t i = 0; first && i < 3; i++) {
        const struct conf_seen *s = conf_seen_get(route_keys, seen, actions[i]);
        if (s->key && s != first)
            conf_err(x, s->key->pos,
                     "a route takes exactly one action, and it already has "
                     "'%s' (%u:%u)",
                     first_name, first->key->pos.line, first->key->pos.col);
    }
    if (!first) {
        conf_err(x, n->pos, "a route needs an action: cluster, static or enqueue");
        return;
    }
    r->target_pos = first->val->pos;
    bool single = true;
    for (size_t i = 0; i < 3; i++) {
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
    {.name = NULL},
};

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
            conf_map(x, n->kids[i], &tls->certs[i], cert_keys, NULL);
        conf_path_pop(x, mark);
    }
    return 0;
}

static const struct conf_key tls_keys[] = {
    {.name = "certificates", .set = set_certs, .flags = CONF_K_REQUIRED},
    {.name = NULL},
};

static int set_tls(struct conf_ctx *x, const struct conf_node *n, void *field,
                   const struct conf_key *k)
{
    struct conf_tls *tls = field;
    if (conf_map(x, n, tls, tls_keys, NULL) < 0)
        return -EINVAL;
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
    {.name = NULL},
};

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
