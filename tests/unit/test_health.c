/*
 * Health state machines (health/hc.c) driven with a fake clock, no sockets: rise/fall
 * hysteresis, passive ejection with doubling and its cap, max_ejected_percent per tier,
 * return through probes only when active checks exist, slow start, probe deduplication,
 * interval jitter bounds and the http probe's verdict. Every state change must be reported
 * exactly once: the tests count events. Last, the probe engine on a ring the test owns, as lb's
 * control loop runs it: real tcp probes, completions routed by the tag, a clean detach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "health/hc.h"
#include "health/internal.h" /* redis members: the targets' master flags */

#define T_MAX_EV 64

struct t_ev {
    enum hc_event_kind kind;
    uint32_t cluster, server;
    uint64_t ejection_ms;
    uint32_t ejections;
    char reason[128];
};

struct t_rec {
    struct t_ev ev[T_MAX_EV];
    uint32_t n;
    uint32_t weight[4][8];
    uint32_t nweight;
};

static void t_event(void *arg, const struct hc_event *ev)
{
    struct t_rec *r = arg;
    assert_true(r->n < T_MAX_EV);
    struct t_ev *e = &r->ev[r->n++];
    e->kind = ev->kind;
    e->cluster = ev->cluster;
    e->server = ev->server;
    e->ejection_ms = ev->ejection_ms;
    e->ejections = ev->ejections;
    snprintf(e->reason, sizeof(e->reason), "%s", ev->reason);
    assert_null(strchr(ev->reason, '"')); /* lb logs it inside quotes */
}

static void t_weight(void *arg, uint32_t cluster, uint32_t server, uint32_t weight)
{
    struct t_rec *r = arg;
    r->weight[cluster][server] = weight;
    r->nweight++;
}

struct t_env {
    struct conf *conf;
    struct hc *hc;
    struct t_rec rec;
};

static void t_setup(struct t_env *e, const char *yaml)
{
    struct conf_diags d = {0};
    memset(&e->rec, 0, sizeof(e->rec));
    e->conf = conf_load_buf("test.yaml", yaml, strlen(yaml), &d);
    if (!e->conf)
        conf_diags_print(&d, "test.yaml", stderr);
    assert_non_null(e->conf);
    struct hc_ops ops = {.event = t_event, .weight = t_weight, .arg = &e->rec};
    e->hc = hc_new(e->conf, &ops, 42, NULL);
    assert_non_null(e->hc);
}

static void t_teardown(struct t_env *e)
{
    hc_free(e->hc);
    conf_free(e->conf);
}

static void t_fail(struct t_env *e, uint32_t cluster, uint32_t server, int n)
{
    for (int i = 0; i < n; i++)
        hc_passive_report(e->hc, cluster, server, true);
}

#define LISTENER "listeners: [ { name: l, bind: 127.0.0.1:1, protocol: tcp, cluster: c } ]\n"

/* ---- active: rise and fall --------------------------------------------------------------- */

