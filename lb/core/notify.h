/*
 * systemd's service notification protocol (sd_notify(3)) for Type=notify units: lb says when
 * it is ready, reloading and stopping, pings the watchdog and keeps a one-line STATUS= up to
 * date. Without NOTIFY_SOCKET in the environment every call does nothing.
 *
 * Control thread only (lb/core/control.c and lb/core/proxy.c call these).
 */
#ifndef LB_NOTIFY_H
#define LB_NOTIFY_H

#include <stdint.h>

struct lb_runtime;

/* Reads WATCHDOG_USEC (sd_watchdog_enabled) once, at startup. */
void lb_notify_init(void);

/* READY=1 with a STATUS= line for @rt, the running generation. A generation not seen before
 * counts as a new one (the first start, a reload that swapped generations). */
void lb_notify_ready(const struct lb_runtime *rt);

/* RELOADING=1 with MONOTONIC_USEC= (systemd >= 253 matches reloads by it); lb_notify_ready()
 * follows when the reload is over, whatever its outcome. */
void lb_notify_reloading(void);

/* STOPPING=1: the running generation stops accepting and drains. */
void lb_notify_stopping(void);

/* Pings the watchdog (WATCHDOG=1) at half its interval and refreshes STATUS= every few
 * seconds. Returns when it next needs a call (CLOCK_MONOTONIC ms; UINT64_MAX: never). */
uint64_t lb_notify_tick(const struct lb_runtime *rt, uint64_t now_ms);

#endif
