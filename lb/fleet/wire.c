/*
 * The fleet's text in Redis (wire.h): written with snprintf, read back word by word with
 * every word checked, so that a value written by hand or by another program is refused
 * whole rather than half applied.
 */
#include <stdio.h>
#include <string.h>

#include "lb/fleet/wire.h"

static const char *const kinds[] = {"drain", "weight"};

bool fleet_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '_' && ch != '-' && ch != '.')))
            return false;
    }
    return true;
}

static int fit(int n, size_t cap)
{
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int fleet_field_format(const struct fleet_change *c, char *buf, size_t cap)
{
    return fit(snprintf(buf, cap, "%s %s %s", kinds[c->kind], c->cluster, c->server), cap);
}

int fleet_value_format(const struct fleet_change *c, char *buf, size_t cap)
{
    return fit(snprintf(buf, cap, "%llu %s %u", (unsigned long long)c->t, c->instance, c->value),
               cap);
}

int fleet_event_format(const struct fleet_change *c, char *buf, size_t cap)
{
    return fit(snprintf(buf, cap, "%s %s %s %llu %s %u", kinds[c->kind], c->cluster, c->server,
                        (unsigned long long)c->t, c->instance, c->value),
               cap);
}

/* ---- reading ---- */

struct words {
    const char *p[8];
    size_t n[8];
    size_t count;
};

/* Splits @s on single spaces; false when there are not exactly @want words, or a word is
 * empty (two spaces, a leading or trailing one). */
static bool split(const char *s, size_t len, size_t want, struct words *w)
{
    w->count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ' ')
            continue;
        if (i == start || w->count == want)
            return false;
        w->p[w->count] = s + start;
        w->n[w->count++] = i - start;
        start = i + 1;
    }
    return w->count == want;
}

static bool number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (max - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool copy_name(const char *s, size_t n, char *out)
{
    if (!fleet_name_ok(s, n))
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* Words [0..2] (KIND CLUSTER SERVER) and [3..5] (T INSTANCE V) of @w into @c. */
static int fill(const struct words *w, size_t first_value, struct fleet_change *c, const char **why)
{
    memset(c, 0, sizeof(*c));
    if (w->n[0] == 5 && !memcmp(w->p[0], "drain", 5))
        c->kind = FLEET_DRAIN;
    else if (w->n[0] == 6 && !memcmp(w->p[0], "weight", 6))
        c->kind = FLEET_WEIGHT;
    else
        return *why = "unknown kind (drain or weight)", -1;
    if (!copy_name(w->p[1], w->n[1], c->cluster) || !copy_name(w->p[2], w->n[2], c->server))
        return *why = "a cluster or server that is not a name", -1;
    uint64_t t, v;
    size_t k = first_value;
    if (!number(w->p[k], w->n[k], UINT64_MAX / 2, &t) || t == 0)
        return *why = "a bad time", -1;
    if (!copy_name(w->p[k + 1], w->n[k + 1], c->instance))
        return *why = "an instance that is not a name", -1;
    uint64_t lo = c->kind == FLEET_DRAIN ? 0 : 1, hi = c->kind == FLEET_DRAIN ? 1 : 256;
    if (!number(w->p[k + 2], w->n[k + 2], 1000, &v) || v < lo || v > hi)
        return *why = c->kind == FLEET_DRAIN ? "a drain that is not 0 or 1"
                                             : "a weight outside 1..256",
               -1;
    c->t = t;
    c->value = (uint32_t)v;
    return 0;
}

int fleet_state_parse(const char *field, size_t flen, const char *value, size_t vlen,
                      struct fleet_change *c, const char **why)
{
    struct words f, v, all;
    if (!split(field, flen, 3, &f))
        return *why = "a field that is not KIND CLUSTER SERVER", -1;
    if (!split(value, vlen, 3, &v))
        return *why = "a value that is not T INSTANCE V", -1;
    all.count = 6;
    for (size_t i = 0; i < 3; i++) {
        all.p[i] = f.p[i], all.n[i] = f.n[i];
        all.p[3 + i] = v.p[i], all.n[3 + i] = v.n[i];
    }
    return fill(&all, 3, c, why);
}

int fleet_event_parse(const char *msg, size_t len, struct fleet_change *c, const char **why)
{
    struct words w;
    if (!split(msg, len, 6, &w))
        return *why = "an event that is not KIND CLUSTER SERVER T INSTANCE V", -1;
    return fill(&w, 3, c, why);
}

bool fleet_newer(const struct fleet_change *a, const struct fleet_change *b)
{
    return a->t > b->t || (a->t == b->t && strcmp(a->instance, b->instance) > 0);
}

/* ---- invalidations ---- */

static bool host_ok(const char *s, size_t n)
{
    if (n == 0 || n >= FLEET_INVAL_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("-._:[]", ch)) ||
            ch == '\0')
            return false;
    }
    return true;
}

