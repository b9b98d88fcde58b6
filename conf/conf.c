/*
 * conf's public face: conf_load() and conf_load_buf() run the stages (text check, YAML tree,
 * loader, validator) and own the diagnostics; conf_free() and the small lookups live here too.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/internal.h"

void conf_diag(struct conf_diags *d, struct conf_pos pos, const char *fmt, ...)
{
    if (d->n >= CONF_MAX_ERRORS) {
        d->dropped++;
        return;
    }
    struct conf_diag *g = &d->items[d->n++];
    g->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->msg, sizeof(g->msg), fmt, ap);
    va_end(ap);
}

void conf_err(struct conf_ctx *x, struct conf_pos pos, const char *fmt, ...)
{
    char msg[sizeof(x->d->items[0].msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (x->plen)
        conf_diag(x->d, pos, "%s: %s", x->path, msg);
    else
        conf_diag(x->d, pos, "%s", msg);
}

/* Insertion sort: at most CONF_MAX_ERRORS entries, and it keeps equal positions in order. */
void conf_diags_sort(struct conf_diags *d)
{
    for (size_t i = 1; i < d->n; i++) {
        struct conf_diag tmp = d->items[i];
        size_t j = i;
        while (j > 0 && (d->items[j - 1].pos.line > tmp.pos.line ||
                         (d->items[j - 1].pos.line == tmp.pos.line &&
                          d->items[j - 1].pos.col > tmp.pos.col))) {
            d->items[j] = d->items[j - 1];
            j--;
        }
        d->items[j] = tmp;
    }
}

void conf_diags_print(const struct conf_diags *d, const char *file, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct conf_diag *g = &d->items[i];
        if (g->pos.line)
            fprintf(out, "%s:%u:%u: %s\n", file, g->pos.line, g->pos.col, g->msg);
        else
            fprintf(out, "%s: %s\n", file, g->msg);
    }
    if (d->dropped)
        fprintf(out, "%s: %zu more error%s\n", file, d->dropped, d->dropped == 1 ? "" : "s");
}

const char *conf_quote(char *buf, size_t size, const char *s, size_t len)
{
    const size_t keep = size > 8 ? size - 8 : 0; /* room for one escape, "..." and the NUL */
    size_t o = 0;
    for (size_t i = 0; i < len && o < keep; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != 0x7f)
            buf[o++] = (char)ch; /* UTF-8 sequences pass through: the text was checked */
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
        if (o >= keep && i + 1 < len) {
            /* Do not cut a UTF-8 sequence in half. */
            while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
                o--;
            if (o > 0 && (unsigned char)buf[o - 1] >= 0xc0)
                o--;
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
    }
    buf[o] = '\0';
    return buf;
}

/*
 * Levenshtein distance, case-insensitive, for words up to 64 bytes; SIZE_MAX for longer words
 * or once the distance must exceed @max. A row whose smallest entry is above @max cannot lead
 * back under it, so stopping there keeps a hostile file (thousands of long, similar names and
 * fifty references to none of them) from costing a full table per candidate.
 */
_Thread_local uint64_t conf_suggest_rows;

static size_t edit_distance(const char *a, const char *b, size_t max)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > max)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        size_t row_min = row[0];
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
            if (best < row_min)
                row_min = best;
        }
        conf_suggest_rows++;
        if (row_min > max)
            return SIZE_MAX;
    }
    return row[lb] <= max ? row[lb] : SIZE_MAX;
}

const char *conf_suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    size_t wl = strlen(word);
    for (size_t i = 0; n ? i < n : cands[i] != NULL; i++) {
        if (!cands[i])
            continue;
        size_t dist = edit_distance(word, cands[i], best_d - 1);
        /* A 2-letter word is 2 edits from every other 2-letter word: demand more similarity
         * than that before suggesting. */
        if (dist < best_d && dist < wl && dist < strlen(cands[i])) {
            best = cands[i];
            best_d = dist;
            if (best_d == 0)
                break;
        }
    }
    return best;
}

size_t conf_path_push(struct conf_ctx *x, const char *fmt, ...)
{
    size_t mark = x->plen;
    size_t room = sizeof(x->path) - x->plen;
    if (room <= 1)
        return mark;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(x->path + x->plen, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    x->plen += (size_t)n < room ? (size_t)n : room - 1;
    return mark;
}

static void free_hash_key(struct conf_hash_key *h)
{
    free(h->name);
    h->name = NULL;
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct conf_listener *l = &c->listeners[i];
        free(l->name);
        for (size_t j = 0; j < l->tls.ncerts; j++) {
            free(l->tls.certs[j].cert);
            free(l->tls.certs[j].key);
            free(l->tls.certs[j].ocsp);
        }
        free(l->tls.certs);
        for (size_t j = 0; j < l->tls.nalpn; j++)
            free(l->tls.alpn[j]);
        free(l->tls.client_ca);
        for (size_t j = 0; j < l->nroutes; j++) {
            struct conf_route *r = &l->routes[j];
            free(r->host);
            free(r->path_prefix);
            free(r->target);
            free_hash_key(&r->hash_key);
            free(r->enqueue.redis_list);
            for (size_t k = 0; k < r->enqueue.nheaders; k++)
                free(r->enqueue.headers[k]);
            free(r->redirect.host);
            free(r->cache.shared);
        }
        free(l->routes);
        free(l->cluster);
        free_hash_key(&l->hash_key);
    }
    free(c->listeners);
    for (size_t i = 0; i < c->nclusters; i++) {
        struct conf_cluster *cl = &c->clusters[i];
        free(cl->name);
        for (size_t j = 0; j < cl->nservers; j++)
            free(cl->servers[j].name);
        free(cl->servers);
        free(cl->health.path);
        free(cl->health.host);
        free(cl->health.expect_body);
        free(cl->tls.ca);
        free(cl->tls.sni);
        free(cl->password);
    }
    free(c->clusters);
    conf_free_caches(c);
    for (size_t i = 0; i < c->nstatics; i++) {
        free(c->statics[i].name);
        free(c->statics[i].dir);
        free(c->statics[i].fallback);
    }
    free(c->statics);
    free(c->global.admin_socket);
    free(c->global.access_file);
    free(c->global.admin_http_token_file);
    if (c->global.admin_http_token) {
        memset(c->global.admin_http_token, 0, strlen(c->global.admin_http_token));
        free(c->global.admin_http_token);
    }
    for (size_t i = 0; i < c->global.nredis_nodes; i++)
        free(c->global.redis_nodes[i]);
    free(c->global.redis_nodes);
    free(c->global.redis_instance);
    free(c->global.redis_prefix);
    free(c->global.redis_password);
    free(c->file);
    free(c);
}