static void test_rise_fall(void **state)
{
    struct t_env e;
    t_setup(&e, LISTENER "clusters:\n"
                         "  c:\n"
                         "    servers: [ { name: a, address: 127.0.0.1:2 } ]\n"
                         "    health: { check: http, rise: 2, fall: 3 }\n");
    int t = hc_target_of(e.hc, 0, 0);
    assert_int_equal(t, 0);
    uint64_t now = 1000;

    /* Starts up; two failures, a pass, two failures: never three in a row. */
    hc_probe_done(e.hc, (uint32_t)t, false, "status 500", 100, now++);
    hc_probe_done(e.hc, (uint32_t)t, false, "status 500", 100, now++);
    hc_probe_done(e.hc, (uint32_t)t, true, "status 200", 100, now++);
    hc_probe_done(e.hc, (uint32_t)t, false, "status 500", 100, now++);
    hc_probe_done(e.hc, (uint32_t)t, false, "status 500", 100, now++);
    assert_int_equal(e.rec.n, 0);

    /* The third in a row: down, once, with the last failure in the reason. */
    hc_probe_done(e.hc, (uint32_t)t, false, "status 500", 100, now++);
    assert_int_equal(e.rec.n, 1);
    assert_int_equal(e.rec.ev[0].kind, HC_EV_DOWN);
    assert_non_null(strstr(e.rec.ev[0].reason, "3 failed http checks"));
    assert_non_null(strstr(e.rec.ev[0].reason, "status 500"));
    for (int i = 0; i < 5; i++)
        hc_probe_done(e.hc, (uint32_t)t, false, "connect: Connection refused", 0, now++);
    assert_int_equal(e.rec.n, 1);

    /* One pass is not enough; a failure resets the run; two in a row bring it up. */
    hc_probe_done(e.hc, (uint32_t)t, true, "status 200", 100, now++);
    hc_probe_done(e.hc, (uint32_t)t, false, "status 500", 100, now++);
    hc_probe_done(e.hc, (uint32_t)t, true, "status 200", 100, now++);
    assert_int_equal(e.rec.n, 1);
    hc_probe_done(e.hc, (uint32_t)t, true, "status 200", 250, now++);
    assert_int_equal(e.rec.n, 2);
    assert_int_equal(e.rec.ev[1].kind, HC_EV_UP);

    struct hc_status st;
    assert_int_equal(hc_server_status(e.hc, 0, 0, &st), 0);
    assert_false(st.down);
    assert_true(st.checked);
    assert_true(st.last_ok);
    assert_int_equal(st.latency_us, 250);
    assert_int_equal(st.ok_run, 2);
    assert_int_equal(st.probes, 15);
    assert_int_equal(hc_server_status(e.hc, 0, 1, &st), -ENOENT);
    t_teardown(&e);
}

/* fall: 1 and rise: 1 flip on every result, one event each time. */
static void test_rise_fall_one(void **state)
{
    struct t_env e;
    t_setup(&e, LISTENER "clusters:\n"
                         "  c:\n"
                         "    servers: [ { name: a, address: 127.0.0.1:2 } ]\n"
                         "    health: { check: tcp, rise: 1, fall: 1 }\n");
    for (int i = 0; i < 6; i++)
        hc_probe_done(e.hc, 0, i % 2 == 1, "x", 0, (uint64_t)i);
    assert_int_equal(e.rec.n, 6);
    for (uint32_t i = 0; i < 6; i++)
        assert_int_equal(e.rec.ev[i].kind, i % 2 ? HC_EV_UP : HC_EV_DOWN);
    t_teardown(&e);
}

/* ---- passive ----------------------------------------------------------------------------- */

#define PASSIVE_4                                                                                  \
    LISTENER "clusters:\n"                                                                         \
             "  c:\n"                                                                              \
             "    servers:\n"                                                                      \
             "      - { name: a, address: 127.0.0.1:2 }\n"                                         \
             "      - { name: b, address: 127.0.0.1:3 }\n"                                         \
             "      - { name: c, address: 127.0.0.1:4 }\n"                                         \
             "      - { name: d, address: 127.0.0.1:5 }\n"                                         \
             "      - { name: k, address: 127.0.0.1:6, backup: true }\n"                           \
             "      - { name: l, address: 127.0.0.1:7, backup: true }\n"                           \
             "    passive: { consecutive_failures: 3, ejection: 1s, max_ejection: 3s }\n"

static void test_passive_threshold_and_success_reset(void **state)
{
    struct t_env e;
    t_setup(&e, PASSIVE_4);
    /* Two failures, a success, two failures: never three in a row. */
    t_fail(&e, 0, 0, 2);
    hc_passive_report(e.hc, 0, 0, false);
    t_fail(&e, 0, 0, 2);
    hc_tick(e.hc, 100);
    assert_int_equal(e.rec.n, 0);
    /* The decision is the engine's, at its tick, not the worker's. */
    t_fail(&e, 0, 0, 1);
    assert_int_equal(e.rec.n, 0);
    hc_tick(e.hc, 200);
    assert_int_equal(e.rec.n, 1);
    assert_int_equal(e.rec.ev[0].kind, HC_EV_EJECTED);
    assert_int_equal(e.rec.ev[0].ejection_ms, 1000);
    assert_non_null(strstr(e.rec.ev[0].reason, "3 consecutive failures"));
    /* Failures while ejected change nothing; out-of-range indices are ignored. */
    t_fail(&e, 0, 0, 10);
    hc_passive_report(e.hc, 0, 99, true);
    hc_passive_report(e.hc, 9, 0, true);
    hc_passive_report(NULL, 0, 0, true);
    hc_tick(e.hc, 300);
    assert_int_equal(e.rec.n, 1);
    t_teardown(&e);
}

