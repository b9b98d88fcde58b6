/*
 * The metrics endpoint's answers (lb/metrics/metrics.c) without a socket: label escaping; the
 * Prometheus text checked line by line against the exposition grammar (every sample has a
 * TYPE before it, families are contiguous, histograms are cumulative and end with +Inf equal
 * to _count); counters bumped through the data-path helpers show up under the right labels;
 * /stats is JSON that lbctl's reader accepts; the request line parser and its status codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/metrics/metrics.h"
#include "lb/core/runtime.h"
#include "tools/ctl_json.c"

static const char t_conf[] = "global: { workers: 1 }\n"
                             "listeners:\n"
                             "  - name: web\n"
                             "    bind: 127.0.0.1:7000\n"
                             "    protocol: http\n"
                             "    routes:\n"
                             "      - { match: { path_prefix: /kv }, cluster: kv }\n"
                             "      - cluster: app\n"
                             "  - { name: raw, bind: 127.0.0.1:7001, protocol: tcp, cluster: kv }\n"
                             "clusters:\n"
                             "  app:\n"
                             "    servers:\n"
                             "      - { name: app1, address: 127.0.0.1:9001, weight: 3 }\n"
                             "      - { name: app2, address: 127.0.0.1:9002 }\n"
                             "      - { name: spare, address: 127.0.0.1:9003, backup: true }\n"
                             "  kv:\n"
                             "    servers: [ { name: kv1, address: 127.0.0.1:9004 } ]\n";

struct t_rt {
    struct lb_runtime rt;
    struct conf_diags d;
};

static struct lb_runtime *t_rt_new(void)
{
    struct t_rt *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->rt.conf = conf_load_buf("t.yaml", t_conf, sizeof(t_conf) - 1, &t->d);
    if (!t->rt.conf)
        conf_diags_print(&t->d, "t.yaml", stderr);
    assert_non_null(t->rt.conf);
    t->rt.clusters = calloc(t->rt.conf->nclusters, sizeof(*t->rt.clusters));
    t->rt.lstats = calloc(t->rt.conf->nlisteners, sizeof(*t->rt.lstats));
    assert_non_null(t->rt.clusters);
    assert_non_null(t->rt.lstats);
    for (size_t i = 0; i < t->rt.conf->nclusters; i++) {
        assert_int_equal(cl_cluster_init(&t->rt.clusters[i], &t->rt.conf->clusters[i], NULL), 0);
        assert_int_equal(
            cl_cluster_stats_init(&t->rt.clusters[i], (uint32_t)t->rt.conf->nlisteners), 0);
    }
    return &t->rt;
}

static void t_rt_free(struct lb_runtime *rt)
{
    for (size_t i = 0; i < rt->conf->nclusters; i++)
        cl_cluster_destroy(&rt->clusters[i]);
    free(rt->clusters);
    free(rt->lstats);
    conf_free(rt->conf);
    free((struct t_rt *)rt); /* rt is the first member */
}

static void test_label_escaping(void **state)
{
    struct lb_jbuf j;
    lb_jbuf_init(&j, 1024);
    static const char in[] = "a\"b\\c\nd\xc3\xa9{}=,";
    metrics_label_value(&j, in, sizeof(in) - 1);
    assert_false(j.overflow);
    assert_string_equal(j.p, "a\\\"b\\\\c\\nd\xc3\xa9{}=,");
    lb_jbuf_reset(&j);
    metrics_label_value(&j, "", 0);
    assert_int_equal(j.len, 0);
    metrics_label_value(&j, "\\\\", 2);
    assert_string_equal(j.p, "\\\\\\\\");
    lb_jbuf_free(&j);
}

/* ---- a strict reader for the text format ------------------------------------------------ */

#define MAX_FAMILIES 64

struct family {
    char name[96];
    char type[32];
    bool closed; /* another family's samples came after it */
};

