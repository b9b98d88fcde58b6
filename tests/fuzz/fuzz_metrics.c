/*
 * libFuzzer target for the metrics and admin HTTP endpoint's request path: every input is a
 * request head given to metrics_answer(), on the read-only address (first byte even) or on the
 * admin address with a token (odd), against a small runtime. Every answer must be one whole
 * HTTP/1.1 response whose Content-Length matches its body. Any crash, sanitizer report or
 * malformed answer is a bug. The POST path (Authorization, the query's names, drain and
 * undrain) is reached with inputs such as
 *   "POST /admin/drain?cluster=app&server=app1 HTTP/1.1\r\nAuthorization: Bearer
 * fuzz-token-0123456789\r\n\r\n".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/metrics/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_conf[] = "global: { workers: 1 }\n"
                                "listeners:\n"
                                "  - name: web\n"
                                "    bind: 127.0.0.1:7000\n"
                                "    protocol: http\n"
                                "    routes: [ { cluster: app } ]\n"
                                "clusters:\n"
                                "  app:\n"
                                "    servers:\n"
                                "      - { name: app1, address: 127.0.0.1:9001 }\n"
                                "      - { name: app2, address: 127.0.0.1:9002, backup: true }\n";

static struct lb_runtime *runtime(void)
{
    static struct lb_runtime rt;
    static struct conf_diags d;
    if (rt.conf)
        return &rt;
    lb_log_level = CONF_LOG_ERROR; /* drains and refused tokens log; keep the fuzzer quiet */
    rt.conf = conf_load_buf("fuzz.yaml", fuzz_conf, sizeof(fuzz_conf) - 1, &d);
    if (!rt.conf) {
        conf_diags_print(&d, "fuzz.yaml", stderr);
        abort();
    }
    rt.clusters = calloc(rt.conf->nclusters, sizeof(*rt.clusters));
    rt.lstats = calloc(rt.conf->nlisteners, sizeof(*rt.lstats));
    if (!rt.clusters || !rt.lstats)
        abort();
    for (size_t i = 0; i < rt.conf->nclusters; i++)
        if (cl_cluster_init(&rt.clusters[i], &rt.conf->clusters[i], NULL) < 0 ||
            cl_cluster_stats_init(&rt.clusters[i], (uint32_t)rt.conf->nlisteners) < 0)
            abort();
    return &rt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct metrics_admin adm = {.admin = NULL, .token = "fuzz-token-0123456789"};
    if (size < 1 || size > METRICS_REQ_MAX + 1)
        return 0;
    struct lb_runtime *rt = runtime();
    struct lb_jbuf out;
    lb_jbuf_init(&out, METRICS_ANSWER_MAX + 4096);
    const char *req = (const char *)data + 1;
    int st = metrics_answer(rt, NULL, data[0] & 1 ? &adm : NULL, req, size - 1, &out);
    if (out.overflow || st < 200 || st > 599 || out.len < 17 || memcmp(out.p, "HTTP/1.1 ", 9))
        abort();
    const char *end = memmem(out.p, out.len, "\r\n\r\n", 4);
    const char *cl = memmem(out.p, out.len, "\r\nContent-Length: ", 18);
    if (!end || !cl || cl > end)
        abort();
    size_t body = out.len - (size_t)(end + 4 - out.p);
    bool head = size >= 6 && !memcmp(req, "HEAD ", 5);
    if (!head && strtoul(cl + 18, NULL, 10) != body)
        abort();
    lb_jbuf_free(&out);
    return 0;
}
