/*
 * The fleet object (fleet.h): what the control loop and the admin socket call, each under
 * the mutex that the fleet thread (sync.c) takes too. Nothing here waits on Redis.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/log.h"
#include "lb/fleet/internal.h"

static _Atomic(struct fleet *) current;

uint64_t fleet_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t fleet_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct fleet *fleet_current(void)
{
    return atomic_load(&current);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct fleet *fleet_start(const struct conf *cf, struct lb_err *err)
{
    const struct conf_global *g = &cf->global;
    if (!g->nredis_nodes)
        return NULL;
    struct fleet *f = calloc(1, sizeof(*f));
    if (!f) {
        lb_err_set(err, "fleet: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < g->nredis_nodes && i < FLEET_MAX_NODES; i++)
        snprintf(f->nodes[f->nnodes++], sizeof(f->nodes[0]), "%s", g->redis_nodes[i]);
    f->password = dup_or_null(g->redis_password);
    f->prefix = strdup(g->redis_prefix ? g->redis_prefix : "lb:");
    if (g->redis_instance) {
        snprintf(f->instance, sizeof(f->instance), "%s", g->redis_instance);
    } else if (gethostname(f->instance, sizeof(f->instance) - 1) < 0 ||
               !fleet_name_ok(f->instance, strlen(f->instance))) {
        snprintf(f->instance, sizeof(f->instance), "lb-%d", (int)getpid());
    }
    f->timeout_ms = g->redis_timeout_ms ? g->redis_timeout_ms : 250;
    f->started_ms = fleet_wall_ms();
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    if (!f->prefix || (g->redis_password && !f->password) ||
        pthread_create(&f->thread, NULL, fleet_thread, f) != 0) {
        lb_err_set(err, "fleet: cannot start its thread");
        fleet_stop(f);
        return NULL;
    }
    f->thread_ok = true;
    atomic_store(&current, f);
    lb_info("fleet: sharing drains and weights through Redis", "instance=%s nodes=%zu prefix=%s",
            f->instance, f->nnodes, f->prefix);
    return f;
}

bool fleet_same_conf(const struct fleet *f, const struct conf *cf)
{
    const struct conf_global *g = &cf->global;
    if (!f || g->nredis_nodes != f->nnodes)
        return false;
    for (size_t i = 0; i < f->nnodes; i++)
        if (strcmp(f->nodes[i], g->redis_nodes[i]))
            return false;
    const char *inst = g->redis_instance ? g->redis_instance : NULL;
    return (!inst || !strcmp(inst, f->instance)) &&
           !strcmp(f->prefix, g->redis_prefix ? g->redis_prefix : "lb:") &&
           !(f->password ? !g->redis_password || strcmp(f->password, g->redis_password)
                         : g->redis_password != NULL) &&
           f->timeout_ms == g->redis_timeout_ms;
}

void fleet_stop(struct fleet *f)
{
    if (!f)
        return;
    struct fleet *me = f;
    atomic_compare_exchange_strong(&current, &me, NULL);
    atomic_store(&f->stop, true);
    pthread_mutex_lock(&f->mu);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    if (f->thread_ok)
        pthread_join(f->thread, NULL);
    for (size_t i = 0; i < f->nmembers; i++)
        free(f->members[i].v);
    free(f->latest);
    free(f->view);
    free(f->password);
    free(f->prefix);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void fleet_wait_first_read(struct fleet *f, uint64_t timeout_ms)
{
    uint64_t end = fleet_mono_ms() + timeout_ms;
    while (f && !atomic_load(&f->first_read) && fleet_mono_ms() < end)
        usleep(10000);
}

/* ---- the latest change per server ---- */

static struct fleet_change *find_latest(struct fleet *f, const struct fleet_change *c)
{
    for (size_t i = 0; i < f->nlatest; i++) {
        struct fleet_change *l = &f->latest[i];
        if (l->kind == c->kind && !strcmp(l->cluster, c->cluster) && !strcmp(l->server, c->server))
            return l;
    }
    return NULL;
}

