/*
 * The loader's machinery and its scalar setters: conf_map() walks a YAML mapping against a
 * table of keys; each setter turns one value into one C field or reports, at the value's line
 * and column, what it expected. Also global: and the top level of the file. Listeners (with
 * their routes), clusters and static sets are in load_listener.c, load_cluster.c and
 * load_static.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/load.h"

#define Q(buf, n) conf_quote((buf), sizeof(buf), (n)->str, (n)->len)

/* Appends to a list of names for a message, cutting quietly when it is full. */
static void list_add(char *list, size_t size, size_t *o, const char *name)
{
    if (*o >= size)
        return;
    int n = snprintf(list + *o, size - *o, "%s%s", *o ? ", " : "", name);
    *o += n > 0 ? (size_t)n : 0;
}

static const char *kind_name(const struct conf_node *n)
{
    if (n->kind == CONF_NODE_MAP)
        return "a mapping";
    if (n->kind == CONF_NODE_SEQ)
        return "a list";
    if (conf_node_is_null(n))
        return "nothing";
    return "a single value";
}

bool conf_expect(struct conf_ctx *x, const struct conf_node *n, enum conf_node_kind kind,
                 const char *what)
{
    if (n->kind == kind && !(kind == CONF_NODE_SCALAR && conf_node_is_null(n)))
        return true;
    char q[48];
    if (n->kind == CONF_NODE_SCALAR && !conf_node_is_null(n))
        conf_err(x, n->pos, "expected %s, got '%s'", what, Q(q, n));
    else
        conf_err(x, n->pos, "expected %s, got %s", what, kind_name(n));
    return false;
}

const struct conf_seen *conf_seen_get(const struct conf_key *tab, const struct conf_seen *seen,
                                      const char *name)
{
    for (size_t i = 0; tab[i].name; i++)
        if (!strcmp(tab[i].name, name))
            return &seen[i];
    abort(); /* a table and its caller disagree: a bug, not an input problem */
}

static void unknown_key(struct conf_ctx *x, const struct conf_node *k, const struct conf_key *tab)
{
    const char *names[CONF_MAX_KEYS + 1];
    char list[200] = "", q[48];
    size_t n = 0, o = 0;
    for (; tab[n].name; n++) {
        names[n] = tab[n].name;
        list_add(list, sizeof(list), &o, tab[n].name);
    }
    names[n] = NULL;
    const char *best = conf_diags_full(x->d) ? NULL : conf_suggest(k->str, names, 0);
    if (best)
        conf_err(x, k->pos, "unknown key '%s'; did you mean '%s'?", Q(q, k), best);
    else
        conf_err(x, k->pos, "unknown key '%s'; expected one of: %s", Q(q, k), list);
}

int conf_map(struct conf_ctx *x, const struct conf_node *n, void *base, const struct conf_key *tab,
             struct conf_seen *seen)
{
    struct conf_seen local[CONF_MAX_KEYS];
    char q[48];

    if (!seen)
        seen = local;
    size_t nkeys = 0;
    while (tab[nkeys].name)
        nkeys++;
    memset(seen, 0, nkeys * sizeof(*seen));
    if (!conf_expect(x, n, CONF_NODE_MAP, "a mapping (key: value lines or { ... })"))
        return -EINVAL;

    for (size_t i = 0; i + 1 < n->nkids; i += 2) {
        const struct conf_node *k = n->kids[i], *v = n->kids[i + 1];
        if (k->bad)
            continue;
        if (k->dup_of) {
            conf_err(x, k->pos, "duplicate key '%s' (first at %u:%u)", Q(q, k), k->dup_of->pos.line,
                     k->dup_of->pos.col);
            continue;
        }
        size_t e = 0;
        while (e < nkeys && strcmp(tab[e].name, k->str))
            e++;
        if (e == nkeys) {
            unknown_key(x, k, tab);
            continue;
        }
        seen[e].key = k;
        seen[e].val = v;
        size_t mark = conf_path_push(x, "%s%s", x->plen ? "." : "", tab[e].name);
        if (v->bad || tab[e].set(x, v, (char *)base + tab[e].off, &tab[e]) < 0)
            seen[e].bad = true;
        conf_path_pop(x, mark);
    }
    for (size_t e = 0; e < nkeys; e++)
        if ((tab[e].flags & CONF_K_REQUIRED) && !seen[e].key)
            conf_err(x, n->pos, "missing required key '%s'", tab[e].name);
    return 0;
}