static void test_passive_doubling_and_cap(void **state)
{
    struct t_env e;
    t_setup(&e, PASSIVE_4);
    uint64_t now = 10000;
    const uint64_t want[] = {1000, 2000, 3000, 3000};
    for (uint32_t i = 0; i < 4; i++) {
        t_fail(&e, 0, 1, 3);
        hc_tick(e.hc, now);
        assert_int_equal(e.rec.n, 2 * i + 1);
        assert_int_equal(e.rec.ev[2 * i].kind, HC_EV_EJECTED);
        assert_int_equal(e.rec.ev[2 * i].ejection_ms, want[i]);
        assert_int_equal(e.rec.ev[2 * i].ejections, i + 1);
        /* Without active checks the time alone brings it back, not a moment early. */
        hc_tick(e.hc, now + want[i] - 1);
        assert_int_equal(e.rec.n, 2 * i + 1);
        hc_tick(e.hc, now + want[i]);
        assert_int_equal(e.rec.n, 2 * i + 2);
        assert_int_equal(e.rec.ev[2 * i + 1].kind, HC_EV_RETURNED);
        assert_int_equal(e.rec.ev[2 * i + 1].server, 1);
        now += want[i] + 100; /* fails again soon after it came back */
    }
    /* After max_ejection (3s) in, the doubling starts over. */
    now += 3000;
    hc_tick(e.hc, now);
    t_fail(&e, 0, 1, 3);
    hc_tick(e.hc, now + 100);
    assert_int_equal(e.rec.n, 9);
    assert_int_equal(e.rec.ev[8].ejection_ms, 1000);
    assert_int_equal(e.rec.ev[8].ejections, 1);
    t_teardown(&e);
}

static void test_passive_max_ejected_percent(void **state)
{
    struct t_env e;
    t_setup(&e, PASSIVE_4);
    /* 4 primaries at 50%: two may be out at once. */
    t_fail(&e, 0, 0, 3);
    t_fail(&e, 0, 1, 3);
    t_fail(&e, 0, 2, 3);
    hc_tick(e.hc, 1000);
    assert_int_equal(e.rec.n, 3);
    assert_int_equal(e.rec.ev[0].kind, HC_EV_EJECTED);
    assert_int_equal(e.rec.ev[1].kind, HC_EV_EJECTED);
    assert_int_equal(e.rec.ev[2].kind, HC_EV_EJECT_SKIPPED);
    assert_int_equal(e.rec.ev[2].server, 2);
    assert_non_null(strstr(e.rec.ev[2].reason, "2 of 4 primaries already ejected"));
    struct hc_status st;
    hc_server_status(e.hc, 0, 2, &st);
    assert_false(st.ejected);

    /* Backups are a tier of their own: one of two may go even with two primaries out. */
    t_fail(&e, 0, 4, 3);
    t_fail(&e, 0, 5, 3);
    hc_tick(e.hc, 1100);
    assert_int_equal(e.rec.n, 5);
    assert_int_equal(e.rec.ev[3].kind, HC_EV_EJECTED);
    assert_int_equal(e.rec.ev[3].server, 4);
    assert_int_equal(e.rec.ev[4].kind, HC_EV_EJECT_SKIPPED);

    /* Once the first two are back, the third one can go. */
    hc_tick(e.hc, 2000);
    assert_int_equal(e.rec.n, 7); /* a and b returned */
    hc_tick(e.hc, 2100);
    assert_int_equal(e.rec.n, 8); /* and k */
    t_fail(&e, 0, 2, 3);
    hc_tick(e.hc, 2200);
    assert_int_equal(e.rec.n, 9);
    assert_int_equal(e.rec.ev[8].kind, HC_EV_EJECTED);
    assert_int_equal(e.rec.ev[8].server, 2);
    t_teardown(&e);
}

