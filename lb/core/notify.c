/*
 * sd_notify(3) for lb (see notify.h). The state is one static struct: there is one control
 * thread and one service manager. sd_notify() itself does nothing when NOTIFY_SOCKET is not
 * set, so lb run by hand or by a test pays one getenv() per call.
 *
 * STATUS= is what `systemctl status lb` shows under the unit: the generation (1 at start, +1
 * for each reload that swapped the configuration), client connections open now and requests
 * answered since the generation started, summed over its listeners.
 */
#include <stdbool.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "lb/core/log.h"
#include "lb/core/notify.h"
#include "lb/core/runtime.h"

#define NOTIFY_STATUS_MS 5000 /* STATUS= refresh */

static struct {
    uint64_t watchdog_ms;   /* half of WATCHDOG_USEC; 0: no watchdog */
    uint64_t next_watchdog; /* CLOCK_MONOTONIC ms */
    uint64_t next_status;
    const struct lb_runtime *last; /* the generation the last READY=1 was for */
    unsigned long generation;
    bool stopping;
} nt;

void lb_notify_init(void)
{
    uint64_t usec = 0;
    /* 0: not asked (or WATCHDOG_PID names another process); < 0: unreadable. */
    int rc = sd_watchdog_enabled(0, &usec);
    if (rc > 0 && usec >= 2000) {
        nt.watchdog_ms = usec / 2000;
        lb_info("systemd watchdog enabled", "ping_every_ms=%llu",
                (unsigned long long)nt.watchdog_ms);
    } else if (rc < 0) {
        lb_warn("WATCHDOG_USEC not understood: no watchdog pings", "");
    }
}

/* Client connections open now and responses sent, over @rt's listeners. */
static void rt_counts(const struct lb_runtime *rt, unsigned long long *conns,
                      unsigned long long *reqs)
{
    *conns = *reqs = 0;
    if (!rt->lstats)
        return;
    for (size_t i = 0; i < rt->conf->nlisteners; i++) {
        struct metrics_listener_stats *ls = &rt->lstats[i];
        *conns += atomic_load_explicit(&ls->active, memory_order_relaxed);
        for (int c = 0; c < 5; c++)
            *reqs += atomic_load_explicit(&ls->resp[c], memory_order_relaxed);
    }
}

/* Sends @state (may be empty) followed by the STATUS= line. */
static void send_status(const struct lb_runtime *rt, const char *state)
{
    unsigned long long conns, reqs;
    rt_counts(rt, &conns, &reqs);
    int rc = sd_notifyf(0, "%sSTATUS=%s: generation %lu, %llu connections, %llu requests", state,
                        nt.stopping ? "stopping" : "serving", nt.generation, conns, reqs);
    if (rc < 0)
        lb_warn("sd_notify failed", "err=%d", rc);
}

void lb_notify_ready(const struct lb_runtime *rt)
{
    if (rt != nt.last) {
        nt.last = rt;
        nt.generation++;
    }
    send_status(rt, "READY=1\n");
}

void lb_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec = (unsigned long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration", usec);
}

void lb_notify_stopping(void)
{
    nt.stopping = true;
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: draining connections");
}

uint64_t lb_notify_tick(const struct lb_runtime *rt, uint64_t now_ms)
{
    if (nt.watchdog_ms && now_ms >= nt.next_watchdog) {
        sd_notify(0, "WATCHDOG=1");
        nt.next_watchdog = now_ms + nt.watchdog_ms;
    }
    if (!nt.stopping && nt.last && now_ms >= nt.next_status) {
        send_status(rt, "");
        nt.next_status = now_ms + NOTIFY_STATUS_MS;
    }
    uint64_t next = !nt.stopping && nt.last ? nt.next_status : UINT64_MAX;
    if (nt.watchdog_ms && nt.next_watchdog < next)
        next = nt.next_watchdog;
    return next;
}
