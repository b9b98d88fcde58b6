/*
 * Admin commands (lb/admin/cmd.c): the line parser accepts what lbctl sends and refuses the
 * rest with a reason; answers are JSON that lbctl's reader (tools/ctl_json.c, included: lbctl
 * is not in the lb library) reads back; drain and weight change what picks do at once; the
 * state file round-trips and skips servers that no longer exist. Last, the admin socket and
 * the metrics endpoint served by the control loop (lb/core/control.c) over real sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/control.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "tools/ctl_json.c"

static const char t_conf[] = "global: { workers: 1 }\n"
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
                             "    servers: [ { name: kv1, address: 127.0.0.1:9004 },\n"
                             "               { name: kv2, address: 127.0.0.1:9005 } ]\n";

struct t_rt {
    struct lb_runtime rt;
    struct conf_diags d;
};

static struct lb_runtime *t_rt_new_from(const char *yaml, size_t len)
{
    struct t_rt *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->rt.conf = conf_load_buf("t.yaml", yaml, len, &t->d);
    if (!t->rt.conf)
        conf_diags_print(&t->d, "t.yaml", stderr);
    assert_non_null(t->rt.conf);
    t->rt.clusters = calloc(t->rt.conf->nclusters, sizeof(*t->rt.clusters));
    assert_non_null(t->rt.clusters);
    for (size_t i = 0; i < t->rt.conf->nclusters; i++)
        assert_int_equal(cl_cluster_init(&t->rt.clusters[i], &t->rt.conf->clusters[i], NULL), 0);
    t->rt.nclusters_built = t->rt.conf->nclusters;
    return &t->rt;
}

static struct lb_runtime *t_rt_new(void)
{
    return t_rt_new_from(t_conf, sizeof(t_conf) - 1);
}

static void t_rt_free(struct lb_runtime *rt)
{
    for (size_t i = 0; i < rt->conf->nclusters; i++)
        cl_cluster_destroy(&rt->clusters[i]);
    free(rt->clusters);
    conf_free(rt->conf);
    free((struct t_rt *)rt); /* rt is the first member */
}

static int t_parse(const char *line, struct admin_cmd *cmd, struct lb_err *err)
{
    memset(err, 0, sizeof(*err));
    return admin_parse(line, strlen(line), cmd, err);
}

/* Runs @line, checks the answer parses as a JSON object; returns it and the result bits. */
static struct ctl_json *t_exec(struct lb_runtime *rt, const char *line, int *bits)
{
    struct admin_cmd cmd;
    struct lb_err err;
    struct lb_jbuf j;
    char jerr[128];

    assert_int_equal(t_parse(line, &cmd, &err), 0);
    lb_jbuf_init(&j, ADMIN_ANSWER_MAX);
    *bits = admin_exec(rt, NULL, &cmd, &j);
    assert_false(j.overflow);
    struct ctl_json *v = ctl_json_parse(j.p, j.len, jerr, sizeof(jerr));
    if (!v)
        fprintf(stderr, "bad JSON (%s): %s\n", jerr, j.p);
    assert_non_null(v);
    assert_int_equal(v->type, CTL_JSON_OBJ);
    lb_jbuf_free(&j);
    return v;
}