/* Half of one is zero: a lone primary is never ejected passively. */
static void test_passive_lone_primary(void **state)
{
    struct t_env e;
    t_setup(&e, LISTENER "clusters:\n"
                         "  c:\n"
                         "    servers: [ { name: a, address: 127.0.0.1:2 } ]\n"
                         "    passive: { consecutive_failures: 2 }\n");
    t_fail(&e, 0, 0, 2);
    hc_tick(e.hc, 100);
    assert_int_equal(e.rec.n, 1);
    assert_int_equal(e.rec.ev[0].kind, HC_EV_EJECT_SKIPPED);
    t_teardown(&e);
}

/* With active checks the ejection ends only with a passing probe after its time. */
static void test_passive_returns_through_probe(void **state)
{
    struct t_env e;
    t_setup(&e, LISTENER "clusters:\n"
                         "  c:\n"
                         "    servers:\n"
                         "      - { name: a, address: 127.0.0.1:2 }\n"
                         "      - { name: b, address: 127.0.0.1:3 }\n"
                         "    health: { check: tcp, rise: 2, fall: 3 }\n"
                         "    passive: { consecutive_failures: 3, ejection: 1s }\n");
    t_fail(&e, 0, 0, 3);
    hc_tick(e.hc, 1000);
    assert_int_equal(e.rec.n, 1);
    assert_int_equal(e.rec.ev[0].kind, HC_EV_EJECTED);
    int t = hc_target_of(e.hc, 0, 0);
    assert_true(t >= 0);

    /* A passing probe before the time is over keeps it out... */
    hc_probe_done(e.hc, (uint32_t)t, true, "connected", 50, 1500);
    /* ...and the time alone does not bring it back either. */
    hc_tick(e.hc, 2000);
    hc_tick(e.hc, 60000);
    assert_int_equal(e.rec.n, 1);
    /* A failing probe after the time does not. */
    hc_probe_done(e.hc, (uint32_t)t, false, "connect: Connection refused", 50, 60100);
    assert_int_equal(e.rec.n, 1);
    /* The first passing probe after the time does, at once (no rise for an ejection). */
    hc_probe_done(e.hc, (uint32_t)t, true, "connected", 50, 60200);
    assert_int_equal(e.rec.n, 2);
    assert_int_equal(e.rec.ev[1].kind, HC_EV_RETURNED);
    assert_non_null(strstr(e.rec.ev[1].reason, "check passed"));
    t_teardown(&e);
}

/* ---- slow start -------------------------------------------------------------------------- */

static void test_slow_start(void **state)
{
    struct t_env e;
    t_setup(&e, LISTENER "clusters:\n"
                         "  c:\n"
                         "    servers:\n"
                         "      - { name: a, address: 127.0.0.1:2, weight: 10 }\n"
                         "      - { name: b, address: 127.0.0.1:3 }\n"
                         "    health: { check: tcp, rise: 1, fall: 1 }\n"
                         "    slow_start: 1s\n");
    /* No ramp at startup. */
    hc_tick(e.hc, 0);
    assert_int_equal(e.rec.nweight, 0);
    hc_probe_done(e.hc, 0, false, "x", 0, 1000);
    hc_tick(e.hc, 1100);
    assert_int_equal(e.rec.nweight, 0);
    hc_probe_done(e.hc, 0, true, "x", 0, 2000);
    assert_int_equal(e.rec.weight[0][0], 1);
    hc_tick(e.hc, 2250);
    assert_int_equal(e.rec.weight[0][0], 2);
    hc_tick(e.hc, 2500);
    assert_int_equal(e.rec.weight[0][0], 5);
    hc_tick(e.hc, 2999);
    assert_int_equal(e.rec.weight[0][0], 9);
    hc_tick(e.hc, 3000);
    assert_int_equal(e.rec.weight[0][0], 10);
    uint32_t n = e.rec.nweight;
    hc_tick(e.hc, 3100);
    assert_int_equal(e.rec.nweight, n); /* ramp over, no more calls */
    /* Weight 1 cannot ramp: no calls at all for b. */
    hc_probe_done(e.hc, 1, false, "x", 0, 4000);
    hc_probe_done(e.hc, 1, true, "x", 0, 4100);
    hc_tick(e.hc, 4200);
    assert_int_equal(e.rec.nweight, n);
    t_teardown(&e);
}

