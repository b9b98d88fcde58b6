/*
 * Snapshot store (static/): a temp directory loaded into a set, then every answer checked
 * byte for byte: prebuilt headers, ETag stability, path normalisation and escapes,
 * conditional requests, ranges, HEAD, 405, gzip negotiation, load failures, and a set
 * outliving its replacement while a reference holds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "static/snap.h"

#define T_MTIME 1700000000 /* Tue, 14 Nov 2023 22:13:20 GMT */
#define T_DATE "Tue, 14 Nov 2023 22:13:20 GMT"

static const char t_a_json[] = "{\"a\":1,\"list\":[1,2,3,4,5,6,7,8,9]}";
static const char t_gz[] = "\x1f\x8b\x08\x00 pretend-gzip-bytes";

struct t_env {
    char dir[256];
    struct conf_static cf;
    struct snap_set *set;
    char pbuf[SNAP_PATH_MAX];
    char hbuf[SNAP_HDR_MAX];
};

static void t_write(const char *dir, const char *rel, const void *data, size_t len, time_t mtime)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    /* create parent directories */
    for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    struct timespec ts[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void t_writes(const char *dir, const char *rel, const char *s)
{
    t_write(dir, rel, s, strlen(s), T_MTIME);
}

static void t_rm_rf(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void t_conf(struct t_env *t)
{
    t->cf = (struct conf_static){
        .name = "catalog",
        .dir = t->dir,
        .fallback_idx = -1,
        .max_age_ms = 60000,
        .max_file_bytes = 1 << 20,
    };
}

static int t_setup(void **state)
{
    struct t_env *t = calloc(1, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/test_snap.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    t_write(t->dir, "a.json", t_a_json, sizeof(t_a_json) - 1, T_MTIME);
    t_writes(t->dir, "b.json", "[\"b\"]");
    t_writes(t->dir, "page.html", "<p>page</p>");
    t_writes(t->dir, "index.html", "<p>root</p>");
    t_writes(t->dir, "x.json", "{\"x\":\"identity\"}");
    t_write(t->dir, "x.json.gz", t_gz, sizeof(t_gz) - 1, T_MTIME);
    t_writes(t->dir, "lone.gz", "\x1f\x8b lone");
    t_writes(t->dir, "sub/index.html", "<p>sub</p>");
    t_writes(t->dir, "sub/deep/c.txt", "deep text");
    t_writes(t->dir, "odd dir:%/index.html", "<p>odd</p>");
    t_writes(t->dir, "style.CSS", "p{}");
    t_writes(t->dir, "app.js", "1;");
    t_writes(t->dir, "logo.svg", "<svg/>");
    t_writes(t->dir, "logo.png", "\x89PNG");
    t_writes(t->dir, "data.bin", "bin");
    t_writes(t->dir, "100%.json", "{}");
    t_writes(t->dir, "sp ace.json", "{}");
    t_writes(t->dir, "%2e", "literal percent-2e");
    t_writes(t->dir, ".hidden.json", "{\"secret\":1}");
    t_writes(t->dir, ".tmp/inside.json", "{}");
    t_writes(t->dir, "empty.txt", "");
    char link[PATH_MAX];
    snprintf(link, sizeof(link), "%s/link_out", t->dir);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    snprintf(link, sizeof(link), "%s/link_up.json", t->dir);
    assert_int_equal(symlink("../../etc/hostname", link), 0);
    snprintf(link, sizeof(link), "%s/link_in.json", t->dir);
    assert_int_equal(symlink("a.json", link), 0);
    snprintf(link, sizeof(link), "%s/link_dir", t->dir);
    assert_int_equal(symlink("sub", link), 0);
    snprintf(link, sizeof(link), "%s/dangling.json", t->dir);
    assert_int_equal(symlink("nowhere.json", link), 0);

    t_conf(t);
    struct lb_err err = {{0}};
    int rc = snap_set_load(&t->cf, &t->set, &err);
    if (rc != 0)
        fail_msg("load: %d %s", rc, err.msg);
    *state = t;
    return 0;
}

static int t_teardown(void **state)
{
    struct t_env *t = *state;
    snap_set_unref(t->set);
    t_rm_rf(t->dir);
    free(t);
    return 0;
}

static int t_lookup(struct t_env *t, const char *path, const struct snap_entry **e)
{
    return snap_lookup(t->set, path, strlen(path), t->pbuf, sizeof(t->pbuf), e);
}

static const struct snap_entry *t_get(struct t_env *t, const char *path)
{
    const struct snap_entry *e = NULL;
    int rc = t_lookup(t, path, &e);
    if (rc != 0)
        fail_msg("lookup %s: %d", path, rc);
    return e;
}

static struct snap_span t_span(const char *s)
{
    return (struct snap_span){.p = s, .len = s ? strlen(s) : 0};
}

/* Evaluates a request with optional header values (NULL: absent). */
static struct snap_resp t_eval(struct t_env *t, const struct snap_entry *e, enum snap_method m,
                               const char *inm, const char *ims, const char *range,
                               const char *if_range, const char *ae)
{
    struct snap_req req = {
        .method = m,
        .if_none_match = t_span(inm),
        .if_modified_since = t_span(ims),
        .range = t_span(range),
        .if_range = t_span(if_range),
        .accept_encoding = t_span(ae),
    };
    struct snap_resp r;
    assert_int_equal(snap_eval(e, &req, t->hbuf, sizeof(t->hbuf), &r), 0);
    return r;
}

static struct snap_resp t_get_simple(struct t_env *t, const char *path)
{
    return t_eval(t, t_get(t, path), SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);
}

/* The response header section as a C string (static buffer). */
static const char *t_hdr(const struct snap_resp *r)
{
    static char buf[2048];
    assert_true(r->hdr_len < sizeof(buf));
    memcpy(buf, r->hdr, r->hdr_len);
    buf[r->hdr_len] = '\0';
    return buf;
}

/* The quoted ETag of a response, from its header. */
static void t_etag(const struct snap_resp *r, char out[32])
{
    const char *h = t_hdr(r);
    const char *p = strstr(h, "ETag: ");
    assert_non_null(p);
    p += 6;
    size_t n = strcspn(p, "\r");
    assert_true(n < 32);
    memcpy(out, p, n);
    out[n] = '\0';
}

static void t_expect_etag(const char *content, size_t len, char out[32])
{
    snprintf(out, 32, "\"%016llx\"", (unsigned long long)snap_hash64(content, len));
}

/* ---- loading ---- */

static void test_load_stats(void **state)
{
    struct t_env *t = *state;
    struct snap_stats st;
    snap_set_stats(t->set, &st);
    /* a b page index x lone sub/index sub/deep/c style app logo.svg logo.png data 100% sp %2e
       empty link_in, odd dir/index */
    assert_int_equal(st.files, 19);
    assert_int_equal(st.gzip, 1);
    /* link_out, link_up (outside), link_dir (a directory), dangling */
    assert_int_equal(st.skipped, 4);
    assert_true(st.body_bytes > sizeof(t_a_json));
    assert_true(st.memory_bytes > st.body_bytes);
    assert_string_equal(snap_set_name(t->set), "catalog");
}

static void test_headers_exact(void **state)
{
    struct t_env *t = *state;
    struct snap_resp r = t_get_simple(t, "/a.json");
    char etag[32], want[1024];
    t_expect_etag(t_a_json, sizeof(t_a_json) - 1, etag);
    snprintf(want, sizeof(want),
             "HTTP/1.1 200 OK\r\n"
             "Content-Length: %zu\r\n"
             "Content-Type: application/json\r\n"
             "ETag: %s\r\n"
             "Last-Modified: " T_DATE "\r\n"
             "Cache-Control: max-age=60\r\n"
             "Accept-Ranges: bytes\r\n"
             "\r\n",
             sizeof(t_a_json) - 1, etag);
    assert_int_equal(r.status, 200);
    assert_string_equal(t_hdr(&r), want);
    assert_int_equal(r.body_len, sizeof(t_a_json) - 1);
    assert_memory_equal(r.body, t_a_json, r.body_len);
    assert_true(r.contiguous);
    assert_ptr_equal(r.hdr + r.hdr_len, r.body);
}

static void test_content_types(void **state)
{
    struct t_env *t = *state;
    static const struct {
        const char *path, *type;
    } cases[] = {
        {"page.html", "text/html; charset=utf-8"},
        {"style.CSS", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"logo.svg", "image/svg+xml"},
        {"logo.png", "image/png"},
        {"sub/deep/c.txt", "text/plain; charset=utf-8"},
        {"data.bin", "application/octet-stream"},
        {"lone.gz", "application/octet-stream"},
        {"b.json", "application/json"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct snap_resp r = t_get_simple(t, cases[i].path);
        char want[128];
        snprintf(want, sizeof(want), "\r\nContent-Type: %s\r\n", cases[i].type);
        if (!strstr(t_hdr(&r), want))
            fail_msg("%s: no %s in %s", cases[i].path, cases[i].type, t_hdr(&r));
        assert_null(strstr(t_hdr(&r), "Vary"));
    }
    struct snap_resp r = t_get_simple(t, "empty.txt");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_non_null(strstr(t_hdr(&r), "Content-Length: 0\r\n"));
}

static void test_etag_stability(void **state)
{
    struct t_env *t = *state;
    char e1[32], e2[32], e3[32];
    t_etag((struct snap_resp[]){t_get_simple(t, "a.json")}, e1);

    /* a new mtime, same bytes: same ETag (instances behind one name must agree) */
    t_write(t->dir, "a.json", t_a_json, sizeof(t_a_json) - 1, T_MTIME + 100);
    struct snap_set *s2;
    assert_int_equal(snap_set_load(&t->cf, &s2, NULL), 0);
    const struct snap_entry *e;
    assert_int_equal(snap_lookup(s2, "a.json", 6, t->pbuf, sizeof(t->pbuf), &e), 0);
    struct snap_resp r = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);
    t_etag(&r, e2);
    assert_string_equal(e1, e2);
    assert_non_null(strstr(t_hdr(&r), "Last-Modified: Tue, 14 Nov 2023 22:15:00 GMT\r\n"));
    snap_set_unref(s2);

    /* one byte changed: another ETag */
    t_writes(t->dir, "a.json", "{\"a\":2,\"list\":[1,2,3,4,5,6,7,8,9]}");
    assert_int_equal(snap_set_load(&t->cf, &s2, NULL), 0);
    assert_int_equal(snap_lookup(s2, "a.json", 6, t->pbuf, sizeof(t->pbuf), &e), 0);
    r = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);
    t_etag(&r, e3);
    assert_string_not_equal(e1, e3);
    snap_set_unref(s2);

    /* the hash is a fixed function: pin one value so a change to it is noticed */
    assert_int_equal(snap_hash64("", 0), snap_hash64("", 0));
    assert_true(snap_hash64("a", 1) != snap_hash64("b", 1));
    assert_true(snap_hash64("abcdefgh", 8) != snap_hash64("abcdefgh\0", 9));
}

/* ---- paths ---- */

static void test_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;          /* < 0: expected error */
        const char *out; /* when rc >= 0 */
    } cases[] = {
        {"", 0, ""},
        {"/", 0, ""},
        {"a.json", 0, "a.json"},
        {"/a.json", 0, "a.json"},
        {"//a.json", 0, "a.json"},
        {"/a/../b.json", 0, "b.json"},
        {"/a/./b.json", 0, "a/b.json"},
        {"/a/b/..", 0, "a/"},
        {"/a/b/.", 0, "a/b/"},
        {"/a/b/../", 0, "a/"},
        {"/a/..", 0, ""},
        {"/sub/", 0, "sub/"},
        {"/sub", 0, "sub"},
        {"/a..b/...", 0, "a..b/..."},
        {"/%61.json", 0, "a.json"},
        {"/%2e%2E/etc/passwd", -EINVAL, NULL},
        {"/../etc/passwd", -EINVAL, NULL},
        {"..", -EINVAL, NULL},
        {"/a/../../b", -EINVAL, NULL},
        {"/a/%2e%2e/%2e%2e/b", -EINVAL, NULL},
        {"/a%2Fb", -EINVAL, NULL},
        {"/a%2fb", -EINVAL, NULL},
        {"/a%00.json", -EINVAL, NULL},
        {"/a%zz", -EINVAL, NULL},
        {"/a%4", -EINVAL, NULL},
        {"/a%", -EINVAL, NULL},
        {"/%252e%252e/x", 0, "%2e%2e/x"},
        {"/%252F", 0, "%2F"},
        {"/a.json?x=1", 0, "a.json"},
        {"/dir/?x", 0, "dir/"},
        {"/a%3Fb", 0, "a?b"},
        {"/sp%20ace.json", 0, "sp ace.json"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = snap_path_normalize(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        if (cases[i].rc < 0) {
            if (rc != cases[i].rc)
                fail_msg("%s: %d, want %d", cases[i].in, rc, cases[i].rc);
            continue;
        }
        if (rc < 0)
            fail_msg("%s: %d", cases[i].in, rc);
        if ((size_t)rc != strlen(cases[i].out) || memcmp(out, cases[i].out, (size_t)rc) != 0)
            fail_msg("%s: \"%.*s\", want \"%s\"", cases[i].in, rc, out, cases[i].out);
    }
    /* a raw NUL is refused like %00 (the HTTP parser should never let one through) */
    assert_int_equal(snap_path_normalize("/a\0b", 4, out, sizeof(out)), -EINVAL);
    /* the output buffer bounds the result */
    assert_int_equal(snap_path_normalize("/abcdef", 7, out, 3), -ENAMETOOLONG);
    assert_int_equal(snap_path_normalize("/ab/", 4, out, 2), -ENAMETOOLONG);
    assert_int_equal(snap_path_normalize("/ab/", 4, out, 3), 3);
}

static void test_lookup(void **state)
{
    struct t_env *t = *state;
    const struct snap_entry *e, *e2;

    assert_ptr_equal(t_get(t, "/a/../b.json"), t_get(t, "b.json"));
    assert_ptr_equal(t_get(t, "/%61.json"), t_get(t, "a.json"));
    assert_int_equal(t_lookup(t, "/%2e%2e/etc/passwd", &e), -EINVAL);
    assert_int_equal(t_lookup(t, "/sub%2Findex.html", &e), -EINVAL);
    assert_int_equal(t_lookup(t, "/a.json%00", &e), -EINVAL);
    /* decoded once: "%252e" names the file "%2e", never ".." or "." */
    struct snap_resp r = t_get_simple(t, "/%252e");
    assert_memory_equal(r.body, "literal percent-2e", r.body_len);
    assert_int_equal(t_lookup(t, "/%252e%252e/a.json", &e), -ENOENT);
    assert_ptr_equal(t_get(t, "/100%25.json"), t_get(t, "100%25.json"));
    assert_int_equal(t_lookup(t, "/100%.json", &e), -EINVAL);
    t_get(t, "/sp%20ace.json");

    /* not in the set: hidden, variants, links leading out or to directories, missing */
    assert_int_equal(t_lookup(t, "/.hidden.json", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/.tmp/inside.json", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/x.json.gz", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/link_out", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/link_up.json", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/link_dir/index.html", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/dangling.json", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/nope.json", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/A.JSON", &e), -ENOENT);

    /* a link inside the directory is served with the target's bytes */
    r = t_get_simple(t, "/link_in.json");
    assert_memory_equal(r.body, t_a_json, r.body_len);

    /* nested and index files */
    r = t_get_simple(t, "/sub/deep/c.txt");
    assert_memory_equal(r.body, "deep text", r.body_len);
    e = t_get(t, "/sub/");
    e2 = t_get(t, "/sub/index.html");
    assert_ptr_equal(e, e2);
    assert_ptr_equal(t_get(t, "/sub/deep/.."), e2);
    assert_ptr_equal(t_get(t, "/"), t_get(t, "/index.html"));
    assert_ptr_equal(t_get(t, ""), t_get(t, "/index.html"));
    /* a directory without index.html has no entry */
    assert_int_equal(t_lookup(t, "/sub/deep/", &e), -ENOENT);
    assert_int_equal(t_lookup(t, "/sub/deep", &e), -ENOENT);

    /* "/sub" redirects, relatively, so it works under any route prefix */
    r = t_eval(t, t_get(t, "/sub"), SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(r.status, 301);
    assert_string_equal(t_hdr(&r), "HTTP/1.1 301 Moved Permanently\r\nLocation: ./sub/\r\n"
                                   "Cache-Control: max-age=60\r\nContent-Length: 0\r\n\r\n");
    assert_null(r.body);
    /* the Location is percent-encoded: a name cannot inject a header or read as a scheme */
    r = t_eval(t, t_get(t, "/odd%20dir:%25"), SNAP_M_HEAD, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(r.status, 301);
    assert_non_null(strstr(t_hdr(&r), "\r\nLocation: ./odd%20dir:%25/\r\n"));
    t_get(t, "/odd%20dir:%25/");
    r = t_eval(t, t_get(t, "/sub"), SNAP_M_OTHER, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(r.status, 405);

    /* a path too long for the buffer cannot match anything */
    char big[SNAP_PATH_MAX + 10];
    memset(big, 'a', sizeof(big));
    assert_int_equal(snap_lookup(t->set, big, sizeof(big), t->pbuf, sizeof(t->pbuf), &e),
                     -ENAMETOOLONG);
}

/* ---- evaluation ---- */

static void test_not_modified(void **state)
{
    struct t_env *t = *state;
    const struct snap_entry *e = t_get(t, "a.json");
    char etag[32], weak[40], list[96], want[512];
    t_expect_etag(t_a_json, sizeof(t_a_json) - 1, etag);
    snprintf(weak, sizeof(weak), "W/%s", etag);
    snprintf(list, sizeof(list), "\"nope\", W/\"x\",%s", etag);

    snprintf(want, sizeof(want),
             "HTTP/1.1 304 Not Modified\r\nETag: %s\r\nLast-Modified: " T_DATE "\r\n"
             "Cache-Control: max-age=60\r\n\r\n",
             etag);
    struct snap_resp r = t_eval(t, e, SNAP_M_GET, etag, NULL, NULL, NULL, NULL);
    assert_int_equal(r.status, 304);
    assert_string_equal(t_hdr(&r), want);
    assert_null(r.body);
    assert_int_equal(r.body_len, 0);

    assert_int_equal(t_eval(t, e, SNAP_M_GET, weak, NULL, NULL, NULL, NULL).status, 304);
    assert_int_equal(t_eval(t, e, SNAP_M_HEAD, list, NULL, NULL, NULL, NULL).status, 304);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, "*", NULL, NULL, NULL, NULL).status, 304);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, "\"0000\"", NULL, NULL, NULL, NULL).status, 200);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, "garbage", NULL, NULL, NULL, NULL).status, 200);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, "\"unterminated", NULL, NULL, NULL, NULL).status,
                     200);

    /* If-Modified-Since: at or after mtime is 304, before is 200; all three date forms */
    assert_int_equal(t_eval(t, e, SNAP_M_GET, NULL, T_DATE, NULL, NULL, NULL).status, 304);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, NULL, "Wed, 15 Nov 2023 00:00:00 GMT", NULL, NULL, NULL).status,
        304);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, NULL, "Tue, 14 Nov 2023 22:13:19 GMT", NULL, NULL, NULL).status,
        200);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, NULL, "Tuesday, 14-Nov-23 22:13:20 GMT", NULL, NULL, NULL).status,
        304);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, NULL, "Tue Nov 14 22:13:20 2023", NULL, NULL, NULL).status, 304);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, NULL, "Tue Nov 13 22:13:20 2023", NULL, NULL, NULL).status, 200);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, NULL, "Tue, 14 Nov 2023 22:13:20 UTC", NULL, NULL, NULL).status,
        200);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, NULL, "yesterday", NULL, NULL, NULL).status, 200);

    /* If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2) both ways */
    assert_int_equal(t_eval(t, e, SNAP_M_GET, "\"other\"", T_DATE, NULL, NULL, NULL).status, 200);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, etag, "Mon, 01 Jan 2001 00:00:00 GMT", NULL, NULL, NULL).status,
        304);
    /* 304 beats Range */
    assert_int_equal(t_eval(t, e, SNAP_M_GET, etag, NULL, "bytes=0-1", NULL, NULL).status, 304);
}