int conf_check_name_at(struct conf_ctx *x, const struct conf_node *n, const char *what)
{
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    bool ok = n->len < CONF_NAME_MAX && isalnum((unsigned char)n->str[0]);
    for (size_t i = 0; ok && i < n->len; i++) {
        unsigned char ch = (unsigned char)n->str[i];
        ok = isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
    }
    if (!ok) {
        conf_err(x, n->pos,
                 "bad %s '%s': use letters, digits, '_', '-' and '.', starting with a letter or "
                 "digit, at most %d characters",
                 what, Q(q, n), CONF_NAME_MAX - 1);
        return -EINVAL;
    }
    return 0;
}

char *conf_object_name(struct conf_ctx *x, const struct conf_node *k, const char *what)
{
    if (conf_check_name_at(x, k, what) < 0)
        return NULL;
    char *s = strdup(k->str);
    if (!s)
        conf_err(x, k->pos, "out of memory");
    return s;
}

/* Keeps a new string in *@field, freeing what was there (a default). */
static int keep_str(struct conf_ctx *x, const struct conf_node *n, char **field, const char *s)
{
    char *dup = strdup(s);
    if (!dup) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    free(*field);
    *field = dup;
    return 0;
}

int conf_set_text(struct conf_ctx *x, const struct conf_node *n, void *field,
                  const struct conf_key *k)
{
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "a string"))
        return -EINVAL;
    return keep_str(x, n, field, n->str);
}

int conf_set_str(struct conf_ctx *x, const struct conf_node *n, void *field,
                 const struct conf_key *k)
{
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "a string"))
        return -EINVAL;
    for (size_t i = 0; i < n->len; i++) {
        unsigned char ch = (unsigned char)n->str[i];
        if (ch < 0x20 || ch == 0x7f) {
            conf_err(x, n->pos, "control character \\x%02x in the value", ch);
            return -EINVAL;
        }
    }
    return keep_str(x, n, field, n->str);
}

int conf_set_name(struct conf_ctx *x, const struct conf_node *n, void *field,
                  const struct conf_key *k)
{
    if (conf_check_name_at(x, n, "a name") < 0)
        return -EINVAL;
    return keep_str(x, n, field, n->str);
}

/* Reads a decimal integer in k->min..k->max. */
static int get_int(struct conf_ctx *x, const struct conf_node *n, const struct conf_key *k,
                   int64_t *out)
{
    char what[96], q[48];
    snprintf(what, sizeof(what), "an integer %" PRId64 "..%" PRId64, k->min, k->max);
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    const char *s = n->str;
    bool neg = *s == '-';
    s += neg;
    uint64_t v = 0;
    bool ok = *s != '\0', big = false;
    for (; ok && *s; s++) {
        if (*s < '0' || *s > '9')
            ok = false;
        else if (v > (UINT64_MAX - 9) / 10)
            big = true;
        else
            v = v * 10 + (uint64_t)(*s - '0');
    }
    if (!ok) {
        conf_err(x, n->pos, "expected %s, got '%s'", what, Q(q, n));
        return -EINVAL;
    }
    /* Range first: negating -2^63 as an int64_t would overflow. */
    int64_t sv = big || v > INT64_MAX ? 0 : neg ? -(int64_t)v : (int64_t)v;
    if (big || v > INT64_MAX || sv < k->min || sv > k->max) {
        conf_err(x, n->pos, "%s is out of range: expected %s", Q(q, n), what);
        return -EINVAL;
    }
    *out = sv;
    return 0;
}

int conf_set_u32(struct conf_ctx *x, const struct conf_node *n, void *field,
                 const struct conf_key *k)
{
    int64_t v;
    if (get_int(x, n, k, &v) < 0)
        return -EINVAL;
    *(uint32_t *)field = (uint32_t)v;
    return 0;
}

int conf_set_int(struct conf_ctx *x, const struct conf_node *n, void *field,
                 const struct conf_key *k)
{
    int64_t v;
    if (get_int(x, n, k, &v) < 0)
        return -EINVAL;
    *(int *)field = (int)v;
    return 0;
}

int conf_set_u64(struct conf_ctx *x, const struct conf_node *n, void *field,
                 const struct conf_key *k)
{
    int64_t v;
    if (get_int(x, n, k, &v) < 0)
        return -EINVAL;
    *(uint64_t *)field = (uint64_t)v;
    return 0;
}