struct prom {
    struct family fam[MAX_FAMILIES];
    size_t n;
    int cur; /* family of the last sample, -1 none */
    /* histogram check state, for the current series */
    double last_le;
    uint64_t last_bucket;
    uint64_t inf_bucket;
    bool have_inf;
    size_t samples;
};

static bool name_char(char c, bool first)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':' ||
           (!first && isdigit((unsigned char)c));
}

static int find_family(struct prom *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->fam[i].name, name))
            return (int)i;
    return -1;
}

/* The family a sample belongs to: its name, or for histograms the name without the suffix. */
static int family_of(struct prom *p, const char *name, const char **suffix)
{
    *suffix = "";
    int f = find_family(p, name);
    if (f >= 0)
        return f;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(sfx[i]);
        if (nl > sl && !strcmp(name + nl - sl, sfx[i])) {
            char base[96];
            snprintf(base, sizeof(base), "%.*s", (int)(nl - sl), name);
            f = find_family(p, base);
            if (f >= 0 && !strcmp(p->fam[f].type, "histogram")) {
                *suffix = sfx[i];
                return f;
            }
        }
    }
    return -1;
}

/* Parses one sample line; fails the test on anything the grammar does not allow. Fills the
 * value of label "le" in @le (or "" when none). */
static void sample_line(struct prom *p, const char *line)
{
    char name[96], le[256] = "";
    size_t i = 0, k = 0;
    assert_true(name_char(line[0], true));
    while (name_char(line[i], false) && k < sizeof(name) - 1)
        name[k++] = line[i++];
    name[k] = '\0';
    if (line[i] == '{') {
        i++;
        while (line[i] != '}') {
            char lname[64];
            k = 0;
            assert_true(name_char(line[i], true) && line[i] != ':');
            while (name_char(line[i], false) && line[i] != ':' && k < sizeof(lname) - 1)
                lname[k++] = line[i++];
            lname[k] = '\0';
            assert_int_equal(line[i++], '=');
            assert_int_equal(line[i++], '"');
            char val[256];
            k = 0;
            while (line[i] != '"') {
                assert_true(line[i] != '\0' && line[i] != '\n');
                if (line[i] == '\\') {
                    i++;
                    assert_true(line[i] == '\\' || line[i] == '"' || line[i] == 'n');
                }
                if (k < sizeof(val) - 1)
                    val[k++] = line[i];
                i++;
            }
            val[k] = '\0';
            i++;
            if (!strcmp(lname, "le"))
                snprintf(le, sizeof(le), "%s", val);
            if (line[i] == ',')
                i++;
            else
                assert_int_equal(line[i], '}');
        }
        i++;
    }
    assert_int_equal(line[i++], ' ');
    char *end;
    double v = strtod(line + i, &end);
    assert_true(end != line + i);
    assert_int_equal(*end, '\0'); /* no timestamps from us */

    const char *suffix;
    int f = family_of(p, name, &suffix);
    if (f < 0)
        print_message("sample %s has no TYPE line before it\n", name);
    assert_true(f >= 0);
    if (p->fam[f].closed)
        print_message("family %s is not contiguous\n", p->fam[f].name);
    assert_false(p->fam[f].closed);
    if (p->cur >= 0 && p->cur != f)
        p->fam[p->cur].closed = true;
    p->cur = f;
    p->samples++;

    if (!strcmp(p->fam[f].type, "histogram")) {
        if (!strcmp(suffix, "_bucket")) {
            assert_true(le[0]);
            double lev = !strcmp(le, "+Inf") ? 1e300 : strtod(le, NULL);
            if (p->have_inf) { /* a new series starts */
                p->have_inf = false;
                p->last_le = -1;
                p->last_bucket = 0;
            }
            assert_true(lev > p->last_le);
            assert_true((uint64_t)v >= p->last_bucket); /* cumulative */
            p->last_le = lev;
            p->last_bucket = (uint64_t)v;
            if (lev == 1e300) {
                p->have_inf = true;
                p->inf_bucket = (uint64_t)v;
            }
        } else if (!strcmp(suffix, "_count")) {
            assert_true(p->have_inf);
            assert_int_equal((uint64_t)v, p->inf_bucket);
        }
    }
}

