/*
 * The health state machines: the server and probe-target tables, active rise/fall, passive
 * ejection, slow start, and the http response verdict. No sockets and no threads here (see
 * probe.c), so tests drive all of it with a fake clock. See hc.h for the rules.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "health/internal.h"

#define NO_USER UINT32_MAX

static void emit(struct hc *hc, const struct hc_server *s, enum hc_event_kind kind,
                 const char *reason, uint32_t latency_us, uint64_t ejection_ms)
{
    struct hc_event ev = {
        .kind = kind,
        .cluster = s->cluster,
        .server = s->server,
        .reason = reason,
        .latency_us = latency_us,
        .ejection_ms = ejection_ms,
        .ejections = s->ejections,
    };
    hc->ops.event(hc->ops.arg, &ev);
}

static bool usable(const struct hc_server *s)
{
    return s->active == HC_ACTIVE_UP && s->passive == HC_PASSIVE_IN;
}

static void set_weight(struct hc *hc, struct hc_server *s, uint32_t w)
{
    if (w == s->cur_weight)
        return;
    s->cur_weight = w;
    if (hc->ops.weight)
        hc->ops.weight(hc->ops.arg, s->cluster, s->server, w);
}

/* Effective weight @elapsed ms into a slow start: linear from 1 to the configured weight. */
static uint32_t ramp_weight(uint32_t weight, uint64_t elapsed, uint64_t span)
{
    if (elapsed >= span)
        return weight;
    uint64_t w = (uint64_t)weight * elapsed / span;
    return w < 1 ? 1 : (uint32_t)w;
}

/* Called after either state machine moved: a server that just became usable again starts its
 * slow start (a server never ramps at startup: it starts usable with its full weight). */
static void after_change(struct hc *hc, struct hc_server *s, bool was_usable, uint64_t now_ms)
{
    const struct conf_cluster *cf = hc->clusters[s->cluster].cf;
    if (was_usable || !usable(s)) {
        s->ramping = false;
        return;
    }
    if (!cf->slow_start_ms || s->weight <= 1)
        return;
    s->ramping = true;
    s->ramp_start_ms = now_ms;
    set_weight(hc, s, 1);
}

/* The one place the active state changes. */
static void active_set(struct hc *hc, struct hc_server *s, enum hc_active_state to,
                       const char *reason, uint32_t latency_us, uint64_t now_ms)
{
    assert(s->target >= 0 && s->active != to);
    bool was = usable(s);
    s->active = to;
    emit(hc, s, to == HC_ACTIVE_DOWN ? HC_EV_DOWN : HC_EV_UP, reason, latency_us, 0);
    after_change(hc, s, was, now_ms);
}

/* The one place the passive state changes; keeps the per-tier ejected count. */
static void passive_set(struct hc *hc, struct hc_server *s, enum hc_passive_state to,
                        const char *reason, uint32_t latency_us, uint64_t now_ms)
{
    struct hc_cluster *cl = &hc->clusters[s->cluster];
    const struct conf_passive *p = &cl->cf->passive;
    assert(p->enabled && s->passive != to);
    bool was = usable(s);
    s->passive = to;
    if (to == HC_PASSIVE_EJECTED) {
        assert(cl->tier_ejected[s->tier] < cl->tier_n[s->tier]);
        cl->tier_ejected[s->tier]++;
        s->ejections++;
        /* ejection x 2^(n-1), capped; the shift is bounded so it cannot overflow */
        uint32_t shift = s->ejections - 1 < 20 ? s->ejections - 1 : 20;
        uint64_t ms = p->ejection_ms << shift;
        if (ms > p->max_ejection_ms)
            ms = p->max_ejection_ms;
        s->eject_until_ms = now_ms + ms;
        emit(hc, s, HC_EV_EJECTED, reason, latency_us, ms);
    } else {
        assert(cl->tier_ejected[s->tier] > 0);
        cl->tier_ejected[s->tier]--;
        s->in_since_ms = now_ms;
        emit(hc, s, HC_EV_RETURNED, reason, latency_us, 0);
    }
    after_change(hc, s, was, now_ms);
}

/* ---- redis probes ----------------------------------------------------------------------- */

/* The next CRLF-terminated line at *@pos: its start and length; false when incomplete. */
static bool next_line(const char *buf, size_t len, size_t *pos, const char **l, size_t *ll)
{
    const char *p = buf + *pos;
    const char *e = memchr(p, '\n', len - *pos);
    if (!e || e == p || e[-1] != '\r')
        return false;
    *l = p;
    *ll = (size_t)(e - 1 - p);
    *pos = (size_t)(e + 1 - buf);
    return true;
}