int conf_set_bool(struct conf_ctx *x, const struct conf_node *n, void *field,
                  const struct conf_key *k)
{
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "true or false"))
        return -EINVAL;
    if (!strcmp(n->str, "true"))
        *(bool *)field = true;
    else if (!strcmp(n->str, "false"))
        *(bool *)field = false;
    else {
        conf_err(x, n->pos, "expected true or false, got '%s'", Q(q, n));
        return -EINVAL;
    }
    return 0;
}

int conf_set_onoff(struct conf_ctx *x, const struct conf_node *n, void *field,
                   const struct conf_key *k)
{
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "on or off"))
        return -EINVAL;
    if (!strcmp(n->str, "on") || !strcmp(n->str, "true"))
        *(bool *)field = true;
    else if (!strcmp(n->str, "off") || !strcmp(n->str, "false"))
        *(bool *)field = false;
    else {
        conf_err(x, n->pos, "expected on or off, got '%s'", Q(q, n));
        return -EINVAL;
    }
    return 0;
}

const char *conf_fmt_duration(char *buf, size_t size, uint64_t ms)
{
    if (ms && ms % 3600000 == 0)
        snprintf(buf, size, "%" PRIu64 "h", ms / 3600000);
    else if (ms && ms % 60000 == 0)
        snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
    else if (ms && ms % 1000 == 0)
        snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, size, "%" PRIu64 "ms", ms);
    return buf;
}

const char *conf_fmt_size(char *buf, size_t size, uint64_t bytes)
{
    if (bytes && bytes % (1u << 30) == 0)
        snprintf(buf, size, "%" PRIu64 "g", bytes >> 30);
    else if (bytes && bytes % (1u << 20) == 0)
        snprintf(buf, size, "%" PRIu64 "m", bytes >> 20);
    else if (bytes && bytes % 1024 == 0)
        snprintf(buf, size, "%" PRIu64 "k", bytes >> 10);
    else
        snprintf(buf, size, "%" PRIu64, bytes);
    return buf;
}

int conf_set_duration(struct conf_ctx *x, const struct conf_node *n, void *field,
                      const struct conf_key *k)
{
    const char *what = "a duration such as 250ms, 2s, 1m or 1h";
    char q[48], lo[24], hi[24];
    uint64_t ms;
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    int rc = conf_parse_duration(n->str, &ms);
    if (rc == -EINVAL) {
        conf_err(x, n->pos, "expected %s (units: ms, s, m, h), got '%s'", what, Q(q, n));
        return rc;
    }
    if (rc < 0 || ms < (uint64_t)k->min || ms > (uint64_t)k->max) {
        conf_err(x, n->pos, "duration %s is out of range: expected %s..%s", Q(q, n),
                 conf_fmt_duration(lo, sizeof(lo), (uint64_t)k->min),
                 conf_fmt_duration(hi, sizeof(hi), (uint64_t)k->max));
        return -ERANGE;
    }
    *(uint64_t *)field = ms;
    return 0;
}

int conf_set_size(struct conf_ctx *x, const struct conf_node *n, void *field,
                  const struct conf_key *k)
{
    const char *what = "a size such as 512, 16k, 10m or 1g";
    char q[48], lo[24], hi[24];
    uint64_t b;
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    int rc = conf_parse_size(n->str, &b);
    if (rc == -EINVAL) {
        conf_err(x, n->pos, "expected %s, got '%s'", what, Q(q, n));
        return rc;
    }
    if (rc < 0 || b < (uint64_t)k->min || b > (uint64_t)k->max) {
        conf_err(x, n->pos, "size %s is out of range: expected %s..%s", Q(q, n),
                 conf_fmt_size(lo, sizeof(lo), (uint64_t)k->min),
                 conf_fmt_size(hi, sizeof(hi), (uint64_t)k->max));
        return -ERANGE;
    }
    *(uint64_t *)field = b;
    return 0;
}