/* Checks the whole text; returns the number of samples. */
static size_t prom_check(const char *text)
{
    static struct prom p;
    memset(&p, 0, sizeof(p));
    p.cur = -1;
    p.last_le = -1;
    const char *s = text;
    assert_true(*s);
    while (*s) {
        const char *nl = strchr(s, '\n');
        assert_non_null(nl); /* every line ends with \n, the last one too */
        char line[1024];
        assert_true((size_t)(nl - s) < sizeof(line));
        memcpy(line, s, (size_t)(nl - s));
        line[nl - s] = '\0';
        s = nl + 1;
        char name[96], type[32];
        if (!strncmp(line, "# HELP ", 7)) {
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            assert_true(strlen(line) > 8 + strlen(name));
        } else if (!strncmp(line, "# TYPE ", 7)) {
            assert_int_equal(sscanf(line + 7, "%95s %31s", name, type), 2);
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
                        !strcmp(type, "histogram"));
            assert_int_equal(find_family(&p, name), -1); /* one TYPE per family */
            assert_true(p.n < MAX_FAMILIES);
            snprintf(p.fam[p.n].name, sizeof(p.fam[p.n].name), "%s", name);
            snprintf(p.fam[p.n].type, sizeof(p.fam[p.n].type), "%s", type);
            if (!strcmp(type, "counter")) /* Prometheus convention */
                assert_non_null(strstr(name, "_total"));
            p.n++;
        } else {
            assert_true(line[0] != '#' && line[0] != '\0');
            sample_line(&p, line);
        }
    }
    return p.samples;
}

static struct cl_server *srv(struct lb_runtime *rt, size_t ci, uint32_t si)
{
    return &rt->clusters[ci].servers[si];
}

static void assert_has_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("missing line: %s", line);
}