static void test_parse_explain(void **state)
{
    (void)state;
    struct admin_cmd c;
    struct lb_err e;
    const char *line = "explain GET http://api.test:8080/x?y=1 X-User: alice  smith Cookie: a=b";
    assert_int_equal(admin_parse(line, strlen(line), &c, &e), 0);
    assert_int_equal(c.verb, ADMIN_EXPLAIN);
    const char *want = "GET /x?y=1 HTTP/1.1\r\nX-User: alice smith\r\nCookie: a=b\r\n"
                       "Host: api.test:8080\r\n\r\n";
    assert_int_equal(c.request_len, strlen(want));
    assert_memory_equal(c.request, want, strlen(want));

    line = "explain HEAD /p Host: other";
    assert_int_equal(admin_parse(line, strlen(line), &c, &e), 0);
    want = "HEAD /p HTTP/1.1\r\nHost: other\r\n\r\n";
    assert_int_equal(c.request_len, strlen(want));
    assert_memory_equal(c.request, want, strlen(want));

    static const char *bad[] = {"explain", "explain GET", "explain GET ftp://x/",
                                "explain GET /p notaname"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(admin_parse(bad[i], strlen(bad[i]), &c, &e), -EINVAL);
}

static void test_parse_ok(void **state)
{
    struct admin_cmd c;
    struct lb_err e;

    assert_int_equal(t_parse("status", &c, &e), 0);
    assert_int_equal(c.verb, ADMIN_STATUS);
    assert_int_equal(t_parse("  status \r", &c, &e), 0); /* CRLF and stray blanks */
    assert_int_equal(t_parse("drain app app1", &c, &e), 0);
    assert_int_equal(c.verb, ADMIN_DRAIN);
    assert_string_equal(c.cluster, "app");
    assert_string_equal(c.server, "app1");
    assert_int_equal(t_parse("undrain\tapp \t a-b_c.9", &c, &e), 0);
    assert_int_equal(c.verb, ADMIN_UNDRAIN);
    assert_string_equal(c.server, "a-b_c.9");
    assert_int_equal(t_parse("weight app app2 256", &c, &e), 0);
    assert_int_equal(c.verb, ADMIN_WEIGHT);
    assert_int_equal(c.weight, 256);
    assert_int_equal(t_parse("weight app app2 1", &c, &e), 0);
    assert_int_equal(c.weight, 1);
    assert_int_equal(t_parse("reload", &c, &e), 0);
    assert_int_equal(c.verb, ADMIN_RELOAD);
    assert_int_equal(t_parse("snapshots reload", &c, &e), 0);
    assert_int_equal(c.verb, ADMIN_SNAPSHOTS_RELOAD);
    assert_string_equal(c.set, "");
    assert_int_equal(t_parse("snapshots reload catalog", &c, &e), 0);
    assert_string_equal(c.set, "catalog");

    char name[CONF_NAME_MAX + 32];
    memset(name, 'a', CONF_NAME_MAX - 1);
    name[CONF_NAME_MAX - 1] = '\0';
    char line[256];
    snprintf(line, sizeof(line), "drain app %s", name); /* the longest legal name */
    assert_int_equal(t_parse(line, &c, &e), 0);
}

static void test_parse_errors(void **state)
{
    static const char *bad[] = {
        "",
        "   ",
        "\r",
        "stat",
        "STATUS",
        "status now",
        "drain",
        "drain app",
        "drain app app1 app2",
        "undrain app",
        "weight app app1",
        "weight app app1 0",
        "weight app app1 257",
        "weight app app1 -1",
        "weight app app1 +5",
        "weight app app1 0256",
        "weight app app1 1.5",
        "weight app app1 x",
        "drain -app app1",
        "drain app _x",
        "drain app a/b",
        "drain app a\"b",
        "reload now",
        "snapshots",
        "snapshots load",
        "snapshots reload a b",
        "snapshots reload .x",
        "a b c d e f g",
    };
    struct admin_cmd c;
    struct lb_err e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (t_parse(bad[i], &c, &e) != -EINVAL)
            fail_msg("accepted: '%s'", bad[i]);
        if (!e.msg[0])
            fail_msg("no reason for '%s'", bad[i]);
    }
    /* A name one byte too long. */
    char line[256] = "drain app ";
    memset(line + strlen(line), 'a', CONF_NAME_MAX);
    assert_int_equal(t_parse(line, &c, &e), -EINVAL);
    /* Bytes that are not printable ASCII, including a NUL inside the line. */
    assert_int_equal(admin_parse("status\0x", 8, &c, &e), -EINVAL);
    assert_int_equal(t_parse("drain app \xc3\xa9", &c, &e), -EINVAL);
    assert_int_equal(t_parse("status\n", &c, &e), -EINVAL);
}