int hc_redis_verdict(const char *buf, size_t len, bool eof, bool auth, bool *master, char *why,
                     size_t n)
{
    size_t pos = 0, ll;
    const char *l;
    *master = false;
    static const char *const steps[] = {"AUTH", "PING"};
    for (int i = auth ? 0 : 1; i < 2; i++) {
        if (!next_line(buf, len, &pos, &l, &ll))
            goto more;
        if (l[0] != '+') {
            snprintf(why, n, "%s: %.*s", steps[i], (int)(ll > 60 ? 60 : ll), l);
            return 0;
        }
    }
    /* ROLE: *N, then the role as a bulk string. */
    if (!next_line(buf, len, &pos, &l, &ll))
        goto more;
    if (l[0] != '*') {
        snprintf(why, n, "ROLE: %.*s", (int)(ll > 60 ? 60 : ll), l);
        return 0;
    }
    if (!next_line(buf, len, &pos, &l, &ll))
        goto more;
    size_t rl = (size_t)strtoul(l + 1, NULL, 10);
    if (l[0] != '$' || rl > 16) {
        snprintf(why, n, "ROLE: a reply lb does not understand");
        return 0;
    }
    if (len - pos < rl + 2)
        goto more;
    const char *role = buf + pos;
    if (rl == 6 && !memcmp(role, "master", 6)) {
        *master = true;
        snprintf(why, n, "master");
    } else if ((rl == 5 && !memcmp(role, "slave", 5)) || (rl == 7 && !memcmp(role, "replica", 7))) {
        snprintf(why, n, "replica");
    } else {
        snprintf(why, n, "ROLE %.*s: not a data node", (int)rl, role);
        return 0;
    }
    return 1;
more:
    if (!eof && len < HC_HTTP_MAX)
        return -EAGAIN;
    snprintf(why, n, "%s", eof ? "connection closed before the ROLE reply" : "reply too long");
    return 0;
}

/* ---- building ---------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_probe(const struct hc_target *t, const struct conf_server *sv,
                       const struct conf_health *h, int32_t tls_cluster)
{
    /* A TLS probe speaks with its cluster's context: shared within that cluster only. */
    if (t->tls_cluster != tls_cluster)
        return false;
    if (t->addr->len != sv->addr.len || memcmp(&t->addr->ss, &sv->addr.ss, sv->addr.len) != 0)
        return false;
    if (t->h->check != h->check)
        return false;
    if (h->check == CONF_CHECK_TCP)
        return true;
    return str_eq(t->h->path, h->path) && str_eq(t->h->host, h->host) &&
           t->h->expect_status == h->expect_status && str_eq(t->h->expect_body, h->expect_body);
}