int conf_set_addr(struct conf_ctx *x, const struct conf_node *n, void *field,
                  const struct conf_key *k)
{
    const char *what = "an address IP:PORT or [IPv6]:PORT";
    struct conf_addr a;
    char q[72];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    int rc = conf_parse_addr(n->str, &a);
    if (rc == -ERANGE) {
        conf_err(x, n->pos, "bad port in '%s': expected 1..65535", Q(q, n));
        return rc;
    }
    if (rc < 0) {
        conf_err(x, n->pos, "expected %s with a numeric IP (or localhost; no DNS names), got '%s'",
                 what, Q(q, n));
        return rc;
    }
    *(struct conf_addr *)field = a;
    return 0;
}

int conf_set_enum(struct conf_ctx *x, const struct conf_node *n, void *field,
                  const struct conf_key *k)
{
    const struct conf_enum_name *names = k->arg;
    const char *cands[16];
    char list[160] = "", q[48];
    size_t nn = 0, o = 0;
    for (; names[nn].name && nn < 15; nn++) {
        cands[nn] = names[nn].name;
        list_add(list, sizeof(list), &o, names[nn].name);
    }
    cands[nn] = NULL;
    char what[200];
    snprintf(what, sizeof(what), "one of %s", list);
    if (!conf_expect(x, n, CONF_NODE_SCALAR, what))
        return -EINVAL;
    for (size_t i = 0; i < nn; i++) {
        if (!strcmp(n->str, names[i].name)) {
            *(int *)field = names[i].value;
            return 0;
        }
    }
    const char *best = conf_suggest(n->str, cands, 0);
    if (best)
        conf_err(x, n->pos, "unknown %s '%s'; did you mean '%s'? (expected one of: %s)", k->name,
                 Q(q, n), best, list);
    else
        conf_err(x, n->pos, "unknown %s '%s'; expected one of: %s", k->name, Q(q, n), list);
    return -EINVAL;
}

int conf_set_map(struct conf_ctx *x, const struct conf_node *n, void *field,
                 const struct conf_key *k)
{
    return conf_map(x, n, field, k->arg, NULL);
}

/* Joins a relative @path to the config file's directory. Returns a new string or NULL. */
static char *resolve(const struct conf_ctx *x, const char *path)
{
    if (path[0] == '/' || !x->base_dir)
        return strdup(path);
    size_t bl = strlen(x->base_dir), pl = strlen(path);
    char *out = malloc(bl + pl + 2);
    if (!out)
        return NULL;
    memcpy(out, x->base_dir, bl);
    out[bl] = '/';
    memcpy(out + bl + 1, path, pl + 1);
    return out;
}

/* A path value: no control characters, resolved against the config's directory. */
static int set_path(struct conf_ctx *x, const struct conf_node *n, char **field, size_t max)
{
    char *tmp = NULL, q[72];
    if (conf_set_str(x, n, &tmp, NULL) < 0)
        return -EINVAL;
    free(tmp);
    char *p = resolve(x, n->str);
    if (!p) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    if (max && strlen(p) > max) {
        conf_err(x, n->pos, "path '%s' is too long (at most %zu bytes once resolved)", Q(q, n),
                 max);
        free(p);
        return -EINVAL;
    }
    free(*field);
    *field = p;
    return 0;
}

int conf_set_file(struct conf_ctx *x, const struct conf_node *n, void *field,
                  const struct conf_key *k)
{
    char **dst = field, q[72];
    struct stat st;
    if (set_path(x, n, dst, PATH_MAX) < 0)
        return -EINVAL;
    if (stat(*dst, &st) < 0 || access(*dst, R_OK) < 0) {
        int e = errno;
        if (strcmp(*dst, n->str))
            conf_err(x, n->pos, "cannot read '%s' (%s from the config's directory): %s", Q(q, n),
                     *dst, strerror(e));
        else
            conf_err(x, n->pos, "cannot read '%s': %s", Q(q, n), strerror(e));
        return -EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        conf_err(x, n->pos, "'%s' is not a regular file", Q(q, n));
        return -EINVAL;
    }
    return 0;
}

int conf_set_dir(struct conf_ctx *x, const struct conf_node *n, void *field,
                 const struct conf_key *k)
{
    char **dst = field, q[72];
    struct stat st;
    if (set_path(x, n, dst, PATH_MAX) < 0)
        return -EINVAL;
    if (stat(*dst, &st) < 0) {
        int e = errno;
        if (strcmp(*dst, n->str))
            conf_err(x, n->pos, "directory '%s' (%s from the config's directory): %s", Q(q, n),
                     *dst, strerror(e));
        else
            conf_err(x, n->pos, "directory '%s': %s", Q(q, n), strerror(e));
        return -EINVAL;
    }
    if (!S_ISDIR(st.st_mode)) {
        conf_err(x, n->pos, "'%s' is not a directory", Q(q, n));
        return -EINVAL;
    }
    return 0;
}