static void test_range(void **state)
{
    struct t_env *t = *state;
    const struct snap_entry *e = t_get(t, "a.json");
    const size_t n = sizeof(t_a_json) - 1;
    char etag[32], want[1024];
    t_expect_etag(t_a_json, n, etag);

    struct snap_resp r = t_eval(t, e, SNAP_M_GET, NULL, NULL, "bytes=2-5", NULL, NULL);
    assert_int_equal(r.status, 206);
    snprintf(want, sizeof(want),
             "HTTP/1.1 206 Partial Content\r\n"
             "Content-Range: bytes 2-5/%zu\r\n"
             "Content-Length: 4\r\n"
             "Content-Type: application/json\r\n"
             "ETag: %s\r\n"
             "Last-Modified: " T_DATE "\r\n"
             "Cache-Control: max-age=60\r\n"
             "Accept-Ranges: bytes\r\n"
             "\r\n",
             n, etag);
    assert_string_equal(t_hdr(&r), want);
    assert_int_equal(r.body_len, 4);
    assert_memory_equal(r.body, t_a_json + 2, 4);
    assert_false(r.contiguous);

    static const struct {
        const char *range;
        int status;
        size_t first, len; /* for 206 */
    } cases[] = {
        {"bytes=0-0", 206, 0, 1},
        {"bytes=0-", 206, 0, 34},
        {"bytes=30-", 206, 30, 4},
        {"bytes=33-33", 206, 33, 1},
        {"bytes=30-1000", 206, 30, 4},
        {"bytes=30-99999999999999999999999", 206, 30, 4},
        {"bytes=-3", 206, 31, 3},
        {"bytes=-34", 206, 0, 34},
        {"bytes=-1000", 206, 0, 34},
        {"BYTES=1-2", 206, 1, 2},
        {"bytes= 1-2 ", 206, 1, 2},
        {"bytes=1-2,", 206, 1, 2},
        {"bytes=34-", 416, 0, 0},
        {"bytes=34-40", 416, 0, 0},
        {"bytes=99999999999999999999999-", 416, 0, 0},
        {"bytes=-0", 416, 0, 0},
        {"bytes=5-2", 200, 0, 0},
        {"bytes=0-1,3-4", 200, 0, 0},
        {"bytes=0-1, -2", 200, 0, 0},
        {"items=0-1", 200, 0, 0},
        {"bytes=", 200, 0, 0},
        {"bytes=-", 200, 0, 0},
        {"bytes=a-b", 200, 0, 0},
        {"bytes=1-2-3", 200, 0, 0},
        {"bytes=+1-2", 200, 0, 0},
        {"bytes 0-1", 200, 0, 0},
    };
    assert_int_equal(n, 34);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r = t_eval(t, e, SNAP_M_GET, NULL, NULL, cases[i].range, NULL, NULL);
        if (r.status != cases[i].status)
            fail_msg("%s: %d, want %d", cases[i].range, r.status, cases[i].status);
        if (r.status == 206) {
            assert_int_equal(r.body_len, cases[i].len);
            struct snap_resp full = t_get_simple(t, "a.json");
            assert_ptr_equal(r.body, full.body + cases[i].first);
        } else if (r.status == 416) {
            assert_string_equal(t_hdr(&r), "HTTP/1.1 416 Range Not Satisfiable\r\n"
                                           "Content-Range: bytes */34\r\n"
                                           "Content-Length: 0\r\n\r\n");
            assert_null(r.body);
        } else {
            assert_int_equal(r.body_len, n);
        }
    }

    /* an empty file: nothing is satisfiable except a suffix, which is the whole (empty) body */
    const struct snap_entry *empty = t_get(t, "empty.txt");
    assert_int_equal(t_eval(t, empty, SNAP_M_GET, NULL, NULL, "bytes=0-", NULL, NULL).status, 416);
    assert_int_equal(t_eval(t, empty, SNAP_M_GET, NULL, NULL, "bytes=-5", NULL, NULL).status, 200);

    /* HEAD ignores Range */
    r = t_eval(t, e, SNAP_M_HEAD, NULL, NULL, "bytes=0-1", NULL, NULL);
    assert_int_equal(r.status, 200);

    /* If-Range: the range applies only while the validator still matches, strongly */
    char weak[40];
    snprintf(weak, sizeof(weak), "W/%s", etag);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, NULL, NULL, "bytes=0-1", etag, NULL).status, 206);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, NULL, NULL, "bytes=0-1", weak, NULL).status, 200);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, NULL, NULL, "bytes=0-1", "\"old\"", NULL).status,
                     200);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, NULL, NULL, "bytes=0-1", T_DATE, NULL).status, 206);
    assert_int_equal(
        t_eval(t, e, SNAP_M_GET, NULL, NULL, "bytes=0-1", "Mon, 13 Nov 2023 22:13:20 GMT", NULL)
            .status,
        200);
}