static void test_json_writer(void **state)
{
    struct lb_jbuf j;
    char raw[256];
    for (int i = 0; i < 256; i++)
        raw[i] = (char)i;

    lb_jbuf_init(&j, 1 << 20);
    lb_jbuf_str(&j, raw, sizeof(raw));
    struct ctl_json *v = ctl_json_parse(j.p, j.len, NULL, 0);
    assert_non_null(v);
    assert_int_equal(v->type, CTL_JSON_STR);
    /* Every ASCII byte but NUL comes back as itself (NUL ends the C string); the rest are
     * U+FFFD. */
    assert_int_equal((unsigned char)v->str[0], 0);
    ctl_json_free(v);
    lb_jbuf_reset(&j);
    lb_jbuf_str(&j, raw + 1, 127);
    v = ctl_json_parse(j.p, j.len, NULL, 0);
    assert_non_null(v);
    assert_memory_equal(v->str, raw + 1, 127);
    ctl_json_free(v);
    lb_jbuf_free(&j);

    /* The cap holds, and says so. */
    lb_jbuf_init(&j, 16);
    lb_jbuf_printf(&j, "%s", "0123456789");
    assert_false(j.overflow);
    lb_jbuf_printf(&j, "%s", "0123456789");
    assert_true(j.overflow);
    assert_true(j.len <= 16);
    lb_jbuf_free(&j);
}

static void test_status(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    int bits;

    atomic_store(&rt->clusters[0].servers[1].active, 7);
    atomic_store(&rt->clusters[0].servers[1].bytes_in, 12345);
    atomic_store(&rt->clusters[0].servers[0].flags, CL_SRV_F_DOWN);
    struct ctl_json *v = t_exec(rt, "status", &bits);
    assert_int_equal(bits, 0);
    assert_true(ctl_json_bool(v, "ok", false));
    const struct ctl_json *cls = ctl_json_get(v, "clusters");
    assert_non_null(cls);
    const struct ctl_json *app = cls->child, *kv = app->next;
    assert_string_equal(ctl_json_str(app, "name", ""), "app");
    assert_string_equal(ctl_json_str(kv, "balance", ""), "maglev");
    const struct ctl_json *s1 = ctl_json_get(app, "servers")->child;
    const struct ctl_json *s2 = s1->next, *s3 = s2->next;
    assert_string_equal(ctl_json_str(s1, "state", ""), "down");
    assert_string_equal(ctl_json_str(s1, "address", ""), "127.0.0.1:9001");
    assert_true(ctl_json_num(s1, "config_weight", 0) == 3);
    assert_true(ctl_json_num(s1, "weight", 0) == 3);
    assert_string_equal(ctl_json_str(s2, "state", ""), "up");
    assert_true(ctl_json_num(s2, "active", 0) == 7);
    assert_true(ctl_json_num(s2, "bytes_in", 0) == 12345);
    assert_string_equal(ctl_json_str(s3, "state", ""), "backup");
    assert_true(ctl_json_bool(s3, "backup", false));
    assert_null(s3->next);
    ctl_json_free(v);

    /* Rates come from the caller (the admin socket's samples): one per server. */
    double r0[3] = {1.5, 2.5, 0}, r1[2] = {4, 0};
    const double *rates[2] = {r0, r1};
    struct admin_cmd cmd = {.verb = ADMIN_STATUS};
    struct lb_jbuf j;
    lb_jbuf_init(&j, 1 << 20);
    admin_exec(rt, rates, &cmd, &j);
    v = ctl_json_parse(j.p, j.len, NULL, 0);
    assert_non_null(v);
    s2 = ctl_json_get(ctl_json_get(v, "clusters")->child, "servers")->child->next;
    assert_true(ctl_json_num(s2, "rate", 0) == 2.5);
    ctl_json_free(v);
    lb_jbuf_free(&j);
    t_rt_free(rt);
}