static int build_request(struct hc_target *t)
{
    const char *host = t->h->host ? t->h->host : t->addr->text;
    const char *path = t->h->path ? t->h->path : "/";
    int n = asprintf(&t->req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lb-health\r\nAccept: */*\r\n"
                     "Connection: close\r\n\r\n",
                     path, host);
    if (n < 0) {
        t->req = NULL;
        return -ENOMEM;
    }
    t->req_len = (size_t)n;
    return 0;
}

/* check: redis: one target per member, the server's own (never shared: which member is
 * master is a fact about this server's group). Members start as the config says: the
 * address is master, until a probe says otherwise. */
static int add_redis_targets(struct hc *hc, struct hc_server *s, const struct conf_server *sv,
                             const struct conf_cluster *cf)
{
    static const char ping_role[] = "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nROLE\r\n";
    for (uint32_t k = 0; k <= sv->nreplicas; k++) {
        uint32_t ti = hc->ntargets++;
        struct hc_target *t = &hc->targets[ti];
        t->addr = k ? &sv->replicas[k - 1] : &sv->addr;
        t->h = &cf->health;
        t->interval_ms = cf->health.interval_ms;
        t->timeout_ms = cf->health.timeout_ms;
        t->first_user = NO_USER;
        t->redis_server = (uint32_t)(s - hc->servers);
        t->member = k;
        t->last_ok = true;
        t->master = k == 0;
        t->tls_cluster = -1;
        t->password = cf->password;
        int n = cf->password ? asprintf(&t->req, "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n%s",
                                        strlen(cf->password), cf->password, ping_role)
                             : asprintf(&t->req, "%s", ping_role);
        if (n < 0) {
            t->req = NULL;
            return -ENOMEM;
        }
        t->req_len = (size_t)n;
        s->members[k] = (int32_t)ti;
    }
    s->nmembers = (uint32_t)sv->nreplicas + 1;
    s->target = s->members[0];
    return 0;
}

static int add_to_target(struct hc *hc, struct hc_server *s, const struct conf_server *sv,
                         const struct conf_cluster *cf)
{
    if (cf->health.check == CONF_CHECK_REDIS)
        return add_redis_targets(hc, s, sv, cf);
    const struct conf_health *h = &cf->health;
    int32_t tls_cluster = cf->tls.enabled ? (int32_t)s->cluster : -1;
    uint32_t ti;
    for (ti = 0; ti < hc->ntargets; ti++)
        if (same_probe(&hc->targets[ti], sv, h, tls_cluster))
            break;
    struct hc_target *t = &hc->targets[ti];
    if (ti == hc->ntargets) {
        hc->ntargets++;
        t->addr = &sv->addr;
        t->h = h;
        t->interval_ms = h->interval_ms;
        t->timeout_ms = h->timeout_ms;
        t->first_user = NO_USER;
        t->redis_server = NO_USER;
        t->tls_cluster = tls_cluster;
        if (h->check == CONF_CHECK_HTTP && build_request(t) < 0)
            return -ENOMEM;
    }
    if (h->interval_ms < t->interval_ms)
        t->interval_ms = h->interval_ms;
    if (h->timeout_ms < t->timeout_ms)
        t->timeout_ms = h->timeout_ms;
    s->target = (int32_t)ti;
    /* Append, so results fan out in configuration order (and so do their log lines). */
    uint32_t si = (uint32_t)(s - hc->servers);
    s->next_user = NO_USER;
    if (t->first_user == NO_USER) {
        t->first_user = si;
    } else {
        uint32_t u = t->first_user;
        while (hc->servers[u].next_user != NO_USER)
            u = hc->servers[u].next_user;
        hc->servers[u].next_user = si;
    }
    return 0;
}

struct hc *hc_new(const struct conf *c, const struct hc_ops *ops, uint64_t seed, struct lb_err *err)
{
    struct hc *hc = calloc(1, sizeof(*hc));
    if (!hc)
        goto nomem;
    hc->conf = c;
    hc->ops = *ops;
    hc->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    /* Made here, not at hc_engine_attach, so that it exists for as long as workers may report. */
    hc->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (hc->wake_fd < 0) {
        lb_err_set(err, "health: eventfd: %s", strerror(errno));
        free(hc);
        return NULL;
    }
    hc->nclusters = (uint32_t)c->nclusters;
    for (size_t i = 0; i < c->nclusters; i++)
        hc->nservers += (uint32_t)c->clusters[i].nservers;
    hc->clusters = calloc(hc->nclusters ? hc->nclusters : 1, sizeof(*hc->clusters));
    hc->servers = calloc(hc->nservers ? hc->nservers : 1, sizeof(*hc->servers));
    size_t ntargets = 0; /* at most: one per server, one per redis member */
    for (size_t i = 0; i < c->nclusters; i++)
        for (size_t j = 0; j < c->clusters[i].nservers; j++)
            ntargets += 1 + c->clusters[i].servers[j].nreplicas;
    hc->targets = calloc(ntargets ? ntargets : 1, sizeof(*hc->targets));
    if (!hc->clusters || !hc->servers || !hc->targets)
        goto nomem;

    uint32_t si = 0;
    for (uint32_t ci = 0; ci < hc->nclusters; ci++) {
        const struct conf_cluster *cf = &c->clusters[ci];
        struct hc_cluster *cl = &hc->clusters[ci];
        cl->cf = cf;
        cl->base = si;
        cl->n = (uint32_t)cf->nservers;
        hc->any_passive |= cf->passive.enabled;
        for (uint32_t k = 0; k < cl->n; k++, si++) {
            struct hc_server *s = &hc->servers[si];
            const struct conf_server *sv = &cf->servers[k];
            atomic_init(&s->consecutive, 0);
            atomic_init(&s->tripped, 0);
            s->cluster = ci;
            s->server = k;
            s->tier = sv->backup ? 1 : 0;
            s->target = -1;
            s->next_user = NO_USER;
            s->weight = sv->weight;
            s->cur_weight = sv->weight;
            cl->tier_n[s->tier]++;
            if (cf->health.check != CONF_CHECK_NONE && add_to_target(hc, s, sv, cf) < 0)
                goto nomem;
        }
    }
    return hc;
nomem:
    lb_err_set(err, "health: out of memory");
    hc_free(hc);
    return NULL;
}

void hc_free(struct hc *hc)
{
    if (!hc)
        return;
    hc_engine_free(hc);
    for (uint32_t i = 0; hc->targets && i < hc->ntargets; i++) {
        free(hc->targets[i].req);
        hc->targets[i].req = NULL;
    }
    free(hc->targets);
    if (hc->wake_fd >= 0)
        close(hc->wake_fd);
    free(hc->servers);
    free(hc->clusters);
    free(hc);
}

void hc_set_tls(struct hc *hc, uint32_t cluster, struct ssl_ctx_st *ctx, const char *sni)
{
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        if (hc->targets[i].tls_cluster == (int32_t)cluster) {
            hc->targets[i].ssl_ctx = ctx;
            hc->targets[i].sni = sni;
        }
    }
}

uint32_t hc_ntargets(const struct hc *hc)
{
    return hc->ntargets;
}

static struct hc_server *server_at(const struct hc *hc, uint32_t cluster, uint32_t server)
{
    if (cluster >= hc->nclusters || server >= hc->clusters[cluster].n)
        return NULL;
    return &hc->servers[hc->clusters[cluster].base + server];
}

int hc_target_of(const struct hc *hc, uint32_t cluster, uint32_t server)
{
    const struct hc_server *s = server_at(hc, cluster, server);
    return s ? s->target : -1;
}

/* ---- passive ----------------------------------------------------------------------------- */

void hc_passive_report(struct hc *hc, uint32_t cluster, uint32_t server, bool failure)
{
    if (!hc || cluster >= hc->nclusters)
        return;
    const struct hc_cluster *cl = &hc->clusters[cluster];
    if (!cl->cf->passive.enabled || server >= cl->n)
        return;
    struct hc_server *s = &hc->servers[cl->base + server];
    if (!failure) {
        /* Read first: a healthy server's counter is 0, and a load costs no cache line
         * ownership, so successes on many workers do not bounce it between cores. */
        if (atomic_load_explicit(&s->consecutive, memory_order_relaxed))
            atomic_store_explicit(&s->consecutive, 0, memory_order_relaxed);
        return;
    }
    uint32_t n = atomic_fetch_add_explicit(&s->consecutive, 1, memory_order_relaxed) + 1;
    if (n == cl->cf->passive.consecutive_failures) {
        /* Release: the engine's thread that reads the wake-up must see the flag. */
        atomic_store_explicit(&s->tripped, 1, memory_order_release);
        /* The decision (and its cap) is the engine's; wake it now rather than at its
         * next tick, so that a failing server takes HC_TICK_MS less traffic. Once per
         * threshold crossing, on a non-blocking eventfd: never blocks, takes no lock. */
        eventfd_write(hc->wake_fd, 1);
    }
}

static void passive_tick(struct hc *hc, struct hc_server *s, uint64_t now_ms)
{
    struct hc_cluster *cl = &hc->clusters[s->cluster];
    const struct conf_passive *p = &cl->cf->passive;
    char why[HC_REASON_MAX];

    if (atomic_load_explicit(&s->tripped, memory_order_acquire)) {
        atomic_store_explicit(&s->tripped, 0, memory_order_relaxed);
        /* Count again from zero: failures seen while ejected or refused say nothing new. */
        atomic_store_explicit(&s->consecutive, 0, memory_order_relaxed);
        if (s->passive == HC_PASSIVE_IN) {
            uint32_t cap = cl->tier_n[s->tier] * p->max_ejected_percent / 100;
            snprintf(why, sizeof(why), "%u consecutive failures", p->consecutive_failures);
            if (cl->tier_ejected[s->tier] < cap) {
                passive_set(hc, s, HC_PASSIVE_EJECTED, why, 0, now_ms);
            } else {
                snprintf(why, sizeof(why),
                         "%u consecutive failures, but %u of %u %s already ejected "
                         "(max_ejected_percent %u)",
                         p->consecutive_failures, cl->tier_ejected[s->tier], cl->tier_n[s->tier],
                         s->tier ? "backups" : "primaries", p->max_ejected_percent);
                emit(hc, s, HC_EV_EJECT_SKIPPED, why, 0, 0);
            }
        }
    }
    if (s->passive == HC_PASSIVE_EJECTED && s->target < 0 && now_ms >= s->eject_until_ms)
        passive_set(hc, s, HC_PASSIVE_IN, "ejection time over", 0, now_ms);
    /* A server that stayed in for max_ejection starts its doubling over. */
    if (s->passive == HC_PASSIVE_IN && s->ejections &&
        now_ms - s->in_since_ms >= p->max_ejection_ms)
        s->ejections = 0;
}

/* ---- the tick ---------------------------------------------------------------------------- */

void hc_tick(struct hc *hc, uint64_t now_ms)
{
    for (uint32_t i = 0; i < hc->nservers; i++) {
        struct hc_server *s = &hc->servers[i];
        const struct conf_cluster *cf = hc->clusters[s->cluster].cf;
        if (cf->passive.enabled)
            passive_tick(hc, s, now_ms);
        if (s->ramping) {
            uint64_t el = now_ms - s->ramp_start_ms;
            set_weight(hc, s, ramp_weight(s->weight, el, cf->slow_start_ms));
            if (el >= cf->slow_start_ms)
                s->ramping = false;
        }
    }
}

/* ---- active ------------------------------------------------------------------------------ */

static void active_result(struct hc *hc, struct hc_server *s, bool ok, const char *reason,
                          uint32_t latency_us, uint64_t now_ms)
{
    const struct conf_cluster *cf = hc->clusters[s->cluster].cf;
    const struct conf_health *h = &cf->health;
    char why[HC_REASON_MAX + 48];

    s->probes++;
    s->last_ok = ok;
    s->latency_us = latency_us;
    if (hc->ops.probe)
        hc->ops.probe(hc->ops.arg, s->cluster, s->server, ok, latency_us);
    snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : (ok ? "ok" : "failed"));
    if (ok) {
        s->ok_run++;
        s->fail_run = 0;
    } else {
        s->probe_failures++;
        s->fail_run++;
        s->ok_run = 0;
    }
    if (s->active == HC_ACTIVE_UP && s->fail_run >= h->fall) {
        snprintf(why, sizeof(why), "%u failed %s checks in a row, last: %s", s->fail_run,
                 conf_check_name(h->check), s->reason);
        active_set(hc, s, HC_ACTIVE_DOWN, why, latency_us, now_ms);
    } else if (s->active == HC_ACTIVE_DOWN && s->ok_run >= h->rise) {
        snprintf(why, sizeof(why), "%u passing %s checks in a row, last: %s", s->ok_run,
                 conf_check_name(h->check), s->reason);
        active_set(hc, s, HC_ACTIVE_UP, why, latency_us, now_ms);
    }
    /* With active checks an ejected server comes back only through a probe that passes once
     * its ejection time is over: traffic failed on it, a probe shows it answers again. */
    if (ok && s->passive == HC_PASSIVE_EJECTED && now_ms >= s->eject_until_ms) {
        snprintf(why, sizeof(why), "ejection time over and %s check passed: %s",
                 conf_check_name(h->check), s->reason);
        passive_set(hc, s, HC_PASSIVE_IN, why, latency_us, now_ms);
    }
}