int conf_set_url_path(struct conf_ctx *x, const struct conf_node *n, void *field,
                      const struct conf_key *k)
{
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "a path starting with '/'"))
        return -EINVAL;
    bool ok = n->str[0] == '/';
    for (size_t i = 0; ok && i < n->len; i++)
        ok = (unsigned char)n->str[i] > 0x20 && (unsigned char)n->str[i] < 0x7f;
    if (!ok) {
        conf_err(x, n->pos, "expected a path starting with '/' without spaces, got '%s'", Q(q, n));
        return -EINVAL;
    }
    return keep_str(x, n, field, n->str);
}

/* ---- global: ---- */

static int set_workers(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    if (n->kind == CONF_NODE_SCALAR && !strcmp(n->str, "auto")) {
        *(uint32_t *)field = 0;
        return 0;
    }
    char q[48];
    if (n->kind == CONF_NODE_SCALAR && n->len && !isdigit((unsigned char)n->str[0]) &&
        n->str[0] != '-') {
        conf_err(x, n->pos, "expected 'auto' or an integer 1..256, got '%s'", Q(q, n));
        return -EINVAL;
    }
    return conf_set_u32(x, n, field, k);
}

static int set_access(struct conf_ctx *x, const struct conf_node *n, void *field,
                      const struct conf_key *k)
{
    struct conf_global *g = field;
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_SCALAR, "off, stderr or a file path"))
        return -EINVAL;
    if (!strcmp(n->str, "off") || !strcmp(n->str, "stderr")) {
        g->access = n->str[0] == 'o' ? CONF_ACCESS_OFF : CONF_ACCESS_STDERR;
        free(g->access_file);
        g->access_file = NULL;
        return 0;
    }
    /* A path must look like one, so that a typo ("stdrr") is not taken for a file name. */
    if (!strchr(n->str, '/')) {
        conf_err(x, n->pos,
                 "expected off, stderr or a file path containing '/' (such as "
                 "/var/log/lb/access.log or ./access.log), got '%s'",
                 Q(q, n));
        return -EINVAL;
    }
    if (set_path(x, n, &g->access_file, PATH_MAX) < 0)
        return -EINVAL;
    g->access = CONF_ACCESS_FILE;
    return 0;
}

static int set_socket_path(struct conf_ctx *x, const struct conf_node *n, void *field,
                           const struct conf_key *k)
{
    return set_path(x, n, field, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
}

static int set_redis_nodes(struct conf_ctx *x, const struct conf_node *n, void *field,
                           const struct conf_key *k)
{
    struct conf_global *g = field;
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of addresses [ IP:PORT, ... ]"))
        return -EINVAL;
    if (n->nkids == 0 || n->nkids > CONF_MAX_REPLICAS + 1) {
        conf_err(x, n->pos, "a redis primary and at most %d replicas are needed",
                 CONF_MAX_REPLICAS);
        return -EINVAL;
    }
    g->redis_nodes = calloc(n->nkids, sizeof(*g->redis_nodes));
    if (!g->redis_nodes) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    g->nredis_nodes = n->nkids;
    int rc = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        const struct conf_node *v = n->kids[i];
        struct conf_addr a;
        size_t mark = conf_path_push(x, "[%zu]", i);
        if (v->bad || conf_set_addr(x, v, &a, k) < 0 ||
            keep_str(x, v, &g->redis_nodes[i], v->str) < 0)
            rc = -EINVAL;
        conf_path_pop(x, mark);
    }
    return rc;
}

static const struct conf_key admin_keys[] = {
    {.name = "socket",
     .set = set_socket_path,
     .off = offsetof(struct conf_global, admin_socket),
     .flags = CONF_K_REQUIRED},
    {.name = "http", .set = conf_set_admin_http},
    {.name = NULL},
};

static const struct conf_key metrics_keys[] = {
    {.name = "listen",
     .set = conf_set_addr,
     .off = offsetof(struct conf_global, metrics_listen),
     .flags = CONF_K_REQUIRED},
    {.name = NULL},
};