/* The directory part of @name, or NULL when it is the current directory. */
static char *dir_of(const char *name)
{
    const char *slash = strrchr(name, '/');
    if (!slash)
        return NULL;
    if (slash == name)
        return strdup("/");
    return strndup(name, (size_t)(slash - name));
}

struct conf *conf_load_buf(const char *name, const char *buf, size_t len, struct conf_diags *d)
{
    const struct conf_pos top = {1, 1};
    struct conf_node *root = NULL;
    struct conf_ctx x = {.d = d};
    struct conf *c = NULL;

    memset(d, 0, sizeof(*d));
    if (len > CONF_MAX_FILE) {
        conf_diag(d, top, "file is too large (%zu bytes; the limit is %u)", len, CONF_MAX_FILE);
        return NULL;
    }
    if (conf_text_check(buf, len, d) < 0)
        return NULL;
    if (conf_tree_parse(buf, len, d, &root) < 0)
        goto out;

    c = calloc(1, sizeof(*c));
    x.c = c;
    if (!c || !(c->file = strdup(name))) {
        conf_diag(d, top, "out of memory");
        goto out;
    }
    x.base_dir = dir_of(name);
    if (!root) {
        conf_diag(d, top, "the file is empty: at least one listener is needed");
        goto out;
    }
    /* The validator runs even after load errors so that one run reports everything; it skips
     * whatever the loader could not fill in. */
    conf_load_root(&x, root);
    conf_validate(&x);
    conf_validate_caches(&x);
    if (!d->n && (conf_add_redis_cluster(c) < 0 || conf_add_cache_clusters(c) < 0))
        conf_diag(d, top, "out of memory");
out:
    free((char *)x.base_dir);
    free(x.cluster_flags);
    conf_tree_free(root);
    if (d->n || d->dropped) {
        conf_diags_sort(d);
        conf_free(c);
        return NULL;
    }
    return c;
}

struct conf *conf_load(const char *file, struct conf_diags *d)
{
    const struct conf_pos nowhere = {0, 0};
    struct stat st;
    char *buf = NULL;

    memset(d, 0, sizeof(*d));
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        conf_diag(d, nowhere, "cannot read: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        conf_diag(d, nowhere, "not a regular file");
        goto fail;
    }
    if ((uint64_t)st.st_size > CONF_MAX_FILE) {
        conf_diag(d, nowhere, "file is too large (%lld bytes; the limit is %u)",
                  (long long)st.st_size, CONF_MAX_FILE);
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    buf = malloc(cap);
    if (!buf) {
        conf_diag(d, nowhere, "out of memory");
        goto fail;
    }
    /* Read to EOF rather than trusting st_size: the file may change while we read it. */
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            conf_diag(d, nowhere, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            if (cap > CONF_MAX_FILE) {
                conf_diag(d, nowhere, "file is too large (the limit is %u bytes)", CONF_MAX_FILE);
                goto fail;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                conf_diag(d, nowhere, "out of memory");
                goto fail;
            }
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    struct conf *c = conf_load_buf(file, buf, len, d);
    free(buf);
    return c;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

const char *conf_balance_name(enum conf_balance b)
{
    switch (b) {
    case CONF_BAL_ROUND_ROBIN:
        return "round_robin";
    case CONF_BAL_LEAST_CONN:
        return "least_conn";
    case CONF_BAL_RANDOM_TWO:
        return "random_two";
    case CONF_BAL_MAGLEV:
        return "maglev";
    case CONF_BAL_RING_HASH:
        return "ring_hash";
    }
    return "?";
}

const char *conf_check_name(enum conf_check c)
{
    switch (c) {
    case CONF_CHECK_NONE:
        return "none";
    case CONF_CHECK_TCP:
        return "tcp";
    case CONF_CHECK_HTTP:
        return "http";
    case CONF_CHECK_REDIS:
        return "redis";
    }
    return "?";
}

const char *conf_protocol_name(enum conf_protocol p)
{
    switch (p) {
    case CONF_PROTO_HTTP:
        return "http";
    case CONF_PROTO_TCP:
        return "tcp";
    case CONF_PROTO_REDIS:
        return "redis";
    }
    return "?";
}

const char *conf_hash_kind_name(enum conf_hash_kind k)
{
    switch (k) {
    case CONF_HASH_NONE:
        return "none";
    case CONF_HASH_CLIENT_IP:
        return "client_ip";
    case CONF_HASH_HEADER:
        return "header";
    case CONF_HASH_COOKIE:
        return "cookie";
    case CONF_HASH_PATH:
        return "path";
    case CONF_HASH_URI:
        return "uri";
    }
    return "?";
}

int conf_cluster_find(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->nclusters; i++)
        if (c->clusters[i].name && !strcmp(c->clusters[i].name, name))
            return (int)i;
    return -1;
}