static void test_drain(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    struct cl_cluster *app = &rt->clusters[0];
    struct cl_cluster_wstate ws;
    int bits;

    assert_int_equal(cl_cluster_wstate_init(&ws, app, 1), 0);
    struct ctl_json *v = t_exec(rt, "drain app app1", &bits);
    assert_int_equal(bits, ADMIN_R_CHANGED);
    assert_true(ctl_json_bool(v, "ok", false));
    assert_string_equal(ctl_json_str(v, "state", ""), "draining");
    ctl_json_free(v);
    assert_false(cl_server_usable(app, &app->servers[0]));
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cl_cluster_pick(app, &ws, (uint64_t)i, NULL), 1);

    v = t_exec(rt, "drain app app1", &bits); /* again: fine, nothing to persist */
    assert_int_equal(bits, 0);
    ctl_json_free(v);

    /* A drain keeps other flags (health owns DOWN), and undrain clears only its own. */
    atomic_fetch_or(&app->servers[0].flags, CL_SRV_F_DOWN);
    v = t_exec(rt, "undrain app app1", &bits);
    assert_int_equal(bits, ADMIN_R_CHANGED);
    assert_string_equal(ctl_json_str(v, "state", ""), "down");
    ctl_json_free(v);
    assert_int_equal(atomic_load(&app->servers[0].flags), CL_SRV_F_DOWN);
    atomic_store(&app->servers[0].flags, 0);

    /* Draining every primary sends traffic to the backup; hash clusters drain too. */
    v = t_exec(rt, "drain app app1", &bits);
    ctl_json_free(v);
    v = t_exec(rt, "drain app app2", &bits);
    ctl_json_free(v);
    assert_int_equal(cl_cluster_pick(app, &ws, 0, NULL), 2);
    cl_cluster_wstate_free(&ws);

    struct cl_cluster_wstate kws;
    assert_int_equal(cl_cluster_wstate_init(&kws, &rt->clusters[1], 1), 0);
    int owner = cl_cluster_pick(&rt->clusters[1], &kws, 42, NULL);
    assert_in_range(owner, 0, 1);
    v = t_exec(rt, owner == 0 ? "drain kv kv1" : "drain kv kv2", &bits);
    ctl_json_free(v);
    /* The key moves to the other server, as if its own were down. */
    assert_int_equal(cl_cluster_pick(&rt->clusters[1], &kws, 42, NULL), 1 - owner);
    cl_cluster_wstate_free(&kws);
    t_rt_free(rt);
}

static void test_weight(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    struct cl_cluster *app = &rt->clusters[0];
    struct cl_cluster_wstate ws;
    int bits, count[3] = {0};

    /* Smooth round robin reads the effective weight on every pick: 1:1 gives exact halves. */
    struct ctl_json *v = t_exec(rt, "weight app app1 1", &bits);
    assert_int_equal(bits, ADMIN_R_CHANGED);
    assert_true(ctl_json_num(v, "previous", 0) == 3);
    assert_true(ctl_json_num(v, "config_weight", 0) == 3);
    assert_null(ctl_json_get(v, "note"));
    ctl_json_free(v);
    assert_int_equal(cl_cluster_wstate_init(&ws, app, 0), 0);
    for (int i = 0; i < 200; i++)
        count[cl_cluster_pick(app, &ws, 0, NULL)]++;
    assert_int_equal(count[0], 100);
    assert_int_equal(count[1], 100);

    v = t_exec(rt, "weight app app2 3", &bits);
    ctl_json_free(v);
    count[0] = count[1] = 0;
    for (int i = 0; i < 400; i++)
        count[cl_cluster_pick(app, &ws, 0, NULL)]++;
    /* The first picks after the change settle the old round; then exactly 1:3. */
    assert_in_range(count[0], 95, 105);
    assert_in_range(count[1], 295, 305);
    cl_cluster_wstate_free(&ws);

    /* The same weight again changes nothing to persist. */
    v = t_exec(rt, "weight app app2 3", &bits);
    assert_int_equal(bits, 0);
    ctl_json_free(v);

    /* A hash cluster's table is rebuilt with the operator weight: kv1 at 9 against kv2 at 1
     * owns about 90% of the keys instead of about half. */
    struct cl_cluster *kv = &rt->clusters[1];
    struct cl_cluster_wstate kws;
    assert_int_equal(cl_cluster_wstate_init(&kws, kv, 1), 0);
    int before = 0, after = 0;
    for (uint64_t k = 0; k < 10000; k++)
        before += cl_cluster_pick(kv, &kws, lb_hash64(&k, sizeof(k), 0), NULL) == 0;
    v = t_exec(rt, "weight kv kv1 9", &bits);
    assert_null(ctl_json_get(v, "note"));
    ctl_json_free(v);
    for (uint64_t k = 0; k < 10000; k++)
        after += cl_cluster_pick(kv, &kws, lb_hash64(&k, sizeof(k), 0), NULL) == 0;
    cl_cluster_wstate_free(&kws);
    assert_in_range(before, 4000, 6000);
    assert_in_range(after, 8500, 9500);
    t_rt_free(rt);
}