/* ---- probe targets ----------------------------------------------------------------------- */

static void test_dedupe_by_address(void **state)
{
    struct t_env e;
    t_setup(&e, LISTENER "clusters:\n"
                         "  c:\n"
                         "    servers:\n"
                         "      - { name: a, address: 127.0.0.1:2 }\n"
                         "      - { name: b, address: 127.0.0.1:3 }\n"
                         "    health: { check: http, interval: 2s, fall: 1 }\n"
                         "  d:\n"
                         "    servers:\n"
                         "      - { name: a2, address: 127.0.0.1:2 }\n"
                         "    health: { check: http, interval: 1s, fall: 2 }\n"
                         "  e:\n"
                         "    servers:\n"
                         "      - { name: a3, address: 127.0.0.1:2 }\n"
                         "    health: { check: http, path: /other }\n"
                         "  f:\n"
                         "    servers:\n"
                         "      - { name: a4, address: 127.0.0.1:2 }\n"
                         "      - { name: x, address: 127.0.0.1:9 }\n"
                         "    health: { check: tcp }\n"
                         "  g:\n"
                         "    servers: [ { name: a5, address: 127.0.0.1:2 } ]\n");
    /* a and a2: one target; a3 (other path) and a4 (tcp) their own; b and x theirs. */
    assert_int_equal(hc_ntargets(e.hc), 5);
    int ta = hc_target_of(e.hc, 0, 0);
    assert_int_equal(hc_target_of(e.hc, 1, 0), ta);
    assert_int_not_equal(hc_target_of(e.hc, 2, 0), ta);
    assert_int_not_equal(hc_target_of(e.hc, 3, 0), ta);
    assert_int_not_equal(hc_target_of(e.hc, 0, 1), ta);
    assert_int_equal(hc_target_of(e.hc, 4, 0), -1);
    /* One result reaches both servers, each judged with its own cluster's fall. */
    hc_probe_done(e.hc, (uint32_t)ta, false, "status 503", 0, 10);
    assert_int_equal(e.rec.n, 1);
    assert_int_equal(e.rec.ev[0].cluster, 0);
    hc_probe_done(e.hc, (uint32_t)ta, false, "status 503", 0, 20);
    assert_int_equal(e.rec.n, 2);
    assert_int_equal(e.rec.ev[1].cluster, 1);
    assert_int_equal(e.rec.ev[1].kind, HC_EV_DOWN);
    t_teardown(&e);
}

static void test_jitter_bounds(void **state)
{
    const uint64_t intervals[] = {100, 2000, 3600000, 7};
    for (size_t k = 0; k < sizeof(intervals) / sizeof(intervals[0]); k++) {
        uint64_t iv = intervals[k], rng = 12345 + k, lo = UINT64_MAX, hi = 0;
        double sum = 0;
        const int n = 100000;
        for (int i = 0; i < n; i++) {
            uint64_t j = hc_jitter(iv, &rng);
            assert_true(j * 10 >= iv * 9);  /* >= 90% */
            assert_true(j * 10 <= iv * 11); /* <= 110% */
            lo = j < lo ? j : lo;
            hi = j > hi ? j : hi;
            sum += (double)j;
        }
        double mean = sum / n;
        printf("jitter interval=%llu min=%llu max=%llu mean=%.1f\n", (unsigned long long)iv,
               (unsigned long long)lo, (unsigned long long)hi, mean);
        if (iv >= 100) { /* spread over the whole band, centred */
            assert_true(lo * 100 <= iv * 91);
            assert_true(hi * 100 >= iv * 109);
            assert_true(mean > (double)iv * 0.99 && mean < (double)iv * 1.01);
        }
    }
}