/* A redis member's probe: the server passes while some member answers as master, and its
 * traffic follows that member (the current one first, so two masters do not flap). */
static void redis_result(struct hc *hc, struct hc_target *t, bool ok, const char *reason,
                         uint32_t latency_us, uint64_t now_ms)
{
    struct hc_server *s = &hc->servers[t->redis_server];
    t->last_ok = ok;
    if (!ok)
        t->master = false;
    int m = -1;
    const struct hc_target *cur = &hc->targets[s->members[s->master]];
    if (cur->last_ok && cur->master) {
        m = (int)s->master;
    } else {
        for (uint32_t k = 0; k < s->nmembers && m < 0; k++) {
            const struct hc_target *tk = &hc->targets[s->members[k]];
            if (tk->last_ok && tk->master)
                m = (int)k;
        }
    }
    char why[HC_REASON_MAX];
    if (m >= 0 && (uint32_t)m != s->master) {
        s->master = (uint32_t)m;
        snprintf(why, sizeof(why), "ROLE master at %s", hc->targets[s->members[m]].addr->text);
        if (hc->ops.member)
            hc->ops.member(hc->ops.arg, s->cluster, s->server, (uint32_t)m, why);
    }
    if (m >= 0)
        snprintf(why, sizeof(why), "master at %s", hc->targets[s->members[m]].addr->text);
    else
        snprintf(why, sizeof(why), "no member is master (%s: %s)", t->addr->text,
                 reason ? reason : (ok ? "replica" : "failed"));
    active_result(hc, s, m >= 0, why, latency_us, now_ms);
}

