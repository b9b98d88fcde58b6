/*
 * Admin commands without the socket: the line parser, the JSON answer writer, running a
 * command against the shared server table, and the state file. See admin.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/core/snapshots.h"
#include "lb/metrics/metrics.h"
#include "lb/tls/tls.h"

#define MAX_WORDS 6
#define STATE_FILE_MAX (1u << 20)

/* ---- parser ---------------------------------------------------------------------------- */

struct word {
    const char *p;
    size_t len;
};

static bool word_is(const struct word *w, const char *s)
{
    return w->len == strlen(s) && !memcmp(w->p, s, w->len);
}

/* The config's rule for names (conf/load.c): letters, digits, '_', '-', '.', starting with a
 * letter or digit, shorter than CONF_NAME_MAX. Anything else cannot name a server, so it is
 * refused here rather than looked up. */
static int copy_name(const struct word *w, char *dst, const char *what, struct lb_err *err)
{
    bool ok = w->len > 0 && w->len < CONF_NAME_MAX;
    for (size_t i = 0; ok && i < w->len; i++) {
        char ch = w->p[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        ok = alnum || (i > 0 && (ch == '_' || ch == '-' || ch == '.'));
    }
    if (!ok) {
        lb_err_set(err, "bad %s name '%.*s': letters, digits, '_', '-', '.', at most %d", what,
                   (int)(w->len > 64 ? 64 : w->len), w->p, CONF_NAME_MAX - 1);
        return -EINVAL;
    }
    memcpy(dst, w->p, w->len);
    dst[w->len] = '\0';
    return 0;
}

static int parse_weight(const struct word *w, uint32_t *out, struct lb_err *err)
{
    uint32_t v = 0;
    bool ok = w->len > 0 && w->len <= 3;
    for (size_t i = 0; ok && i < w->len; i++) {
        ok = w->p[i] >= '0' && w->p[i] <= '9';
        v = v * 10 + (uint32_t)(w->p[i] - '0');
    }
    if (!ok || v < 1 || v > 256) {
        lb_err_set(err, "bad weight '%.*s': a whole number in 1..256",
                   (int)(w->len > 16 ? 16 : w->len), w->p);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int want_args(size_t nw, size_t want, const char *usage, struct lb_err *err)
{
    if (nw == want)
        return 0;
    lb_err_set(err, "usage: %s", usage);
    return -EINVAL;
}

/* Appends @n bytes to the explain request; false when it would not fit. */
static bool req_put(struct admin_cmd *cmd, const char *p, size_t n)
{
    if (cmd->request_len + n > sizeof(cmd->request))
        return false;
    memcpy(cmd->request + cmd->request_len, p, n);
    cmd->request_len += n;
    return true;
}

/* explain redis KEY: @kl 0 when the words were not exactly two. */
static int parse_explain_key(const char *key, size_t kl, struct admin_cmd *cmd, struct lb_err *err)
{
    if (kl == 0 || kl >= sizeof(cmd->request)) {
        lb_err_set(err, "usage: explain redis KEY (one word, printable ASCII)");
        return -EINVAL;
    }
    cmd->verb = ADMIN_EXPLAIN_KEY;
    memcpy(cmd->request, key, kl);
    cmd->request_len = kl;
    return 0;
}

/*
 * explain METHOD URL [Name: value]...: URL is http://host[:port]/path?query or /path; a word
 * ending in ':' starts a field, the words after it (to the next such word) are its value.
 * Builds the HTTP/1.1 request those words describe; the HTTP parser judges it later, so
 * nothing here needs to be stricter than "printable ASCII, fits".
 */
static int parse_explain(const char *p, size_t len, struct admin_cmd *cmd, struct lb_err *err)
{
    cmd->verb = ADMIN_EXPLAIN;
    const char *w[64];
    size_t wl[64], nw = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == ' ' || ch == '\t') {
            i++;
            continue;
        }
        if (ch < 0x21 || ch > 0x7e) {
            lb_err_set(err, "byte 0x%02x in explain: commands are printable ASCII", ch);
            return -EINVAL;
        }
        if (nw == 64) {
            lb_err_set(err, "explain: too many words");
            return -EINVAL;
        }
        w[nw] = p + i;
        while (i < len && p[i] != ' ' && p[i] != '\t' && (unsigned char)p[i] >= 0x21 &&
               (unsigned char)p[i] <= 0x7e)
            i++;
        wl[nw] = (size_t)(p + i - w[nw]);
        nw++;
    }
    if (nw < 2) {
        lb_err_set(err, "usage: explain METHOD URL [Name: value]... | explain redis KEY");
        return -EINVAL;
    }
    if (wl[0] == 5 && !memcmp(w[0], "redis", 5))
        return parse_explain_key(w[1], nw == 2 ? wl[1] : 0, cmd, err);
    const char *url = w[1], *host = NULL, *target = url;
    size_t ul = wl[1], hl = 0, tl = ul;
    if (ul > 7 && !strncasecmp(url, "http://", 7)) {
        host = url + 7;
        const char *slash = memchr(host, '/', ul - 7);
        hl = slash ? (size_t)(slash - host) : ul - 7;
        target = slash ? slash : "/";
        tl = slash ? (size_t)(url + ul - slash) : 1;
    } else if (url[0] != '/') {
        lb_err_set(err, "explain: URL must be http://host/path or /path");
        return -EINVAL;
    }
    bool ok = req_put(cmd, w[0], wl[0]) && req_put(cmd, " ", 1) && req_put(cmd, target, tl) &&
              req_put(cmd, " HTTP/1.1\r\n", 11);
    bool has_host = false;
    for (size_t i = 2; i < nw && ok; i++) {
        bool name = wl[i] > 1 && w[i][wl[i] - 1] == ':';
        if (name) {
            if (i > 2)
                ok = req_put(cmd, "\r\n", 2);
            has_host |= wl[i] == 5 && !strncasecmp(w[i], "host:", 5);
            ok = ok && req_put(cmd, w[i], wl[i]);
        } else if (i == 2) {
            lb_err_set(err, "explain: '%.*s' is not a field name (Name: value)",
                       (int)(wl[i] > 32 ? 32 : wl[i]), w[i]);
            return -EINVAL;
        } else {
            ok = req_put(cmd, " ", 1) && req_put(cmd, w[i], wl[i]);
        }
    }
    if (nw > 2)
        ok = ok && req_put(cmd, "\r\n", 2);
    if (!has_host)
        ok = ok && req_put(cmd, "Host: ", 6) &&
             req_put(cmd, host ? host : "localhost", host ? hl : 9) && req_put(cmd, "\r\n", 2);
    ok = ok && req_put(cmd, "\r\n", 2);
    if (!ok) {
        lb_err_set(err, "explain: request too long");
        return -EINVAL;
    }
    return 0;
}

/* Splits @line into words of printable ASCII separated by blanks. 0, or -EINVAL with the
 * reason. */
static int split_words(const char *line, size_t len, struct word *w, size_t *nwp,
                       struct lb_err *err)
{
    size_t nw = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)line[i];
        if (ch == ' ' || ch == '\t') {
            i++;
            continue;
        }
        if (ch < 0x21 || ch > 0x7e) {
            lb_err_set(err, "byte 0x%02x at offset %zu: commands are printable ASCII", ch, i);
            return -EINVAL;
        }
        if (nw == MAX_WORDS) {
            lb_err_set(err, "too many words");
            return -EINVAL;
        }
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && (unsigned char)line[i] >= 0x21 &&
               (unsigned char)line[i] <= 0x7e)
            i++;
        w[nw].p = line + start;
        w[nw].len = i - start;
        nw++;
    }
    *nwp = nw;
    return 0;
}

