/*
 * The loader of clusters: (servers, health checks, passive detection, timeouts). Each cluster
 * gets its defaults, then its table of keys (load.c's conf_map), then the rules that involve
 * several of its keys (bounded_load only on a hashing balancer, table_size only for maglev).
 * Rules across objects, such as references, are validate.c's.
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

static const struct conf_enum_name balances[] = {
    {"round_robin", CONF_BAL_ROUND_ROBIN}, {"least_conn", CONF_BAL_LEAST_CONN},
    {"random_two", CONF_BAL_RANDOM_TWO},   {"maglev", CONF_BAL_MAGLEV},
    {"ring_hash", CONF_BAL_RING_HASH},     {NULL, 0},
};

static const struct conf_enum_name checks[] = {
    {"http", CONF_CHECK_HTTP},
    {"redis", CONF_CHECK_REDIS},
    {"tcp", CONF_CHECK_TCP},
    {"none", CONF_CHECK_NONE},
    {NULL, 0},
};

static int set_replicas(struct conf_ctx *x, const struct conf_node *n, void *field,
                        const struct conf_key *k)
{
    struct conf_server *sv = field;
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of addresses [ IP:PORT, ... ]"))
        return -EINVAL;
    if (n->nkids == 0 || n->nkids > CONF_MAX_REPLICAS) {
        conf_err(x, n->pos, "replicas: 1 to %d addresses", CONF_MAX_REPLICAS);
        return -EINVAL;
    }
    sv->replicas_pos = n->pos;
    int rc = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        size_t mark = conf_path_push(x, "[%zu]", i);
        if (n->kids[i]->bad || conf_set_addr(x, n->kids[i], &sv->replicas[i], k) < 0)
            rc = -EINVAL;
        conf_path_pop(x, mark);
    }
    if (rc == 0)
        sv->nreplicas = n->nkids;
    return rc;
}

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
    {.name = "replicas", .set = set_replicas},
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

static const struct conf_key upstream_tls_keys[] = {
    {.name = "ca", .set = conf_set_file, .off = offsetof(struct conf_upstream_tls, ca)},
    {.name = "verify", .set = conf_set_onoff, .off = offsetof(struct conf_upstream_tls, verify)},
    {.name = "sni", .set = conf_set_str, .off = offsetof(struct conf_upstream_tls, sni)},
    {.name = NULL},
};

/* tls: { ca, verify, sni }: lb speaks TLS to every server of the cluster. */
static int set_upstream_tls(struct conf_ctx *x, const struct conf_node *n, void *field,
                            const struct conf_key *k)
{
    struct conf_upstream_tls *t = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    t->pos = n->pos;
    t->verify = true;
    if (conf_map(x, n, t, upstream_tls_keys, seen) < 0)
        return -EINVAL;
    const struct conf_seen *v = conf_seen_get(upstream_tls_keys, seen, "ca");
    t->ca_pos = v->val ? v->val->pos : n->pos;
    v = conf_seen_get(upstream_tls_keys, seen, "sni");
    t->sni_pos = v->val ? v->val->pos : n->pos;
    if (t->sni && (!t->sni[0] || strlen(t->sni) > 253 || strpbrk(t->sni, " /:@"))) {
        conf_err(x, t->sni_pos, "sni must be a host name");
        return -EINVAL;
    }
    t->enabled = true;
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
    {.name = "tls", .set = set_upstream_tls, .off = offsetof(struct conf_cluster, tls)},
    {.name = "password", .set = conf_set_text, .off = offsetof(struct conf_cluster, password)},
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
    /* Only a check that asks each member its role can know which one takes the traffic. */
    for (size_t i = 0; i < cl->nservers; i++)
        if (cl->servers[i].nreplicas && cl->health.check != CONF_CHECK_REDIS)
            conf_err(x, cl->servers[i].replicas_pos,
                     "replicas need health: { check: redis } to know which member is master "
                     "(server '%s')",
                     cl->servers[i].name ? cl->servers[i].name : "?");
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
        cl->name = conf_object_name(x, key, "cluster name");
        size_t mark = conf_path_push(x, ".%s", Q(q, key));
        if (!v->bad)
            load_cluster(x, v, cl, &x->cluster_flags[idx]);
        conf_path_pop(x, mark);
    }
    return 0;
}

/* For conf_keys_each() (keys.c): the tables this file's setters map themselves. */
const struct conf_key_root conf_roots_cluster[] = {
    {"clusters.NAME", cluster_keys},          {"clusters.NAME.servers[]", server_keys},
    {"clusters.NAME.health", health_keys},    {"clusters.NAME.passive", passive_keys},
    {"clusters.NAME.tls", upstream_tls_keys}, {NULL, NULL},
};