static void test_prometheus_text(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    struct lb_jbuf j;
    lb_jbuf_init(&j, METRICS_ANSWER_MAX);

    /* An idle lb: already well-formed, series at zero. */
    metrics_prom(rt, &j);
    assert_false(j.overflow);
    assert_true(prom_check(j.p) > 40);
    assert_has_line(j.p, "lb_requests_total{listener=\"web\",cluster=\"app\",server=\"app1\","
                         "code=\"2xx\"} 0");
    /* The tcp listener never carries HTTP codes. */
    assert_null(strstr(j.p, "listener=\"raw\",cluster"));

    /* Traffic, through the helpers the data path calls. */
    cl_server_count_status(srv(rt, 0, 0), 0, 200);
    cl_server_count_status(srv(rt, 0, 0), 0, 204);
    cl_server_count_status(srv(rt, 0, 1), 0, 503);
    cl_server_count_status(srv(rt, 0, 1), 0, 99);  /* out of range: ignored */
    cl_server_count_status(srv(rt, 0, 1), 0, 600); /* likewise */
    cl_server_count_status(srv(rt, 1, 0), 7, 200); /* no such listener: total only */
    metrics_listener_count_status(&rt->lstats[0], 404);
    cl_server_count_retry(srv(rt, 0, 1));
    atomic_fetch_add(&srv(rt, 0, 0)->picks, 5);
    atomic_fetch_add(&srv(rt, 0, 0)->bytes_in, 1234);
    atomic_fetch_or(&srv(rt, 0, 1)->flags, CL_SRV_F_DRAINING);
    atomic_fetch_or(&srv(rt, 0, 2)->flags, CL_SRV_F_DOWN);
    atomic_store(&srv(rt, 0, 0)->probe_result, CL_PROBE_OK);
    atomic_store(&srv(rt, 0, 0)->probe_latency_us, 1500);
    atomic_store(&srv(rt, 0, 0)->weight, 2);
    atomic_fetch_add(&rt->lstats[1].accepted, 3);
    uint64_t lat[] = {999, 1000, 1001, 60000, 20000000};
    for (size_t i = 0; i < sizeof(lat) / sizeof(lat[0]); i++)
        cl_cluster_observe_latency(&rt->clusters[0], lat[i]);

    lb_jbuf_reset(&j);
    metrics_prom(rt, &j);
    assert_false(j.overflow);
    prom_check(j.p);
    assert_has_line(j.p, "lb_requests_total{listener=\"web\",cluster=\"app\",server=\"app1\","
                         "code=\"2xx\"} 2");
    assert_has_line(j.p, "lb_requests_total{listener=\"web\",cluster=\"app\",server=\"app2\","
                         "code=\"5xx\"} 1");
    assert_has_line(j.p, "lb_listener_responses_total{listener=\"web\",code=\"4xx\"} 1");
    assert_has_line(j.p, "lb_listener_connections_total{listener=\"raw\",protocol=\"tcp\"} 3");
    assert_has_line(j.p, "lb_server_retries_total{cluster=\"app\",server=\"app2\"} 1");
    assert_has_line(j.p, "lb_server_picks_total{cluster=\"app\",server=\"app1\"} 5");
    assert_has_line(j.p, "lb_server_received_bytes_total{cluster=\"app\",server=\"app1\"} 1234");
    assert_has_line(j.p, "lb_server_state{cluster=\"app\",server=\"app2\",state=\"draining\"} 1");
    assert_has_line(j.p, "lb_server_state{cluster=\"app\",server=\"app2\",state=\"up\"} 0");
    assert_has_line(j.p, "lb_server_up{cluster=\"app\",server=\"app2\"} 1");
    assert_has_line(j.p, "lb_server_up{cluster=\"app\",server=\"spare\"} 0");
    assert_has_line(j.p, "lb_server_state{cluster=\"app\",server=\"spare\",state=\"down\"} 1");
    assert_has_line(j.p, "lb_server_weight{cluster=\"app\",server=\"app1\"} 2");
    assert_has_line(j.p, "lb_server_config_weight{cluster=\"app\",server=\"app1\"} 3");
    assert_has_line(j.p, "lb_server_check_success{cluster=\"app\",server=\"app1\"} 1");
    assert_has_line(j.p,
                    "lb_server_check_duration_seconds{cluster=\"app\",server=\"app1\"} 0.0015");
    assert_null(strstr(j.p, "lb_server_check_success{cluster=\"app\",server=\"app2\"}"));
    /* le is inclusive: 999 and 1000 us are in the 1 ms bucket, 1001 us is not. */
    assert_has_line(j.p, "lb_request_duration_seconds_bucket{cluster=\"app\",le=\"0.001\"} 2");
    assert_has_line(j.p, "lb_request_duration_seconds_bucket{cluster=\"app\",le=\"0.0025\"} 3");
    assert_has_line(j.p, "lb_request_duration_seconds_bucket{cluster=\"app\",le=\"0.1\"} 4");
    assert_has_line(j.p, "lb_request_duration_seconds_bucket{cluster=\"app\",le=\"10\"} 4");
    assert_has_line(j.p, "lb_request_duration_seconds_bucket{cluster=\"app\",le=\"+Inf\"} 5");
    assert_has_line(j.p, "lb_request_duration_seconds_count{cluster=\"app\"} 5");
    assert_has_line(j.p, "lb_request_duration_seconds_count{cluster=\"kv\"} 0");
    assert_has_line(j.p, "lb_server_retries_total{cluster=\"kv\",server=\"kv1\"} 0");

    lb_jbuf_free(&j);
    t_rt_free(rt);
}