/* fleet, or fleet ack T. */
static int parse_fleet(const struct word *w, size_t nw, struct admin_cmd *cmd, struct lb_err *err)
{
    cmd->verb = ADMIN_FLEET;
    if (nw == 1)
        return 0;
    uint64_t t = 0;
    bool ok = nw == 3 && word_is(&w[1], "ack") && w[2].len > 0 && w[2].len < 20;
    for (size_t i = 0; ok && i < w[2].len; i++) {
        ok = w[2].p[i] >= '0' && w[2].p[i] <= '9';
        t = t * 10 + (uint64_t)(w[2].p[i] - '0');
    }
    if (!ok || !t) {
        lb_err_set(err, "usage: fleet [ack T]");
        return -EINVAL;
    }
    cmd->ack = t;
    return 0;
}

int admin_parse(const char *line, size_t len, struct admin_cmd *cmd, struct lb_err *err)
{
    struct word w[MAX_WORDS];
    size_t nw = 0;

    memset(cmd, 0, sizeof(*cmd));
    if (len && line[len - 1] == '\r') /* telnet and nc -C send CRLF */
        len--;
    if (len >= 8 && !memcmp(line, "explain ", 8))
        return parse_explain(line + 8, len - 8, cmd, err);
    if (len >= 5 && !memcmp(line, "cache", 5) && (len == 5 || line[5] == ' ' || line[5] == '\t'))
        return admin_parse_cache(line + 5, len - 5, cmd, err);
    if (split_words(line, len, w, &nw, err) < 0)
        return -EINVAL;
    if (nw == 0) {
        lb_err_set(err, "empty command");
        return -EINVAL;
    }

    /* Commands without arguments. */
    static const struct {
        const char *name;
        enum admin_verb verb;
    } bare[] = {{"status", ADMIN_STATUS},
                {"reload", ADMIN_RELOAD},
                {"tls", ADMIN_TLS},
                {"queues", ADMIN_QUEUES}};
    for (size_t k = 0; k < sizeof(bare) / sizeof(bare[0]); k++) {
        if (word_is(&w[0], bare[k].name)) {
            cmd->verb = bare[k].verb;
            return want_args(nw, 1, bare[k].name, err);
        }
    }
    /* drain, undrain and weight --local: not shared with the fleet. */
    if (nw > 1 && word_is(&w[nw - 1], "--local") &&
        (word_is(&w[0], "drain") || word_is(&w[0], "undrain") || word_is(&w[0], "weight"))) {
        cmd->local = true;
        nw--;
    }
    if (word_is(&w[0], "fleet"))
        return parse_fleet(w, nw, cmd, err);
    if (word_is(&w[0], "drain") || word_is(&w[0], "undrain")) {
        cmd->verb = w[0].len == 5 ? ADMIN_DRAIN : ADMIN_UNDRAIN;
        if (want_args(nw, 3,
                      cmd->verb == ADMIN_DRAIN ? "drain CLUSTER SERVER" : "undrain CLUSTER SERVER",
                      err) < 0)
            return -EINVAL;
        if (copy_name(&w[1], cmd->cluster, "cluster", err) < 0 ||
            copy_name(&w[2], cmd->server, "server", err) < 0)
            return -EINVAL;
        return 0;
    }
    if (word_is(&w[0], "weight")) {
        cmd->verb = ADMIN_WEIGHT;
        if (want_args(nw, 4, "weight CLUSTER SERVER N (N in 1..256)", err) < 0 ||
            copy_name(&w[1], cmd->cluster, "cluster", err) < 0 ||
            copy_name(&w[2], cmd->server, "server", err) < 0 ||
            parse_weight(&w[3], &cmd->weight, err) < 0)
            return -EINVAL;
        return 0;
    }
    if (word_is(&w[0], "snapshots")) {
        cmd->verb = ADMIN_SNAPSHOTS_RELOAD;
        if (nw < 2 || nw > 3 || !word_is(&w[1], "reload")) {
            lb_err_set(err, "usage: snapshots reload [SET]");
            return -EINVAL;
        }
        return nw == 3 ? copy_name(&w[2], cmd->set, "snapshot set", err) : 0;
    }
    lb_err_set(err,
               "unknown command '%.*s': status, drain, undrain, weight, reload, "
               "snapshots reload, explain, tls, queues, fleet, cache",
               (int)(w[0].len > 32 ? 32 : w[0].len), w[0].p);
    return -EINVAL;
}