static int set_metrics(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    struct conf_global *g = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    if (conf_map(x, n, g, metrics_keys, seen) < 0)
        return -EINVAL;
    const struct conf_seen *s = conf_seen_get(metrics_keys, seen, "listen");
    if (!s->key || s->bad)
        return -EINVAL;
    g->has_metrics = true;
    g->metrics_pos = s->val->pos;
    return 0;
}

static const struct conf_enum_name log_levels[] = {
    {"error", CONF_LOG_ERROR},
    {"warn", CONF_LOG_WARN},
    {"info", CONF_LOG_INFO},
    {"debug", CONF_LOG_DEBUG},
    {NULL, 0},
};

static const struct conf_enum_name access_formats[] = {
    {"text", CONF_ACCESS_TEXT},
    {"json", CONF_ACCESS_JSON},
    {NULL, 0},
};

static const struct conf_key log_keys[] = {
    {.name = "level",
     .set = conf_set_enum,
     .off = offsetof(struct conf_global, log_level),
     .arg = log_levels},
    {.name = "access", .set = set_access},
    {.name = "format",
     .set = conf_set_enum,
     .off = offsetof(struct conf_global, access_format),
     .arg = access_formats},
    {.name = NULL},
};

static const struct conf_key redis_keys[] = {
    {.name = "nodes", .set = set_redis_nodes, .flags = CONF_K_REQUIRED},
    {.name = "instance", .set = conf_set_name, .off = offsetof(struct conf_global, redis_instance)},
    {.name = "prefix", .set = conf_set_str, .off = offsetof(struct conf_global, redis_prefix)},
    {.name = "timeout",
     .set = conf_set_duration,
     .off = offsetof(struct conf_global, redis_timeout_ms),
     .min = 1,
     .max = 60 * 1000},
    {.name = "password", .set = conf_set_text, .off = offsetof(struct conf_global, redis_password)},
    {.name = NULL},
};

#define SEC 1000ull
#define HOUR (3600 * SEC)

static const struct conf_key global_keys[] = {
    {.name = "workers",
     .set = set_workers,
     .off = offsetof(struct conf_global, workers),
     .min = 1,
     .max = 256},
    {.name = "max_connections",
     .set = conf_set_u32,
     .off = offsetof(struct conf_global, max_connections),
     .min = 1,
     .max = 10000000},
    {.name = "admin", .set = conf_set_map, .arg = admin_keys},
    {.name = "metrics", .set = set_metrics},
    {.name = "log", .set = conf_set_map, .arg = log_keys},
    {.name = "redis", .set = conf_set_map, .arg = redis_keys},
    {.name = "shutdown_timeout",
     .set = conf_set_duration,
     .off = offsetof(struct conf_global, shutdown_timeout_ms),
     .max = HOUR},
    {.name = NULL},
};

static const struct conf_key top_keys[] = {
    {.name = "global",
     .set = conf_set_map,
     .off = offsetof(struct conf, global),
     .arg = global_keys},
    {.name = "listeners", .set = conf_set_listeners, .flags = CONF_K_REQUIRED},
    {.name = "clusters", .set = conf_set_clusters},
    {.name = "static", .set = conf_set_statics},
    {.name = "caches", .set = conf_set_caches},
    {.name = NULL},
};

void conf_load_root(struct conf_ctx *x, const struct conf_node *root)
{
    struct conf_global *g = &x->c->global;
    g->workers = 0;
    g->max_connections = 100000;
    g->log_level = CONF_LOG_INFO;
    g->access = CONF_ACCESS_OFF;
    g->shutdown_timeout_ms = 10 * SEC;
    g->redis_timeout_ms = 250;
    g->admin_socket = strdup("/tmp/lb.sock");
    g->redis_prefix = strdup("lb:");
    if (!g->admin_socket || !g->redis_prefix) {
        conf_err(x, root->pos, "out of memory");
        return;
    }
    if (root->kind != CONF_NODE_MAP) {
        conf_expect(x, root, CONF_NODE_MAP,
                    "a mapping with global, listeners, clusters and static at the top level");
        return;
    }
    conf_map(x, root, x->c, top_keys, NULL);
}

/* For conf_keys_each() (keys.c); global's other sections hang off top_keys by conf_set_map. */
const struct conf_key_root conf_roots_global[] = {
    {"", top_keys}, {"global.metrics", metrics_keys}, {NULL, NULL}};