static void test_unknown_names_and_stubs(void **state)
{
    struct lb_runtime *rt = t_rt_new();
    int bits;

    struct ctl_json *v = t_exec(rt, "drain app nope", &bits);
    assert_int_equal(bits, ADMIN_R_ERROR);
    assert_false(ctl_json_bool(v, "ok", true));
    const struct ctl_json *names = ctl_json_get(v, "servers");
    assert_non_null(names);
    assert_string_equal(names->child->str, "app1");
    assert_string_equal(names->child->next->next->str, "spare");
    ctl_json_free(v);

    v = t_exec(rt, "weight nope app1 2", &bits);
    assert_int_equal(bits, ADMIN_R_ERROR);
    names = ctl_json_get(v, "clusters");
    assert_non_null(names);
    assert_string_equal(names->child->str, "app");
    assert_string_equal(names->child->next->str, "kv");
    ctl_json_free(v);

    /* This runtime's config came from memory ("t.yaml" is not on disk): the reload is
     * checked first and refused with the loader's errors, and nothing is signalled. */
    v = t_exec(rt, "reload", &bits);
    assert_int_equal(bits, ADMIN_R_ERROR);
    assert_non_null(strstr(ctl_json_str(v, "error", ""), "the running one stays"));
    assert_non_null(ctl_json_get(v, "errors"));
    ctl_json_free(v);
    /* This runtime has no snapshot sets: an unknown set is an error naming the sets. */
    v = t_exec(rt, "snapshots reload catalog", &bits);
    assert_int_equal(bits, ADMIN_R_ERROR);
    assert_non_null(strstr(ctl_json_str(v, "error", ""), "no snapshot set named catalog"));
    ctl_json_free(v);
    v = t_exec(rt, "snapshots reload", &bits);
    assert_int_equal(bits, 0);
    ctl_json_free(v);
    t_rt_free(rt);
}

static void test_state_file(void **state)
{
    char dir[] = "/tmp/lb-test-admin.XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lb.sock.state", dir);
    struct lb_runtime *rt = t_rt_new();
    struct lb_err err = {{0}};
    int bits;

    assert_int_equal(admin_state_load(rt, path, &err), 0); /* no file yet */
    struct ctl_json *v = t_exec(rt, "drain app app2", &bits);
    ctl_json_free(v);
    v = t_exec(rt, "weight app app1 9", &bits);
    ctl_json_free(v);
    v = t_exec(rt, "drain kv kv1", &bits);
    ctl_json_free(v);
    v = t_exec(rt, "undrain kv kv1", &bits); /* undone: not saved */
    ctl_json_free(v);
    assert_int_equal(admin_state_save(rt, path, &err), 0);
    t_rt_free(rt);

    /* Add entries for servers that are gone, and a line that is not lb's. */
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("drain app gone\nweight old app1 3\nstatus\ngarbage \x01\n\n", f);
    fclose(f);

    rt = t_rt_new();
    lb_log_level = CONF_LOG_ERROR; /* the skipped lines warn */
    assert_int_equal(admin_state_load(rt, path, &err), 2);
    lb_log_level = CONF_LOG_INFO;
    assert_int_equal(atomic_load(&rt->clusters[0].servers[1].flags), CL_SRV_F_DRAINING);
    assert_int_equal(atomic_load(&rt->clusters[0].servers[0].weight), 9);
    assert_int_equal(atomic_load(&rt->clusters[0].servers[0].flags), 0);
    assert_int_equal(atomic_load(&rt->clusters[1].servers[0].flags), 0);

    /* Saving is atomic: no temp file is left behind. */
    assert_int_equal(admin_state_save(rt, path, &err), 0);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0);
    t_rt_free(rt);

    /* An unwritable place is an error with a message. */
    snprintf(path, sizeof(path), "%s/no/such/dir/state", dir);
    rt = t_rt_new();
    assert_true(admin_state_save(rt, path, &err) < 0);
    assert_non_null(strstr(err.msg, "state file"));
    t_rt_free(rt);

    snprintf(path, sizeof(path), "%s/lb.sock.state", dir);
    unlink(path);
    rmdir(dir);
}

