/*
 * libFuzzer target for the admin socket's command path: every input line goes through
 * admin_parse(); lines that parse are run by admin_exec() against a small runtime,
 * and every answer must be a JSON object that lbctl's reader (tools/ctl_json.c, included
 * here because lbctl is not part of the lb library) accepts. The whole input is also fed
 * to that reader as JSON. Any crash, sanitizer report or unreadable answer is a bug.
 * Manual runs can add -dict=tests/fuzz/fuzz_admin.dict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "tools/ctl_json.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_conf[] =
    "global: { workers: 1 }\n"
    "listeners:\n"
    "  - { name: t, bind: 127.0.0.1:7000, protocol: tcp, cluster: app }\n"
    "clusters:\n"
    "  app:\n"
    "    servers:\n"
    "      - { name: app1, address: 127.0.0.1:9001, weight: 3 }\n"
    "      - { name: app2, address: 127.0.0.1:9002 }\n"
    "      - { name: spare, address: 127.0.0.1:9003, backup: true }\n"
    "  kv:\n"
    "    balance: maglev\n"
    "    servers: [ { name: kv1, address: 127.0.0.1:9004 } ]\n";

static struct lb_runtime *runtime(void)
{
    static struct lb_runtime rt;
    static struct conf_diags d;
    if (rt.conf)
        return &rt;
    lb_log_level = CONF_LOG_ERROR; /* drains log at info; keep the fuzzer quiet */
    rt.conf = conf_load_buf("fuzz.yaml", fuzz_conf, sizeof(fuzz_conf) - 1, &d);
    if (!rt.conf) {
        conf_diags_print(&d, "fuzz.yaml", stderr);
        abort();
    }
    rt.clusters = calloc(rt.conf->nclusters, sizeof(*rt.clusters));
    for (size_t i = 0; i < rt.conf->nclusters; i++)
        if (!rt.clusters || cl_cluster_init(&rt.clusters[i], &rt.conf->clusters[i], NULL) < 0)
            abort();
    return &rt;
}

static void check_answer(const struct lb_jbuf *j)
{
    if (j->overflow)
        abort();
    struct ctl_json *v = ctl_json_parse(j->p, j->len, NULL, 0);
    if (!v || v->type != CTL_JSON_OBJ || !ctl_json_get(v, "ok"))
        abort(); /* lb wrote something lbctl cannot read */
    ctl_json_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lb_runtime *rt = runtime();
    const char *s = (const char *)data;
    struct lb_jbuf j;

    lb_jbuf_init(&j, ADMIN_ANSWER_MAX);
    for (size_t pos = 0; pos <= size;) {
        const char *nl = memchr(s + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (s + pos)) : size - pos;
        struct admin_cmd cmd;
        struct lb_err err = {{0}};
        lb_jbuf_reset(&j);
        if (admin_parse(s + pos, len, &cmd, &err) < 0) {
            if (!err.msg[0])
                abort(); /* every refusal says why */
            admin_error(&j, err.msg);
        } else {
            admin_exec(rt, NULL, &cmd, &j);
        }
        check_answer(&j);
        pos += len + 1;
    }
    lb_jbuf_free(&j);

    struct ctl_json *v = ctl_json_parse(s, size, NULL, 0);
    ctl_json_free(v);
    return 0;
}