void hc_probe_done(struct hc *hc, uint32_t target, bool ok, const char *reason, uint32_t latency_us,
                   uint64_t now_ms)
{
    if (target >= hc->ntargets)
        return;
    if (hc->targets[target].redis_server != NO_USER) {
        redis_result(hc, &hc->targets[target], ok, reason, latency_us, now_ms);
        return;
    }
    for (uint32_t u = hc->targets[target].first_user; u != NO_USER; u = hc->servers[u].next_user)
        active_result(hc, &hc->servers[u], ok, reason, latency_us, now_ms);
}

int hc_server_status(const struct hc *hc, uint32_t cluster, uint32_t server, struct hc_status *out)
{
    const struct hc_server *s = server_at(hc, cluster, server);
    if (!s)
        return -ENOENT;
    memset(out, 0, sizeof(*out));
    out->checked = s->target >= 0;
    out->down = s->active == HC_ACTIVE_DOWN;
    out->ejected = s->passive == HC_PASSIVE_EJECTED;
    out->ok_run = s->ok_run;
    out->fail_run = s->fail_run;
    out->probes = s->probes;
    out->probe_failures = s->probe_failures;
    out->last_ok = s->last_ok;
    out->latency_us = s->latency_us;
    memcpy(out->reason, s->reason, sizeof(out->reason));
    out->ejections = s->ejections;
    out->eject_until_ms = s->eject_until_ms;
    out->weight = s->cur_weight;
    return 0;
}