static void test_head_and_405(void **state)
{
    struct t_env *t = *state;
    const struct snap_entry *e = t_get(t, "a.json");
    struct snap_resp get = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);
    struct snap_resp head = t_eval(t, e, SNAP_M_HEAD, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(head.status, 200);
    assert_ptr_equal(head.hdr, get.hdr); /* same header: Content-Length of the full body */
    assert_int_equal(head.hdr_len, get.hdr_len);
    assert_null(head.body);
    assert_int_equal(head.body_len, 0);
    assert_false(head.contiguous);

    struct snap_resp r = t_eval(t, e, SNAP_M_OTHER, "*", NULL, "bytes=0-1", NULL, "gzip");
    assert_int_equal(r.status, 405);
    assert_string_equal(t_hdr(&r), "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
                                   "Content-Length: 0\r\n\r\n");
    assert_null(r.body);

    char small[16];
    struct snap_req req = {.method = SNAP_M_GET};
    assert_int_equal(snap_eval(e, &req, small, sizeof(small), &r), -ENOSPC);
}

static void test_gzip(void **state)
{
    struct t_env *t = *state;
    const struct snap_entry *e = t_get(t, "x.json");
    const char *id_body = "{\"x\":\"identity\"}";
    char id_etag[32], gz_etag[32], want[1024];
    t_expect_etag(id_body, strlen(id_body), id_etag);
    t_expect_etag(t_gz, sizeof(t_gz) - 1, gz_etag);

    struct snap_resp r = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, "gzip, deflate, br");
    snprintf(want, sizeof(want),
             "HTTP/1.1 200 OK\r\n"
             "Content-Length: %zu\r\n"
             "Content-Type: application/json\r\n"
             "ETag: %s\r\n"
             "Last-Modified: " T_DATE "\r\n"
             "Cache-Control: max-age=60\r\n"
             "Accept-Ranges: bytes\r\n"
             "Content-Encoding: gzip\r\n"
             "Vary: Accept-Encoding\r\n"
             "\r\n",
             sizeof(t_gz) - 1, gz_etag);
    assert_string_equal(t_hdr(&r), want);
    assert_memory_equal(r.body, t_gz, r.body_len);

    snprintf(want, sizeof(want),
             "HTTP/1.1 200 OK\r\n"
             "Content-Length: %zu\r\n"
             "Content-Type: application/json\r\n"
             "ETag: %s\r\n"
             "Last-Modified: " T_DATE "\r\n"
             "Cache-Control: max-age=60\r\n"
             "Accept-Ranges: bytes\r\n"
             "Vary: Accept-Encoding\r\n"
             "\r\n",
             strlen(id_body), id_etag);
    r = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);
    assert_string_equal(t_hdr(&r), want);

    static const struct {
        const char *ae;
        bool gz;
    } cases[] = {
        {"gzip", true},
        {"GZIP", true},
        {"x-gzip", true},
        {"*", true},
        {"br;q=1.0, gzip;q=0.5", true},
        {"gzip;q=1", true},
        {"gzip ; q=0.001", true},
        {"gzip;q=0", false},
        {"gzip;q=0.0", false},
        {"gzip;q=0.000", false},
        {"gzip; Q=0", false},
        {"gzip;q=2", false},
        {"gzip;q=abc", false},
        {"*, gzip;q=0", false},
        {"*;q=0", false},
        {"identity", false},
        {"br, deflate", false},
        {"", false},
        {"gzipx", false},
        {",,, ;;; ,gzip", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, cases[i].ae);
        bool gz = strstr(t_hdr(&r), "Content-Encoding: gzip") != NULL;
        if (gz != cases[i].gz)
            fail_msg("Accept-Encoding: %s: gzip %d, want %d", cases[i].ae, gz, cases[i].gz);
    }

    /* conditionals and ranges apply to the chosen variant */
    assert_int_equal(t_eval(t, e, SNAP_M_GET, gz_etag, NULL, NULL, NULL, "gzip").status, 304);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, id_etag, NULL, NULL, NULL, "gzip").status, 200);
    assert_int_equal(t_eval(t, e, SNAP_M_GET, id_etag, NULL, NULL, NULL, NULL).status, 304);
    r = t_eval(t, e, SNAP_M_GET, gz_etag, NULL, NULL, NULL, "gzip");
    assert_non_null(strstr(t_hdr(&r), "Vary: Accept-Encoding\r\n"));
    r = t_eval(t, e, SNAP_M_GET, NULL, NULL, "bytes=0-1", NULL, "gzip");
    assert_int_equal(r.status, 206);
    assert_memory_equal(r.body, "\x1f\x8b", 2);
    assert_non_null(strstr(t_hdr(&r), "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"));
}