static bool target_ok(const char *s, size_t n)
{
    if (n == 0 || n >= FLEET_INVAL_TARGET_MAX || s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

bool fleet_inval_ok(const char *host, size_t hlen, const char *target, size_t tlen)
{
    return host_ok(host, hlen) && target_ok(target, tlen);
}

int fleet_inval_format(const struct fleet_inval *v, char *buf, size_t cap)
{
    return fit(snprintf(buf, cap, "invalidate %s %.*s %.*s", v->instance, (int)v->host_len, v->host,
                        (int)v->target_len, v->target),
               cap);
}

bool fleet_is_inval(const char *msg, size_t len)
{
    return len >= 11 && !memcmp(msg, "invalidate ", 11);
}

int fleet_inval_parse(const char *msg, size_t len, struct fleet_inval *v, const char **why)
{
    struct words w;
    memset(v, 0, sizeof(*v));
    if (!split(msg, len, 4, &w) || w.n[0] != 10 || memcmp(w.p[0], "invalidate", 10))
        return *why = "an event that is not 'invalidate INSTANCE HOST TARGET'", -1;
    if (!copy_name(w.p[1], w.n[1], v->instance))
        return *why = "an instance that is not a name", -1;
    if (!host_ok(w.p[2], w.n[2]))
        return *why = "a host that is empty, too long or not letters, digits and -._:[]", -1;
    if (!target_ok(w.p[3], w.n[3]))
        return *why = "a target that is not '/' then visible ASCII, under 2048 bytes", -1;
    memcpy(v->host, w.p[2], w.n[2]);
    memcpy(v->target, w.p[3], w.n[3]);
    v->host_len = (uint32_t)w.n[2];
    v->target_len = (uint32_t)w.n[3];
    return 0;
}

/* ---- heartbeats ---- */

static int member_line(const char *s, size_t n, struct fleet_member *m, const char **why)
{
    struct words w;
    uint64_t started, pid, sent;
    if (!split(s, n, 5, &w) || w.n[0] != 3 || memcmp(w.p[0], "lb1", 3))
        return *why = "a heartbeat that does not begin with 'lb1 NAME STARTED PID SENT'", -1;
    if (!copy_name(w.p[1], w.n[1], m->name) || !number(w.p[2], w.n[2], UINT64_MAX / 2, &started) ||
        !number(w.p[3], w.n[3], UINT32_MAX, &pid) || !number(w.p[4], w.n[4], UINT64_MAX / 2, &sent))
        return *why = "a heartbeat with a bad name, start time, pid or time", -1;
    m->started_ms = started;
    m->sent_ms = sent;
    m->pid = (uint32_t)pid;
    return 0;
}

static int view_line(const char *s, size_t n, struct fleet_view *v, const char **why)
{
    struct words w;
    uint64_t active;
    if (!split(s, n, 4, &w) || !copy_name(w.p[0], w.n[0], v->cluster) ||
        !copy_name(w.p[1], w.n[1], v->server) || w.n[2] >= sizeof(v->state) ||
        !number(w.p[3], w.n[3], UINT32_MAX, &active))
        return *why = "a heartbeat server line that is not CLUSTER SERVER STATE ACTIVE", -1;
    static const char *const states[] = {"up", "down", "draining", "ejected", "backup"};
    bool known = false;
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        known |= strlen(states[i]) == w.n[2] && !memcmp(states[i], w.p[2], w.n[2]);
    if (!known)
        return *why = "a heartbeat with an unknown server state", -1;
    memcpy(v->state, w.p[2], w.n[2]);
    v->state[w.n[2]] = '\0';
    v->active = (uint32_t)active;
    return 0;
}

int fleet_heartbeat_parse(const char *s, size_t len, struct fleet_member *m, struct fleet_view *v,
                          size_t max, size_t *nv, const char **why)
{
    *nv = 0;
    size_t start = 0;
    bool first = true;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\n')
            continue;
        int rc = first ? member_line(s + start, i - start, m, why)
                       : (*nv < max ? view_line(s + start, i - start, &v[*nv], why) : 0);
        if (rc < 0)
            return -1;
        if (!first && *nv < max)
            (*nv)++;
        first = false;
        start = i + 1;
    }
    if (first || start != len)
        return *why = "a heartbeat that does not end with a newline", -1;
    return 0;
}