uint64_t hc_jitter(uint64_t interval_ms, uint64_t *rng)
{
    /* xorshift64 */
    uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    /* from interval - 10% to interval + 10%, both ends included, never outside */
    uint64_t tenth = interval_ms / 10;
    return interval_ms - tenth + x % (2 * tenth + 1);
}

/* ---- http verdict ------------------------------------------------------------------------ */

static int verdict_fail(char *reason, size_t rlen, const char *msg, int status)
{
    if (status)
        snprintf(reason, rlen, "%s %d", msg, status);
    else
        snprintf(reason, rlen, "%s", msg);
    return 0;
}

int hc_http_verdict(const char *buf, size_t len, bool eof, int expect_status,
                    const char *expect_body, char *reason, size_t reason_len)
{
    bool final = eof || len >= HC_HTTP_MAX;
    if (len > HC_HTTP_MAX)
        len = HC_HTTP_MAX;
    const char *nl = memchr(buf, '\n', len);
    if (!nl) {
        if (!final)
            return -EAGAIN;
        return verdict_fail(reason, reason_len,
                            len ? "no status line" : "connection closed without a response", 0);
    }
    /* "HTTP/1.x NNN" then SP or the end of the line */
    size_t ll = (size_t)(nl - buf);
    if (ll < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' ||
        buf[8] != ' ' || buf[9] < '0' || buf[9] > '9' || buf[10] < '0' || buf[10] > '9' ||
        buf[11] < '0' || buf[11] > '9' || (ll > 12 && buf[12] != ' ' && buf[12] != '\r'))
        return verdict_fail(reason, reason_len, "malformed status line", 0);
    int status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (status != expect_status)
        return verdict_fail(reason, reason_len, "status", status);
    if (!expect_body) {
        snprintf(reason, reason_len, "status %d", status);
        return 1;
    }
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    size_t hl = end ? (size_t)(end - buf) + 4 : 0;
    if (!end) {
        end = memmem(buf, len, "\n\n", 2); /* bare LF servers */
        hl = end ? (size_t)(end - buf) + 2 : 0;
    }
    if (!end)
        return final ? verdict_fail(reason, reason_len, "response head not complete", 0) : -EAGAIN;
    size_t want = strlen(expect_body);
    if (!want || memmem(buf + hl, len - hl, expect_body, want)) {
        snprintf(reason, reason_len, "status %d, body matched", status);
        return 1;
    }
    if (!final)
        return -EAGAIN;
    snprintf(reason, reason_len, "status %d but the body lacks the expected text", status);
    return 0;
}

bool hc_seed_down(struct hc *hc, uint32_t cluster, uint32_t server)
{
    if (!hc)
        return false;
    struct hc_server *s = (struct hc_server *)server_at(hc, cluster, server);
    if (!s || s->target < 0)
        return false;
    s->active = HC_ACTIVE_DOWN;
    s->ok_run = s->fail_run = 0;
    snprintf(s->reason, sizeof(s->reason), "down before the reload");
    return true;
}