static void test_stats_json(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    struct lb_jbuf j;
    char jerr[128];
    lb_jbuf_init(&j, METRICS_ANSWER_MAX);
    cl_server_count_status(srv(rt, 0, 0), 0, 200);
    atomic_store(&srv(rt, 0, 0)->probe_result, CL_PROBE_FAIL);
    metrics_json(rt, NULL, &j);
    assert_false(j.overflow);
    struct ctl_json *v = ctl_json_parse(j.p, j.len, jerr, sizeof(jerr));
    if (!v)
        fprintf(stderr, "bad JSON (%s): %s\n", jerr, j.p);
    assert_non_null(v);
    const struct ctl_json *ls = ctl_json_get(v, "listeners");
    assert_non_null(ls);
    assert_string_equal(ctl_json_str(ls->child, "name", ""), "web");
    const struct ctl_json *cl = ctl_json_get(v, "clusters");
    assert_non_null(cl);
    const struct ctl_json *s = ctl_json_get(cl->child, "servers")->child;
    assert_string_equal(ctl_json_str(s, "name", ""), "app1");
    assert_string_equal(ctl_json_str(s, "last_check", ""), "fail");
    assert_int_equal(ctl_json_num(ctl_json_get(s, "responses"), "2xx", -1), 1);
    assert_non_null(ctl_json_get(v, "latency"));
    assert_non_null(ctl_json_get(v, "snapshots"));
    ctl_json_free(v);

    /* The page embeds the same JSON and names every server. */
    lb_jbuf_reset(&j);
    metrics_page(rt, NULL, false, &j);
    assert_false(j.overflow);
    assert_non_null(strstr(j.p, "<script>"));
    assert_non_null(strstr(j.p, "\"app2\""));
    assert_non_null(strstr(j.p, "\"kv1\""));
    assert_non_null(strstr(j.p, "</html>\n"));
    lb_jbuf_free(&j);
    t_rt_free(rt);
}

static int t_answer(struct lb_runtime *rt, const char *req, struct lb_jbuf *out)
{
    lb_jbuf_reset(out);
    int st = metrics_answer(rt, NULL, NULL, req, strlen(req), out);
    assert_false(out->overflow);
    /* Every answer is a whole response that closes. */
    char sl[32];
    snprintf(sl, sizeof(sl), "HTTP/1.1 %d ", st);
    assert_memory_equal(out->p, sl, strlen(sl));
    assert_non_null(strstr(out->p, "\r\nConnection: close\r\n"));
    const char *cl = strstr(out->p, "\r\nContent-Length: ");
    const char *body = strstr(out->p, "\r\n\r\n");
    assert_non_null(cl);
    assert_non_null(body);
    bool head = !strncmp(req, "HEAD ", 5);
    assert_int_equal(strtoul(cl + 18, NULL, 10) * !head, out->len - (size_t)(body + 4 - out->p));
    return st;
}