bool fleet_note_locked(struct fleet *f, const struct fleet_change *c)
{
    struct fleet_change *l = find_latest(f, c);
    if (l) {
        if (!fleet_newer(c, l))
            return false;
        *l = *c;
        return true;
    }
    if (f->nlatest == f->caplatest) {
        size_t cap = f->caplatest ? 2 * f->caplatest : 64;
        struct fleet_change *n = realloc(f->latest, cap * sizeof(*n));
        if (!n)
            return true; /* applied, just not remembered */
        f->latest = n;
        f->caplatest = cap;
    }
    f->latest[f->nlatest++] = *c;
    return true;
}

void fleet_queue_push(struct fleet_change *q, size_t *n, const struct fleet_change *c)
{
    if (*n == FLEET_QUEUE_MAX) {
        memmove(q, q + 1, (FLEET_QUEUE_MAX - 1) * sizeof(*q));
        (*n)--;
    }
    q[(*n)++] = *c;
}

void fleet_local(struct fleet *f, struct fleet_change *c, bool *reachable, unsigned *live)
{
    snprintf(c->instance, sizeof(c->instance), "%s", f->instance);
    pthread_mutex_lock(&f->mu);
    c->t = fleet_wall_ms();
    struct fleet_change *l = find_latest(f, c);
    if (l && c->t <= l->t)
        c->t = l->t + 1; /* after what this instance knows, whatever its clock says */
    fleet_note_locked(f, c);
    fleet_queue_push(f->out, &f->nout, c);
    struct fleet_ack *a = &f->acks[0];
    for (size_t i = 1; i < FLEET_ACKS_MAX; i++)
        if (f->acks[i].until_ms < a->until_ms)
            a = &f->acks[i];
    *a = (struct fleet_ack){.t = c->t, .until_ms = fleet_mono_ms() + FLEET_ACK_WINDOW_MS};
    *live = f->live ? f->live : 1;
    *reachable = atomic_load(&f->up);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

size_t fleet_take(struct fleet *f, struct fleet_change *out, size_t max)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->nin < max ? f->nin : max;
    memcpy(out, f->in, n * sizeof(*out));
    memmove(f->in, f->in + n, (f->nin - n) * sizeof(*out));
    f->nin -= n;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void fleet_applied(struct fleet *f, const struct fleet_change *c)
{
    pthread_mutex_lock(&f->mu);
    fleet_queue_push(f->acked, &f->nacked, c);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

bool fleet_acks(struct fleet *f, uint64_t t, unsigned *acks, unsigned *live)
{
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < FLEET_ACKS_MAX && !found; i++)
        if (f->acks[i].t == t && t) {
            *acks = f->acks[i].acks;
            *live = f->acks[i].live ? f->acks[i].live : f->live;
            found = true;
        }
    pthread_mutex_unlock(&f->mu);
    return found;
}

void fleet_set_view(struct fleet *f, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&f->mu);
    free(f->view);
    f->view = copy;
    f->view_len = len;
    pthread_mutex_unlock(&f->mu);
}

bool fleet_up(const struct fleet *f)
{
    return f && atomic_load(&f->up);
}

void fleet_describe(struct fleet *f, struct lb_jbuf *out)
{
    uint64_t now = fleet_wall_ms();
    pthread_mutex_lock(&f->mu);
    lb_jbuf_printf(out, "{\"up\":%s,\"instance\":\"%s\",\"live\":%u,\"members\":[",
                   atomic_load(&f->up) ? "true" : "false", f->instance, f->live);
    for (size_t i = 0; i < f->nmembers; i++) {
        const struct fleet_member_view *m = &f->members[i];
        lb_jbuf_printf(out,
                       "%s{\"name\":\"%s\",\"pid\":%u,\"uptime_s\":%.0f,\"age_ms\":%lld,"
                       "\"servers\":[",
                       i ? "," : "", m->m.name, m->m.pid,
                       (double)(now > m->m.started_ms ? now - m->m.started_ms : 0) / 1000,
                       (long long)now - (long long)m->m.sent_ms);
        for (size_t k = 0; k < m->nv; k++)
            lb_jbuf_printf(out,
                           "%s{\"cluster\":\"%s\",\"server\":\"%s\",\"state\":\"%s\","
                           "\"active\":%u}",
                           k ? "," : "", m->v[k].cluster, m->v[k].server, m->v[k].state,
                           m->v[k].active);
        lb_jbuf_printf(out, "]}");
    }
    lb_jbuf_printf(out, "]}");
    pthread_mutex_unlock(&f->mu);
}