/* ---- http verdict ------------------------------------------------------------------------ */

static int verdict(const char *s, bool eof, int status, const char *body, char *why)
{
    return hc_http_verdict(s, strlen(s), eof, status, body, why, HC_REASON_MAX);
}

static void test_http_verdict(void **state)
{
    char why[HC_REASON_MAX];
    assert_int_equal(verdict("HTTP/1.1 200 OK\r\n", false, 200, NULL, why), 1);
    assert_string_equal(why, "status 200");
    assert_int_equal(verdict("HTTP/1.0 204\r\n", false, 204, NULL, why), 1);
    assert_int_equal(verdict("HTTP/1.1 500 Internal\r\n", false, 200, NULL, why), 0);
    assert_string_equal(why, "status 500");
    assert_int_equal(verdict("HTTP/1.1 20", false, 200, NULL, why), -EAGAIN);
    assert_int_equal(verdict("HTTP/1.1 20", true, 200, NULL, why), 0);
    assert_int_equal(verdict("", true, 200, NULL, why), 0);
    assert_string_equal(why, "connection closed without a response");
    assert_int_equal(verdict("HTTP/2 200 OK\r\n", false, 200, NULL, why), 0);
    assert_int_equal(verdict("HTTP/1.1 2000 OK\r\n", false, 200, NULL, why), 0);
    assert_int_equal(verdict("SSH-2.0-OpenSSH\r\n", false, 200, NULL, why), 0);
    assert_string_equal(why, "malformed status line");

    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
    char buf[256];
    assert_int_equal(verdict(head, false, 200, "ready", why), -EAGAIN);
    snprintf(buf, sizeof(buf), "%sstatus: r", head);
    assert_int_equal(verdict(buf, false, 200, "ready", why), -EAGAIN);
    snprintf(buf, sizeof(buf), "%sstatus: ready", head);
    assert_int_equal(verdict(buf, false, 200, "ready", why), 1);
    snprintf(buf, sizeof(buf), "%sstatus: busy", head);
    assert_int_equal(verdict(buf, true, 200, "ready", why), 0);
    assert_non_null(strstr(why, "lacks the expected text"));
    /* The text must be in the body, not in a header. */
    assert_int_equal(verdict("HTTP/1.1 200 OK\r\nX-ready: 1\r\n\r\nno", true, 200, "ready", why),
                     0);
    /* Only the first HC_HTTP_MAX bytes count. */
    static char big[HC_HTTP_MAX + 64];
    size_t hl = strlen(head);
    memcpy(big, head, hl);
    memset(big + hl, 'x', sizeof(big) - hl);
    memcpy(big + HC_HTTP_MAX + 8, "ready", 5);
    assert_int_equal(hc_http_verdict(big, sizeof(big), false, 200, "ready", why, sizeof(why)), 0);
    memcpy(big + HC_HTTP_MAX - 5, "ready", 5);
    assert_int_equal(hc_http_verdict(big, HC_HTTP_MAX, false, 200, "ready", why, sizeof(why)), 1);
}

/* ---- the engine on a ring of the caller's ------------------------------------------------- */