/* ---- JSON writer ----------------------------------------------------------------------- */

void lb_jbuf_init(struct lb_jbuf *j, size_t max)
{
    memset(j, 0, sizeof(*j));
    j->max = max;
}

void lb_jbuf_free(struct lb_jbuf *j)
{
    free(j->p);
    j->p = NULL;
    j->len = j->cap = 0;
}

void lb_jbuf_reset(struct lb_jbuf *j)
{
    j->len = 0;
    j->overflow = false;
}

/* Makes room for @n more bytes plus a NUL. */
static bool jbuf_reserve(struct lb_jbuf *j, size_t n)
{
    if (j->overflow)
        return false;
    if (j->len + n + 1 <= j->cap)
        return true;
    if (j->len + n + 1 > j->max) {
        j->overflow = true;
        return false;
    }
    size_t cap = j->cap ? j->cap : 256;
    while (cap < j->len + n + 1)
        cap *= 2;
    if (cap > j->max)
        cap = j->max;
    char *p = realloc(j->p, cap);
    if (!p) {
        j->overflow = true;
        return false;
    }
    j->p = p;
    j->cap = cap;
    return true;
}

void lb_jbuf_printf(struct lb_jbuf *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !jbuf_reserve(j, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(j->p + j->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    j->len += (size_t)n;
}

void lb_jbuf_str(struct lb_jbuf *j, const char *s, size_t len)
{
    /* Worst case 6 output bytes per input byte, plus the quotes. */
    if (len > (SIZE_MAX - 2) / 6 || !jbuf_reserve(j, len * 6 + 2))
        return;
    char *o = j->p + j->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += sprintf(o, "\\u%04x", ch);
        } else if (ch >= 0x80) {
            /* Nothing lb answers is meant to be non-ASCII (names are ASCII); a stray byte is
             * shown as U+FFFD rather than risk invalid UTF-8 in the answer. */
            memcpy(o, "\\ufffd", 6);
            o += 6;
        } else {
            *o++ = (char)ch;
        }
    }
    *o++ = '"';
    *o = '\0';
    j->len = (size_t)(o - j->p);
}

