/*
 * libFuzzer target for the snapshot store's request side: the path normaliser and lookup,
 * and the Accept-Encoding, If-None-Match, If-Modified-Since, If-Range and Range parsers
 * behind snap_eval().
 *
 * Input: one method byte, then up to six fields separated by '\n': path, If-None-Match,
 * If-Modified-Since, Range, If-Range, Accept-Encoding (a missing field is an absent header).
 * The set comes from a small temp directory built once at start-up.
 *
 * Checked beyond "no crash, no sanitizer report": a normalised path has no leading slash,
 * no empty, "." or ".." segment, and normalising it again (when it holds no '%' or '?' that a
 * second pass would read differently) changes nothing; every response's header ends with
 * the empty line and its body lies inside the entry's full body.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "static/snap.h"

static struct snap_set *fz_set;
static char fz_dir[64];

static void fz_write(const char *rel, const char *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fz_dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len)
        abort();
    fclose(f);
}

static void fz_cleanup(void)
{
    char cmd[128];
    snap_set_unref(fz_set);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_snap_path: could not remove %s\n", fz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(fz_dir, sizeof(fz_dir), "/tmp/fuzz_snap.XXXXXX");
    if (!mkdtemp(fz_dir))
        abort();
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/d", fz_dir);
    mkdir(sub, 0755);
    fz_write("a.json", "{\"a\":[1,2,3,4,5,6,7,8,9,10]}", 28);
    fz_write("a.json.gz", "\x1f\x8b\x08\x00gzip-ish", 12);
    fz_write("index.html", "<p>root</p>", 11);
    fz_write("d/index.html", "<p>d</p>", 8);
    fz_write("d/e.txt", "", 0);
    fz_write("%2e", "x", 1);
    struct conf_static cf = {
        .name = "fuzz",
        .dir = fz_dir,
        .fallback_idx = -1,
        .max_age_ms = 60000,
        .max_file_bytes = 1 << 20,
    };
    struct lb_err err = {{0}};
    if (snap_set_load(&cf, &fz_set, &err) != 0) {
        fprintf(stderr, "fuzz_snap_path: %s\n", err.msg);
        abort();
    }
    atexit(fz_cleanup);
    return 0;
}

static void fz_check_normalised(const char *out, int n)
{
    if (n > 0 && out[0] == '/')
        abort();
    int seg = 0;
    bool pct = false;
    for (int i = 0; i <= n; i++) {
        if (i == n || out[i] == '/') {
            int len = i - seg;
            if (i < n && len == 0)
                abort(); /* empty segment */
            if ((len == 1 && out[seg] == '.') ||
                (len == 2 && out[seg] == '.' && out[seg + 1] == '.'))
                abort();
            seg = i + 1;
        } else if (out[i] == '%' || out[i] == '?') {
            pct = true;
        } else if (out[i] == '\0') {
            abort(); /* %00 must be refused */
        }
    }
    if (!pct) {
        char again[SNAP_PATH_MAX];
        int m = snap_path_normalize(out, (size_t)n, again, sizeof(again));
        if (m != n || memcmp(again, out, (size_t)n) != 0)
            abort();
    }
}

static void fz_check_resp(const struct snap_entry *e, const struct snap_resp *r)
{
    if (r->hdr_len < 4 || memcmp(r->hdr + r->hdr_len - 4, "\r\n\r\n", 4) != 0)
        abort();
    if (memcmp(r->hdr, "HTTP/1.1 ", 9) != 0)
        abort();
    if (!r->body) {
        if (r->body_len)
            abort();
        return;
    }
    /* the body must lie inside the entry's 200 body for the same representation */
    struct snap_req full = {.method = SNAP_M_GET};
    if (memmem(r->hdr, r->hdr_len, "Content-Encoding: gzip", 22) && r->status != 405)
        full.accept_encoding = (struct snap_span){"gzip", 4};
    char buf[SNAP_HDR_MAX];
    struct snap_resp f;
    if (snap_eval(e, &full, buf, sizeof(buf), &f) != 0 || f.status != 200)
        abort();
    if (r->body < f.body || r->body + r->body_len > f.body + f.body_len)
        abort();
    if (r->status == 206 && r->body_len == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const enum snap_method methods[] = {SNAP_M_GET, SNAP_M_HEAD, SNAP_M_OTHER};
    enum snap_method m = methods[data[0] % 3];
    const char *p = (const char *)data + 1;
    const char *end = (const char *)data + size;

    struct snap_span f[6] = {{0}};
    for (int i = 0; i < 6 && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *fe = nl ? nl : end;
        f[i] = (struct snap_span){p, (size_t)(fe - p)};
        if (!nl)
            break;
        p = nl + 1;
    }
    if (!f[0].p)
        return 0;

    char out[SNAP_PATH_MAX];
    int n = snap_path_normalize(f[0].p, f[0].len, out, sizeof(out));
    if (n >= 0)
        fz_check_normalised(out, n);
    else if (n != -EINVAL && n != -ENAMETOOLONG)
        abort();

    struct snap_req req = {
        .method = m,
        .if_none_match = f[1],
        .if_modified_since = f[2],
        .range = f[3],
        .if_range = f[4],
        .accept_encoding = f[5],
    };
    char hbuf[SNAP_HDR_MAX];
    struct snap_resp r;
    const struct snap_entry *e;
    int rc = snap_lookup(fz_set, f[0].p, f[0].len, out, sizeof(out), &e);
    if (rc == 0) {
        if (snap_eval(e, &req, hbuf, sizeof(hbuf), &r) != 0)
            abort();
        fz_check_resp(e, &r);
    }
    /* the header parsers run on every input, whatever the path found */
    if (snap_lookup(fz_set, "a.json", 6, out, sizeof(out), &e) != 0)
        abort();
    if (snap_eval(e, &req, hbuf, sizeof(hbuf), &r) != 0)
        abort();
    fz_check_resp(e, &r);
    return 0;
}