static uint64_t t_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A loopback TCP socket on an ephemeral port, listening or not; returns the fd, sets *@port. */
static int t_socket(bool listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listening)
        assert_int_equal(listen(fd, 128), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* One iteration of a caller's loop: tick, submit and wait, hand back the engine's CQEs. */
static void t_loop_once(struct hc *hc, struct io_uring *ring, uint8_t tag, bool tick)
{
    uint64_t now = t_mono_ms();
    uint64_t next = tick ? hc_engine_tick(hc, now) : now + 20;
    uint64_t ms = next > now ? next - now : 0;
    struct __kernel_timespec ts = {.tv_sec = 0,
                                   .tv_nsec = (long long)(ms < 50 ? ms : 50) * 1000000};
    struct io_uring_cqe *cqe;
    io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    unsigned head, n = 0;
    io_uring_for_each_cqe(ring, head, cqe)
    {
        assert_int_equal(cqe->user_data >> 56, tag); /* everything it queued carries its tag */
        hc_engine_on_cqe(hc, cqe);
        n++;
    }
    io_uring_cq_advance(ring, n);
}

static void test_engine_on_ring(void **state)
{
    /* a: listening; b: a bound port nobody listens on (refused, and no one else can take it) */
    int pa, pb;
    int la = t_socket(true, &pa), lb = t_socket(false, &pb);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             LISTENER "clusters:\n"
                      "  c:\n"
                      "    servers: [ { name: a, address: 127.0.0.1:%d },\n"
                      "               { name: b, address: 127.0.0.1:%d } ]\n"
                      "    health: { check: tcp, interval: 100ms, timeout: 100ms, fall: 2 }\n",
             pa, pb);
    struct t_env e;
    t_setup(&e, yaml);
    struct io_uring ring;
    const uint8_t tag = 7;
    assert_int_equal(io_uring_queue_init(64, &ring, 0), 0);
    assert_int_equal(hc_engine_attach(e.hc, &ring, tag, NULL), 0);
    assert_int_equal(hc_engine_attach(e.hc, &ring, tag, NULL), -EALREADY);

    struct hc_status st;
    uint64_t end = t_mono_ms() + 3000;
    while (e.rec.n == 0 && t_mono_ms() < end)
        t_loop_once(e.hc, &ring, tag, true);
    assert_int_equal(e.rec.n, 1);
    assert_int_equal(e.rec.ev[0].kind, HC_EV_DOWN);
    assert_int_equal(e.rec.ev[0].server, 1);
    assert_non_null(strstr(e.rec.ev[0].reason, "refused"));
    /* a keeps passing meanwhile */
    while (hc_server_status(e.hc, 0, 0, &st) == 0 && st.probes < 3 && t_mono_ms() < end)
        t_loop_once(e.hc, &ring, tag, true);
    assert_true(st.probes >= 3 && st.last_ok && st.fail_run == 0);

    /* Detach: no callback any more; the last completions come back, then nothing is left. */
    hc_engine_detach(e.hc);
    hc_engine_detach(e.hc); /* twice is fine */
    assert_int_equal(hc_engine_tick(e.hc, t_mono_ms()), UINT64_MAX);
    uint32_t events = e.rec.n;
    end = t_mono_ms() + 1000;
    while (hc_engine_inflight(e.hc) && t_mono_ms() < end)
        t_loop_once(e.hc, &ring, tag, false);
    assert_int_equal(hc_engine_inflight(e.hc), 0);
    assert_int_equal(e.rec.n, events);
    io_uring_queue_exit(&ring);
    t_teardown(&e);
    close(la);
    close(lb);
}

/* ---- redis: the verdict on [AUTH,] PING, ROLE, and following the master ----------------- */

static void test_redis_verdict(void **state)
{
    char why[96];
    bool m;
    static const char master[] = "+PONG\r\n*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";
    assert_int_equal(hc_redis_verdict(master, sizeof(master) - 1, false, false, &m, why, 96), 1);
    assert_true(m);
    static const char replica[] = "+OK\r\n+PONG\r\n*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n";
    assert_int_equal(hc_redis_verdict(replica, sizeof(replica) - 1, false, true, &m, why, 96), 1);
    assert_false(m);
    /* Every prefix of a good answer waits for more, and fails at EOF. */
    for (size_t n = 0; n < sizeof(master) - 1 - 14; n++) {
        assert_int_equal(hc_redis_verdict(master, n, false, false, &m, why, 96), -EAGAIN);
        assert_int_equal(hc_redis_verdict(master, n, true, false, &m, why, 96), 0);
    }
    static const char noauth[] = "-NOAUTH Authentication required.\r\n";
    assert_int_equal(hc_redis_verdict(noauth, sizeof(noauth) - 1, false, false, &m, why, 96), 0);
    assert_non_null(strstr(why, "PING: -NOAUTH"));
    static const char badpw[] = "-WRONGPASS invalid\r\n";
    assert_int_equal(hc_redis_verdict(badpw, sizeof(badpw) - 1, false, true, &m, why, 96), 0);
    assert_non_null(strstr(why, "AUTH: -WRONGPASS"));
    static const char loading[] = "+PONG\r\n-LOADING Redis is loading\r\n";
    assert_int_equal(hc_redis_verdict(loading, sizeof(loading) - 1, false, false, &m, why, 96), 0);
    static const char sentinel[] = "+PONG\r\n*2\r\n$8\r\nsentinel\r\n*0\r\n";
    assert_int_equal(hc_redis_verdict(sentinel, sizeof(sentinel) - 1, false, false, &m, why, 96),
                     0);
}