void admin_error(struct lb_jbuf *out, const char *msg)
{
    lb_jbuf_printf(out, "{\"ok\":false,\"error\":");
    lb_jbuf_str(out, msg, strlen(msg));
    lb_jbuf_printf(out, "}");
}

/* ---- commands -------------------------------------------------------------------------- */

void admin_status_clusters(struct lb_runtime *rt, const double *const *rates, struct lb_jbuf *out)
{
    static const char *const probe_names[] = {"none", "ok", "fail"};
    lb_jbuf_printf(out, "\"clusters\":[");
    for (size_t ci = 0; ci < rt->conf->nclusters; ci++) {
        const struct conf_cluster *cf = &rt->conf->clusters[ci];
        const struct cl_cluster *c = &rt->clusters[ci];
        lb_jbuf_printf(out, "%s{\"name\":", ci ? "," : "");
        lb_jbuf_str(out, cf->name, strlen(cf->name));
        lb_jbuf_printf(out, ",\"balance\":\"%s\",\"health_check\":\"%s\",\"servers\":[",
                       conf_balance_name(cf->balance), conf_check_name(cf->health.check));
        for (uint32_t si = 0; si < c->n; si++) {
            const struct cl_server *s = &c->servers[si];
            lb_jbuf_printf(out, "%s{\"name\":", si ? "," : "");
            lb_jbuf_str(out, s->cf->name, strlen(s->cf->name));
            lb_jbuf_printf(out, ",\"address\":");
            lb_jbuf_str(out, s->cf->addr.text, strnlen(s->cf->addr.text, sizeof(s->cf->addr.text)));
            if (s->cf->nreplicas) { /* check: redis: the members, and the one that is master */
                const struct conf_addr *m = cl_server_addr(s);
                lb_jbuf_printf(out, ",\"master\":");
                lb_jbuf_str(out, m->text, strnlen(m->text, sizeof(m->text)));
                lb_jbuf_printf(out, ",\"replicas\":[");
                for (size_t k = 0; k < s->cf->nreplicas; k++) {
                    lb_jbuf_printf(out, "%s", k ? "," : "");
                    lb_jbuf_str(out, s->cf->replicas[k].text, strlen(s->cf->replicas[k].text));
                }
                lb_jbuf_printf(out, "]");
            }
            lb_jbuf_printf(
                out,
                ",\"state\":\"%s\",\"backup\":%s,\"config_weight\":%u,\"weight\":%u,"
                "\"active\":%u,\"picks\":%llu,\"connect_failures\":%llu,\"bytes_in\":%llu,"
                "\"bytes_out\":%llu,\"rate\":%.1f,\"retries\":%llu,\"responses\":{",
                cl_server_state(s), s->cf->backup ? "true" : "false", s->cf->weight,
                atomic_load_explicit(&s->weight, memory_order_relaxed),
                atomic_load_explicit(&s->active, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(&s->picks, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(&s->connect_failures,
                                                         memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(&s->bytes_in, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(&s->bytes_out, memory_order_relaxed),
                rates && rates[ci] ? rates[ci][si] : 0.0,
                (unsigned long long)atomic_load_explicit(&s->retries, memory_order_relaxed));
            for (int k = 0; k < 5; k++)
                lb_jbuf_printf(
                    out, "%s\"%dxx\":%llu", k ? "," : "", k + 1,
                    (unsigned long long)atomic_load_explicit(&s->resp[k], memory_order_relaxed));
            uint32_t pr = atomic_load_explicit(&s->probe_result, memory_order_relaxed);
            lb_jbuf_printf(out, "},\"last_check\":\"%s\",\"check_latency_ms\":%.1f}",
                           probe_names[pr < 3 ? pr : 0],
                           atomic_load_explicit(&s->probe_latency_us, memory_order_relaxed) /
                               1000.0);
        }
        lb_jbuf_printf(out, "]}");
    }
    lb_jbuf_printf(out, "]");
}

/* Finds cmd's cluster and server; on failure answers with the valid names and returns NULL. */
static struct cl_server *find_server(struct lb_runtime *rt, const struct admin_cmd *cmd,
                                     struct lb_jbuf *out, size_t *cluster_idx)
{
    int ci = conf_cluster_find(rt->conf, cmd->cluster);
    if (ci < 0) {
        lb_jbuf_printf(out, "{\"ok\":false,\"error\":\"unknown cluster '%s'\",\"clusters\":[",
                       cmd->cluster);
        for (size_t i = 0; i < rt->conf->nclusters; i++) {
            lb_jbuf_printf(out, "%s", i ? "," : "");
            lb_jbuf_str(out, rt->conf->clusters[i].name, strlen(rt->conf->clusters[i].name));
        }
        lb_jbuf_printf(out, "]}");
        return NULL;
    }
    struct cl_cluster *c = &rt->clusters[ci];
    for (uint32_t i = 0; i < c->n; i++) {
        if (!strcmp(c->servers[i].cf->name, cmd->server)) {
            *cluster_idx = (size_t)ci;
            return &c->servers[i];
        }
    }
    lb_jbuf_printf(out,
                   "{\"ok\":false,\"error\":\"unknown server '%s' in cluster '%s'\",\"servers\":[",
                   cmd->server, cmd->cluster);
    for (uint32_t i = 0; i < c->n; i++) {
        lb_jbuf_printf(out, "%s", i ? "," : "");
        lb_jbuf_str(out, c->servers[i].cf->name, strlen(c->servers[i].cf->name));
    }
    lb_jbuf_printf(out, "]}");
    return NULL;
}

/* drain and undrain: ADMIN_R_CHANGED when the flag flipped, so that the state file is saved. */
static int exec_drain(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    size_t ci = 0;
    uint32_t prev;
    struct cl_server *s = find_server(rt, cmd, out, &ci);
    if (!s)
        return ADMIN_R_ERROR;
    /* seq_cst, and before the answer is written: a connection lbctl's caller opens after
     * lbctl returns is picked after this store, and cl_server_usable() then refuses it. */
    if (cmd->verb == ADMIN_DRAIN)
        prev = atomic_fetch_or(&s->flags, CL_SRV_F_DRAINING);
    else
        prev = atomic_fetch_and(&s->flags, ~(uint32_t)CL_SRV_F_DRAINING);
    lb_info(cmd->verb == ADMIN_DRAIN ? "admin: drain" : "admin: undrain", "cluster=%s server=%s",
            cmd->cluster, cmd->server);
    lb_jbuf_printf(out,
                   "{\"ok\":true,\"cluster\":\"%s\",\"server\":\"%s\",\"state\":\"%s\","
                   "\"active\":%u}",
                   cmd->cluster, cmd->server, cl_server_state(s),
                   atomic_load_explicit(&s->active, memory_order_relaxed));
    return ((prev & CL_SRV_F_DRAINING) != 0) != (cmd->verb == ADMIN_DRAIN) ? ADMIN_R_CHANGED : 0;
}

/* weight: sets the operator's weight (slow start ramps toward it); ADMIN_R_CHANGED when the
 * effective weight changed. */
static int exec_weight(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    size_t ci = 0;
    struct cl_server *s = find_server(rt, cmd, out, &ci);
    if (!s)
        return ADMIN_R_ERROR;
    atomic_store(&s->op_weight, cmd->weight);
    uint32_t prev = atomic_exchange(&s->weight, cmd->weight);
    lb_info("admin: weight", "cluster=%s server=%s weight=%u previous=%u", cmd->cluster,
            cmd->server, cmd->weight, prev);
    lb_jbuf_printf(out,
                   "{\"ok\":true,\"cluster\":\"%s\",\"server\":\"%s\",\"weight\":%u,"
                   "\"config_weight\":%u,\"previous\":%u",
                   cmd->cluster, cmd->server, cmd->weight, s->cf->weight, prev);
    /* Maglev tables, rings and round robin's shared order hold the weights: build them
     * again (here, off the data path) and swap them in; a balancer with nothing built
     * (least_conn, random_two) reads the weights live and needs nothing. */
    struct lb_err e = {{0}};
    if (cl_cluster_reweigh(&rt->clusters[ci], &e) < 0)
        lb_jbuf_printf(out,
                       ",\"note\":\"the table could not be rebuilt (%s): shares "
                       "stay as they were\"",
                       e.msg);
    lb_jbuf_printf(out, "}");
    return prev != cmd->weight ? ADMIN_R_CHANGED : 0;
}

/* The answer to a reload whose configuration @file does not load: each of @d's messages. */
static void reload_errors(const char *file, const struct conf_diags *d, struct lb_jbuf *out)
{
    lb_jbuf_printf(out, "{\"ok\":false,\"error\":\"the configuration has errors; "
                        "the running one stays\",\"errors\":[");
    for (size_t i = 0; i < d->n; i++) {
        char line[400];
        if (d->items[i].pos.line)
            snprintf(line, sizeof(line), "%s:%u:%u: %s", file, d->items[i].pos.line,
                     d->items[i].pos.col, d->items[i].msg);
        else
            snprintf(line, sizeof(line), "%s: %s", file, d->items[i].msg);
        lb_jbuf_printf(out, "%s", i ? "," : "");
        lb_jbuf_str(out, line, strlen(line));
    }
    lb_jbuf_printf(out, "]}");
}

static int exec_reload(struct lb_runtime *rt, struct lb_jbuf *out)
{
    /* Checked here first so that lbctl can show the errors; the reload itself runs on
     * the main thread (SIGHUP), which builds and swaps the new generation. */
    struct conf_diags *d = calloc(1, sizeof(*d));
    if (!d) {
        admin_error(out, "out of memory");
        return ADMIN_R_ERROR;
    }
    const char *file = rt->file ? rt->file : rt->conf->file;
    struct conf *nc = conf_load(file, d);
    /* Certificates and keys too: a reload that would fail on them says so here. */
    struct tls_gen *tg = nc ? tls_gen_build(nc, d, NULL) : NULL;
    if (!nc || !tg) {
        reload_errors(file, d, out);
        conf_free(nc);
        free(d);
        return ADMIN_R_ERROR;
    }
    tls_gen_free(tg);
    conf_free(nc);
    free(d);
    lb_info("admin: reload requested", "config=%s", file);
    kill(getpid(), SIGHUP);
    lb_jbuf_printf(out, "{\"ok\":true,\"reload\":\"started\"}");
    return 0;
}

/* snapshots reload [SET]: loads the set (every set without one) again and publishes it. */
static int exec_snapshots_reload(struct lb_runtime *rt, const struct admin_cmd *cmd,
                                 struct lb_jbuf *out)
{
    struct lb_err e = {{0}};
    int rc = lb_snapshots_reload(rt, cmd->set[0] ? cmd->set : NULL, &e);
    if (rc < 0) {
        admin_error(out, e.msg[0] ? e.msg : "snapshot reload failed");
        return ADMIN_R_ERROR;
    }
    lb_jbuf_printf(out, "{\"ok\":true,\"published\":\"%s\"}", cmd->set[0] ? cmd->set : "*");
    return 0;
}

int admin_exec(struct lb_runtime *rt, const double *const *rates, const struct admin_cmd *cmd,
               struct lb_jbuf *out)
{
    /* Names reach the answers through %s unescaped: admin_parse admits only [A-Za-z0-9_.-],
     * which JSON needs no escaping for. */
    switch (cmd->verb) {
    case ADMIN_STATUS:
        admin_status(rt, rates, out);
        return 0;
    case ADMIN_DRAIN:
    case ADMIN_UNDRAIN:
        return exec_drain(rt, cmd, out);
    case ADMIN_WEIGHT:
        return exec_weight(rt, cmd, out);
    case ADMIN_EXPLAIN:
        return admin_explain(rt, cmd, out);
    case ADMIN_EXPLAIN_KEY:
        return admin_explain_key(rt, cmd, out);
    case ADMIN_RELOAD:
        return exec_reload(rt, out);
    case ADMIN_SNAPSHOTS_RELOAD:
        return exec_snapshots_reload(rt, cmd, out);
    case ADMIN_TLS:
        lb_jbuf_printf(out, "{\"ok\":true,\"certificates\":");
        metrics_json_certs(rt, out);
        lb_jbuf_printf(out, "}");
        return 0;
    case ADMIN_QUEUES:
        return admin_queues(rt, out);
    case ADMIN_FLEET:
        return admin_fleet(cmd, out);
    case ADMIN_CACHE_PURGE:
        return admin_cache_purge(rt, cmd, out);
    case ADMIN_CACHE_STATS:
        return admin_cache_stats(rt, out);
    }
    admin_error(out, "internal error: unknown verb");
    return ADMIN_R_ERROR;
}

/* ---- state file ------------------------------------------------------------------------ */

int admin_state_save(struct lb_runtime *rt, const char *path, struct lb_err *err)
{
    struct lb_jbuf j;
    char tmp[4096];
    int fd = -1, rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        lb_err_set(err, "state file path too long");
        return -ENAMETOOLONG;
    }
    lb_jbuf_init(&j, 64u << 20);
    /* The lines are admin commands, read back through admin_parse(). */
    lb_jbuf_printf(&j, "# lb runtime state: drains and weights set through the admin socket.\n"
                       "# Written by lb, read at startup; lines for servers that no longer "
                       "exist are skipped.\n");
    for (size_t ci = 0; ci < rt->conf->nclusters; ci++) {
        const struct cl_cluster *c = &rt->clusters[ci];
        for (uint32_t si = 0; si < c->n; si++) {
            const struct cl_server *s = &c->servers[si];
            uint32_t w = atomic_load(&s->weight);
            if (atomic_load(&s->flags) & CL_SRV_F_DRAINING)
                lb_jbuf_printf(&j, "drain %s %s\n", rt->conf->clusters[ci].name, s->cf->name);
            if (w != s->cf->weight && w >= 1 && w <= 256)
                lb_jbuf_printf(&j, "weight %s %s %u\n", rt->conf->clusters[ci].name, s->cf->name,
                               w);
        }
    }
    if (j.overflow) {
        rc = -ENOMEM;
        lb_err_set(err, "state file %s: out of memory", path);
        goto fail;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail_errno;
    for (size_t off = 0; off < j.len;) {
        ssize_t n = write(fd, j.p + off, j.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail_errno;
        off += (size_t)n;
    }
    /* fsync before rename: otherwise a crash can leave the new name on an empty file. */
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        goto fail_errno;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail_errno;
    lb_jbuf_free(&j);
    return 0;
fail_errno:
    rc = -errno;
    lb_err_set(err, "state file %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
fail:
    lb_jbuf_free(&j);
    return rc;
}

int admin_state_load(struct lb_runtime *rt, const char *path, struct lb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        lb_err_set(err, "state file %s: %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(STATE_FILE_MAX + 1);
    size_t len = 0;
    int rc = 0, applied = 0;
    if (!buf) {
        close(fd);
        lb_err_set(err, "state file %s: out of memory", path);
        return -ENOMEM;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, STATE_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            lb_err_set(err, "state file %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > STATE_FILE_MAX) {
            rc = -EFBIG;
            lb_err_set(err, "state file %s: larger than %u bytes; not lb's", path, STATE_FILE_MAX);
            goto out;
        }
    }

    struct lb_jbuf scratch;
    lb_jbuf_init(&scratch, 64u << 10);
    unsigned lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + 1;
        lineno++;
        if (ll == 0 || line[0] == '#')
            continue;
        struct admin_cmd cmd;
        struct lb_err perr = {{0}};
        if (admin_parse(line, ll, &cmd, &perr) < 0 ||
            (cmd.verb != ADMIN_DRAIN && cmd.verb != ADMIN_WEIGHT)) {
            lb_warn("state file: line skipped", "file=%s line=%u reason=\"%s\"", path, lineno,
                    perr.msg[0] ? perr.msg : "not a drain or weight entry");
            continue;
        }
        lb_jbuf_reset(&scratch);
        if (admin_exec(rt, NULL, &cmd, &scratch) & ADMIN_R_ERROR) {
            lb_warn("state file: entry skipped: no such cluster or server now",
                    "file=%s line=%u "
                    "cluster=%s server=%s",
                    path, lineno, cmd.cluster, cmd.server);
            continue;
        }
        applied++;
    }
    lb_jbuf_free(&scratch);
    rc = applied;
out:
    free(buf);
    close(fd);
    return rc;
}