/* ---- failures and lifetime ---- */

static void test_too_big(void **state)
{
    (void)state;
    struct t_env t;
    memset(&t, 0, sizeof(t));
    snprintf(t.dir, sizeof(t.dir), "/tmp/test_snap_big.XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    t_conf(&t);
    t.cf.max_file_bytes = 10;
    t_writes(t.dir, "ok.json", "0123456789");
    t_writes(t.dir, "d/big.json", "0123456789a");

    struct lb_err err = {{0}};
    struct snap_set *s = (struct snap_set *)&t; /* must stay untouched */
    assert_int_equal(snap_set_load(&t.cf, &s, &err), -EFBIG);
    assert_ptr_equal(s, (struct snap_set *)&t);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want),
             "static 'catalog': %s/d/big.json is 11 bytes, over max_file_size (10)", t.dir);
    assert_string_equal(err.msg, want);

    /* a .gz variant that is not gzip data refuses the load too */
    t.cf.max_file_bytes = 100;
    t_writes(t.dir, "ok.json.gz", "not gzip");
    assert_int_equal(snap_set_load(&t.cf, &s, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "ok.json.gz: not gzip data"));

    /* a missing directory */
    t.cf.dir = "/nonexistent/test_snap";
    assert_int_equal(snap_set_load(&t.cf, &s, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/test_snap"));
    t_rm_rf(t.dir);
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct t_env t;
    memset(&t, 0, sizeof(t));
    snprintf(t.dir, sizeof(t.dir), "/tmp/test_snap_deep.XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    t_conf(&t);
    char rel[256] = "";
    for (int i = 0; i < SNAP_MAX_DEPTH; i++)
        strcat(rel, "d/");
    strcat(rel, "f.json");
    t_writes(t.dir, rel, "{}"); /* exactly at the limit: fine */
    struct snap_set *s;
    struct lb_err err = {{0}};
    assert_int_equal(snap_set_load(&t.cf, &s, &err), 0);
    snap_set_unref(s);

    memmove(rel + 2, rel, strlen(rel) + 1);
    memcpy(rel, "e/", 2);
    memcpy(strstr(rel, "f.json"), "d/f.json", 9);
    t_writes(t.dir, rel, "{}");
    assert_int_equal(snap_set_load(&t.cf, &s, &err), -ELOOP);
    assert_non_null(strstr(err.msg, "deeper than"));
    t_rm_rf(t.dir);
}

static void test_refcount_lifetime(void **state)
{
    struct t_env *t = *state;
    struct snap_slot slot;
    snap_slot_init(&slot);
    assert_null(snap_slot_get(&slot));
    uint64_t g0 = snap_slot_gen(&slot);

    struct snap_set *v1;
    t_writes(t->dir, "v.json", "{\"version\":1}");
    assert_int_equal(snap_set_load(&t->cf, &v1, NULL), 0);
    snap_slot_publish(&slot, v1); /* the slot holds v1's only reference */
    assert_true(snap_slot_gen(&slot) != g0);

    /* a worker takes the current set and starts "sending" from it */
    struct snap_set *held = snap_slot_get(&slot);
    assert_ptr_equal(held, v1);
    const struct snap_entry *e;
    assert_int_equal(snap_lookup(held, "v.json", 6, t->pbuf, sizeof(t->pbuf), &e), 0);
    struct snap_resp r = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);

    /* the publisher loads and publishes v2; the slot drops its reference to v1 */
    struct snap_set *v2;
    t_writes(t->dir, "v.json", "{\"version\":2}");
    assert_int_equal(snap_set_load(&t->cf, &v2, NULL), 0);
    uint64_t g1 = snap_slot_gen(&slot);
    snap_slot_publish(&slot, v2);
    assert_true(snap_slot_gen(&slot) != g1);

    /* the worker's bytes are still v1 (ASan would flag a freed buffer here) */
    assert_memory_equal(r.body, "{\"version\":1}", r.body_len);
    assert_memory_equal(r.hdr, "HTTP/1.1 200 OK\r\n", 17);

    /* new requests see v2 */
    struct snap_set *now = snap_slot_get(&slot);
    assert_ptr_equal(now, v2);
    assert_int_equal(snap_lookup(now, "v.json", 6, t->pbuf, sizeof(t->pbuf), &e), 0);
    struct snap_resp r2 = t_eval(t, e, SNAP_M_GET, NULL, NULL, NULL, NULL, NULL);
    assert_memory_equal(r2.body, "{\"version\":2}", r2.body_len);

    /* an extra ref/unref pair keeps it alive; the last unref frees v1 (LeakSanitizer checks
     * the rest) */
    snap_set_unref(snap_set_ref(held));
    assert_memory_equal(r.body, "{\"version\":1}", r.body_len);
    snap_set_unref(held);
    snap_set_unref(now);
    snap_slot_destroy(&slot);
    snap_set_unref(NULL);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/v.json", t->dir);
    unlink(p);
}

/* Workers take the current set, read a body, drop it, while the main thread publishes new
 * sets as fast as it can load them: under ASan a set freed too early shows as a
 * use-after-free, one never freed as a leak. */
struct t_race {
    struct snap_slot *slot;
    atomic_bool stop;
    atomic_ulong reads;
};

static void *t_race_worker(void *arg)
{
    struct t_race *rc = arg;
    char pbuf[SNAP_PATH_MAX], hbuf[SNAP_HDR_MAX];
    while (!atomic_load(&rc->stop)) {
        struct snap_set *s = snap_slot_get(rc->slot);
        const struct snap_entry *e;
        if (snap_lookup(s, "a.json", 6, pbuf, sizeof(pbuf), &e) != 0)
            abort();
        struct snap_req req = {.method = SNAP_M_GET};
        struct snap_resp r;
        if (snap_eval(e, &req, hbuf, sizeof(hbuf), &r) != 0 || r.body_len != sizeof(t_a_json) - 1 ||
            memcmp(r.body, t_a_json, r.body_len) != 0)
            abort();
        snap_set_unref(s);
        atomic_fetch_add(&rc->reads, 1);
    }
    return NULL;
}

static void test_publish_race(void **state)
{
    struct t_env *t = *state;
    struct snap_slot slot;
    snap_slot_init(&slot);
    struct snap_set *s;
    assert_int_equal(snap_set_load(&t->cf, &s, NULL), 0);
    snap_slot_publish(&slot, s);

    struct t_race rc = {.slot = &slot};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, t_race_worker, &rc), 0);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(snap_set_load(&t->cf, &s, NULL), 0);
        snap_slot_publish(&slot, s);
    }
    atomic_store(&rc.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    print_message("publish race: 31 sets published, %lu reads\n", atomic_load(&rc.reads));
    snap_slot_destroy(&slot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_stats, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_headers_exact, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_content_types, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_etag_stability, t_setup, t_teardown),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test_setup_teardown(test_lookup, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_not_modified, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_range, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_head_and_405, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_gzip, t_setup, t_teardown),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test_setup_teardown(test_refcount_lifetime, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_publish_race, t_setup, t_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