static void test_json_reader(void **state)
{
    static const char *good[] = {
        "{}",
        "[]",
        " {\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\ud83d\\ude00\"} ",
        "-0.5e+3",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "true",
        "false",
    };
    static const char *bad[] = {
        "",        "{",     "[1,]",      "{\"a\"}", "{\"a\":}", "01",         "1.",       "1e",
        "\"\\x\"", "\"abc", "\"\\u12\"", "nul",     "[1] x",    "{\"a\":1,}", "\"a\nb\"",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct ctl_json *v = ctl_json_parse(good[i], strlen(good[i]), NULL, 0);
        if (!v)
            fail_msg("refused: %s", good[i]);
        ctl_json_free(v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[64];
        struct ctl_json *v = ctl_json_parse(bad[i], strlen(bad[i]), err, sizeof(err));
        if (v)
            fail_msg("accepted: %s", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* Nesting is capped instead of recursing without bound. */
    char deep[1000];
    memset(deep, '[', sizeof(deep));
    assert_null(ctl_json_parse(deep, sizeof(deep), NULL, 0));
    const char *e = "{\"e\":\"\\u00e9\"}";
    struct ctl_json *v = ctl_json_parse(e, strlen(e), NULL, 0);
    assert_string_equal(ctl_json_str(v, "e", ""), "\xc3\xa9");
    ctl_json_free(v);
}

/* ---- the admin socket and the metrics endpoint on the control loop ------------------------ */

static void *t_loop_main(void *arg)
{
    lb_ctl_run(arg);
    return NULL;
}

static int t_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads until @lines newlines or EOF into @buf (NUL-terminated); returns the bytes read. */
static size_t t_read_lines(int fd, char *buf, size_t cap, int lines)
{
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            lines -= buf[len + (size_t)i] == '\n';
        len += (size_t)n;
        if (lines <= 0)
            break;
    }
    buf[len] = '\0';
    return len;
}

/* The server closed: the end, or a reset when it closed with our bytes unread. */
static bool t_closed(int fd)
{
    char ch;
    ssize_t n = recv(fd, &ch, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int t_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_socket_on_control_loop(void **state)
{
    char dir[] = "/tmp/lb-test-admin.XXXXXX", sock[128], yaml[2048], buf[8192];
    assert_non_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/lb.sock", dir);
    int mport = t_free_port();
    int n = snprintf(yaml, sizeof(yaml), "global: { workers: 1, admin: { socket: %s },\n"
                     "          metrics: { listen: 127.0.0.1:%d } }\n%s", sock, mport,
                     strstr(t_conf, "listeners:"));
    struct lb_runtime *rt = t_rt_new_from(yaml, (size_t)n);
    struct lb_err err = {{0}};
    struct lb_ctl *ctl = lb_ctl_new(rt, &err); /* takes @rt */
    if (!ctl)
        fprintf(stderr, "lb_ctl_new: %s\n", err.msg);
    assert_non_null(ctl);
    pthread_t loop;
    assert_int_equal(pthread_create(&loop, NULL, t_loop_main, ctl), 0);

    /* Pipelined commands in one write: one answer line each, in order. */
    int fd = t_connect(sock);
    const char *cmds = "drain app app1\nundrain app app1\nweight app app2 2\n";
    assert_int_equal(send(fd, cmds, strlen(cmds), 0), (ssize_t)strlen(cmds));
    t_read_lines(fd, buf, sizeof(buf), 3);
    char *l2 = strchr(buf, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    assert_non_null(strstr(buf, "\"state\":\"draining\""));
    assert_true(strstr(buf, "\"state\":\"draining\"") < l2);
    assert_non_null(strstr(l2, "\"server\":\"app1\""));
    assert_true(strstr(l2, "\"server\":\"app1\"") < l3);
    assert_non_null(strstr(l3, "\"weight\":2"));

    /* A half-closing client still gets its answer, then the end. */
    assert_int_equal(send(fd, "status\n", 7, 0), 7);
    shutdown(fd, SHUT_WR);
    t_read_lines(fd, buf, sizeof(buf), 1);
    assert_non_null(strstr(buf, "\"clusters\":["));
    assert_true(t_closed(fd));
    close(fd);

    /* A line longer than ADMIN_LINE_MAX: an error answer, then the end. */
    fd = t_connect(sock);
    memset(buf, 'x', ADMIN_LINE_MAX + 100);
    assert_int_equal(send(fd, buf, ADMIN_LINE_MAX + 100, 0), ADMIN_LINE_MAX + 100);
    t_read_lines(fd, buf, sizeof(buf), 1);
    assert_non_null(strstr(buf, "line too long"));
    assert_true(t_closed(fd));
    close(fd);

    /* ADMIN_MAX_CLIENTS idle clients hold every slot; one more is told so. */
    int idle[ADMIN_MAX_CLIENTS];
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
        idle[i] = t_connect(sock);
        assert_int_equal(send(idle[i], "status\n", 7, 0), 7); /* accepted: it answers */
        t_read_lines(idle[i], buf, sizeof(buf), 1);
    }
    fd = t_connect(sock);
    t_read_lines(fd, buf, sizeof(buf), 1);
    assert_non_null(strstr(buf, "too many admin clients"));
    close(fd);
    /* Their slots come back once they leave. */
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
        close(idle[i]);
    bool served = false;
    for (int tries = 0; tries < 100 && !served; tries++) {
        fd = t_connect(sock);
        assert_int_equal(send(fd, "status\n", 7, 0), 7);
        t_read_lines(fd, buf, sizeof(buf), 1);
        served = strstr(buf, "\"clusters\":[") != NULL;
        close(fd);
        if (!served)
            usleep(20000);
    }
    assert_true(served);

    /* The metrics endpoint, on the same loop. */
    int mfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in ma = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(mfd, (struct sockaddr *)&ma, sizeof(ma)), 0);
    const char *get = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(mfd, get, strlen(get), 0), (ssize_t)strlen(get));
    size_t len = 0;
    for (ssize_t r; len + 1 < sizeof(buf) && (r = recv(mfd, buf + len, sizeof(buf) - 1 - len, 0)) > 0;)
        len += (size_t)r;
    buf[len] = '\0';
    assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(buf, "lb_build_info"));
    close(mfd);

    /* A client still connected when the loop stops is cancelled and closed. */
    fd = t_connect(sock);
    atomic_store(&rt->stop, 1);
    assert_int_equal(pthread_join(loop, NULL), 0);
    lb_ctl_free(ctl);
    assert_true(t_closed(fd));
    close(fd);
    assert_int_equal(access(sock, F_OK), -1); /* the socket file is gone */
    snprintf(buf, sizeof(buf), "%s.state", sock);
    unlink(buf);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_explain),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_json_writer),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_weight),
        cmocka_unit_test(test_unknown_names_and_stubs),
        cmocka_unit_test(test_state_file),
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_socket_on_control_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