static void test_http(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    struct lb_jbuf j;
    lb_jbuf_init(&j, METRICS_ANSWER_MAX + 4096);

    assert_int_equal(t_answer(rt, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &j), 200);
    assert_non_null(strstr(j.p, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(j.p, "# TYPE lb_requests_total counter"));
    assert_int_equal(t_answer(rt, "GET /metrics?name[]=x HTTP/1.0\n\n", &j), 200);
    assert_int_equal(t_answer(rt, "HEAD /metrics HTTP/1.1\r\n\r\n", &j), 200);
    assert_null(strstr(j.p, "# TYPE"));
    assert_int_equal(t_answer(rt, "GET /stats HTTP/1.1\r\n\r\n", &j), 200);
    assert_non_null(strstr(j.p, "Content-Type: application/json"));
    assert_int_equal(t_answer(rt, "GET / HTTP/1.1\r\n\r\n", &j), 200);
    assert_non_null(strstr(j.p, "Content-Type: text/html"));

    assert_int_equal(t_answer(rt, "GET /nope HTTP/1.1\r\n\r\n", &j), 404);
    assert_int_equal(t_answer(rt, "GET /metrics/ HTTP/1.1\r\n\r\n", &j), 404);
    assert_int_equal(t_answer(rt, "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\n", &j), 405);
    assert_non_null(strstr(j.p, "\r\nAllow: GET, HEAD\r\n"));
    assert_int_equal(t_answer(rt, "DELETE / HTTP/1.1\r\n\r\n", &j), 405);
    assert_int_equal(t_answer(rt, "get /metrics HTTP/1.1\r\n\r\n", &j), 405); /* case matters */

    static const char *const bad[] = {
        "GET  /metrics HTTP/1.1\r\n\r\n", /* two spaces */
        "GET metrics HTTP/1.1\r\n\r\n",   /* not origin-form */
        "GET http://x/metrics HTTP/1.1\r\n\r\n",
        "GET /metrics\r\n\r\n",           /* HTTP/0.9 */
        "GET /metrics HTTP/1.1 \r\n\r\n", /* trailing space */
        "GET /metrics HTTP/1.10\r\n\r\n",
        "GET /metrics http/1.1\r\n\r\n",
        "GET /met\x01rics HTTP/1.1\r\n\r\n",
        "G(T /metrics HTTP/1.1\r\n\r\n",
        " GET /metrics HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
        "GET /metrics HTTP/1.1", /* no line end at all */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (t_answer(rt, bad[i], &j) != 400)
            fail_msg("not refused: %s", bad[i]);
    }
    assert_int_equal(t_answer(rt, "GET /metrics HTTP/2.0\r\n\r\n", &j), 505);

    lb_jbuf_free(&j);
    t_rt_free(rt);
}

/* The admin address: POST drain/undrain with the token only; the page has buttons. */
static void test_admin_post(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    struct lb_jbuf j;
    lb_jbuf_init(&j, METRICS_ANSWER_MAX + 4096);
    const struct metrics_admin adm = {.admin = NULL, .token = "s3cret-token-0123456789"};
#define POST(q, hdr) "POST /admin/" q " HTTP/1.1\r\nHost: x\r\n" hdr "\r\n"
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {POST("drain?cluster=app&server=app1", ""), 401},
        {POST("drain?cluster=app&server=app1", "Authorization: Bearer nope\r\n"), 401},
        {POST("drain?cluster=app&server=app1", "Authorization: Bearer s3cret-token-012345678\r\n"),
         401},
        {POST("drain?cluster=app&server=app1", "Authorization: s3cret-token-0123456789\r\n"), 401},
        {POST("drain?cluster=app", "Authorization: Bearer s3cret-token-0123456789\r\n"), 400},
        {POST("drain?cluster=app&server=a%20b",
              "Authorization: Bearer s3cret-token-0123456789\r\n"),
         400},
        {POST("drain?cluster=app&server=zz", "Authorization: Bearer s3cret-token-0123456789\r\n"),
         404},
        {POST("reload", "Authorization: Bearer s3cret-token-0123456789\r\n"), 404},
        {POST("drain?cluster=app&server=app1",
              "authorization:  bearer s3cret-token-0123456789 \r\n"),
         200},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lb_jbuf_reset(&j);
        int st = metrics_answer(rt, NULL, &adm, cases[i].req, strlen(cases[i].req), &j);
        if (st != cases[i].status)
            fail_msg("%s: %d, expected %d", cases[i].req, st, cases[i].status);
        if (i < 8)
            assert_int_equal(atomic_load(&rt->clusters[0].servers[0].flags) & CL_SRV_F_DRAINING, 0);
    }
    assert_int_not_equal(atomic_load(&rt->clusters[0].servers[0].flags) & CL_SRV_F_DRAINING, 0);
    /* The read-only address refuses POST; the admin page has the buttons' switch on. */
    lb_jbuf_reset(&j);
    assert_int_equal(metrics_answer(rt, NULL, NULL, cases[8].req, strlen(cases[8].req), &j), 405);
    lb_jbuf_reset(&j);
    assert_int_equal(metrics_answer(rt, NULL, &adm, "GET / HTTP/1.1\r\n\r\n", 18, &j), 200);
    assert_non_null(strstr(j.p, ",\"admin\":true}"));
    lb_jbuf_reset(&j);
    metrics_page(rt, NULL, false, &j);
    assert_null(strstr(j.p, ",\"admin\":true}"));
#undef POST
    lb_jbuf_free(&j);
    t_rt_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_prometheus_text),
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_admin_post),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