struct t_member {
    uint32_t member, calls;
};

static void t_on_member(void *arg, uint32_t cluster, uint32_t server, uint32_t member,
                        const char *reason)
{
    struct t_member *tm = arg;
    tm->member = member;
    tm->calls++;
}

static void t_event_only(void *arg, const struct hc_event *ev)
{
    (void)arg, (void)ev;
}

static void test_redis_follows_master(void **state)
{
    static const char yaml[] = LISTENER "clusters:\n"
                                        "  c:\n"
                                        "    health: { check: redis, rise: 1, fall: 2 }\n"
                                        "    servers:\n"
                                        "      - { name: a, address: 127.0.0.1:6001, "
                                        "replicas: [ 127.0.0.1:6002, 127.0.0.1:6003 ] }\n";
    struct conf_diags d = {0};
    struct conf *cf = conf_load_buf("test.yaml", yaml, strlen(yaml), &d);
    assert_non_null(cf);
    struct t_member tm = {0};
    struct hc_ops ops = {.member = t_on_member, .event = t_event_only, .arg = &tm};
    struct hc *hc = hc_new(cf, &ops, 1, NULL);
    assert_non_null(hc);
    assert_int_equal(hc_ntargets(hc), 3); /* one per member */
    struct hc_status st;
    /* The replicas answer as replicas: nothing moves, the server stays up. */
    hc->targets[1].master = hc->targets[2].master = false;
    hc_probe_done(hc, 1, true, "replica", 10, 1000);
    hc_probe_done(hc, 2, true, "replica", 10, 1000);
    assert_int_equal(tm.calls, 0);
    hc_server_status(hc, 0, 0, &st);
    assert_false(st.down);
    /* The master dies: two failed results and the server is down. */
    hc_probe_done(hc, 0, false, "connect: refused", 10, 1100);
    hc_probe_done(hc, 1, true, "replica", 10, 1100);
    hc_server_status(hc, 0, 0, &st);
    assert_true(st.down);
    assert_non_null(strstr(st.reason, "no member is master"));
    /* Member 2 is promoted: traffic follows it at once and the server is up again. */
    hc->targets[2].master = true;
    hc_probe_done(hc, 2, true, "master", 10, 1200);
    assert_int_equal(tm.calls, 1);
    assert_int_equal(tm.member, 2);
    hc_server_status(hc, 0, 0, &st);
    assert_false(st.down);
    /* The old master comes back as a master too (split brain): lb stays where it is. */
    hc->targets[0].master = true;
    hc_probe_done(hc, 0, true, "master", 10, 1300);
    assert_int_equal(tm.calls, 1);
    hc_free(hc);
    conf_free(cf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rise_fall),
        cmocka_unit_test(test_rise_fall_one),
        cmocka_unit_test(test_passive_threshold_and_success_reset),
        cmocka_unit_test(test_passive_doubling_and_cap),
        cmocka_unit_test(test_passive_max_ejected_percent),
        cmocka_unit_test(test_passive_lone_primary),
        cmocka_unit_test(test_passive_returns_through_probe),
        cmocka_unit_test(test_slow_start),
        cmocka_unit_test(test_dedupe_by_address),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_http_verdict),
        cmocka_unit_test(test_redis_verdict),
        cmocka_unit_test(test_redis_follows_master),
        cmocka_unit_test(test_engine_on_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
