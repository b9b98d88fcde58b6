/*
 * Snapshot store: loading a directory into a set, the set's lifetime, and the publication
 * slot.
 *
 * Loading walks the directory with openat() relative to already-open directories and
 * O_NOFOLLOW, so the walk itself cannot be redirected out of the tree by a symbolic link
 * swapped in halfway. Each directory is listed in full and sorted before anything is read:
 * the order (and so the set) does not depend on readdir order, and a .gz sibling is known
 * before its base file's headers are written (both carry Vary). Every file is read whole,
 * hashed for its ETag, and stored with its header sections in one allocation (internal.h).
 *
 * Any failure throws away everything loaded so far: a set is all of the directory or
 * nothing, so the caller keeps serving the old set and tells the operator which file broke.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "static/internal.h"

struct snap_loader {
    const struct conf_static *cf;
    struct snap_set *set;
    struct lb_err *err;
    char root[PATH_MAX]; /* realpath of cf->dir */
    size_t root_len;
    char rel[PATH_MAX]; /* the directory being walked, relative, "" or ending with '/' */
    uint64_t max_age_s;
};

struct snap_dirent {
    char *name;
    unsigned char type; /* DT_REG, DT_DIR, DT_LNK, or DT_UNKNOWN for anything else */
};

static const char *const snap_days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const snap_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* IMF-fixdate (RFC 9110 5.6.7), always 29 bytes; no locale involved. */
static void snap_fmt_date(char out[30], time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", snap_days[tm.tm_wday % 7], tm.tm_mday,
             snap_months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

/* Content-Type by extension, case-insensitively. JSON and SVG take no charset parameter
 * (RFC 8259 defines none; SVG declares its own); text types say utf-8. */
static const char *snap_content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"json", "application/json"},
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    if (dot && dot != name) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}

/* The two header sections of a file representation. @etag is 16 hex digits. Returns the
 * total of both lengths, or -ENOSPC (cannot happen with SNAP_HDR_MAX buffers). */
static int snap_fmt_headers(char *h200, char *h304, const char *ctype, uint64_t len,
                            const char *etag, time_t mtime, uint64_t max_age_s, bool gzip,
                            bool vary, uint32_t *len200, uint32_t *rest_off, uint32_t *len304)
{
    char date[30];
    snap_fmt_date(date, mtime);
    const char *ce = gzip ? "Content-Encoding: gzip\r\n" : "";
    const char *va = vary ? "Vary: Accept-Encoding\r\n" : "";

    int a = snprintf(h200, SNAP_HDR_MAX, "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n",
                     (unsigned long long)len);
    if (a < 0 || a >= SNAP_HDR_MAX)
        return -ENOSPC;
    int b = snprintf(h200 + a, SNAP_HDR_MAX - (size_t)a,
                     "Content-Type: %s\r\nETag: \"%.16s\"\r\nLast-Modified: %s\r\n"
                     "Cache-Control: max-age=%llu\r\nAccept-Ranges: bytes\r\n%s%s\r\n",
                     ctype, etag, date, (unsigned long long)max_age_s, ce, va);
    if (b < 0 || b >= SNAP_HDR_MAX - a)
        return -ENOSPC;
    int c = snprintf(h304, SNAP_HDR_MAX,
                     "HTTP/1.1 304 Not Modified\r\nETag: \"%.16s\"\r\nLast-Modified: %s\r\n"
                     "Cache-Control: max-age=%llu\r\n%s\r\n",
                     etag, date, (unsigned long long)max_age_s, va);
    if (c < 0 || c >= SNAP_HDR_MAX)
        return -ENOSPC;
    *rest_off = (uint32_t)a;
    *len200 = (uint32_t)(a + b);
    *len304 = (uint32_t)c;
    return a + b + c;
}

/* Reads exactly @len bytes; a file that ends early or grows meanwhile is being rewritten in
 * place, and serving a mix of two versions is what a snapshot store must never do. */
static int snap_read_all(int fd, char *buf, uint64_t len)
{
    uint64_t off = 0;
    while (off < len) {
        ssize_t n = read(fd, buf + off, len - off > (1u << 30) ? (1u << 30) : len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ESTALE;
        off += (uint64_t)n;
    }
    char extra;
    ssize_t n;
    while ((n = read(fd, &extra, 1)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -errno;
    return n > 0 ? -ESTALE : 0;
}

/* True when the file open on @fd lies inside the set's directory. Asked of the kernel about
 * the opened file, so no rename or link swap between the check and the read can escape. */
static bool snap_fd_inside(const struct snap_loader *ld, int fd)
{
    char proc[64], real[PATH_MAX];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, real, sizeof(real) - 1);
    if (n <= 0 || (size_t)n >= sizeof(real) - 1)
        return false; /* no /proc: links are not followed at all */
    real[n] = '\0';
    return (size_t)n > ld->root_len + 1 && memcmp(real, ld->root, ld->root_len) == 0 &&
           real[ld->root_len] == '/';
}

/*
 * Opens @name in @dfd as a regular file for reading. Returns the fd, -ENOENT when the entry
 * is to be skipped (a link leading outside, to a directory or nowhere; something replaced
 * by a non-file), or -errno with a message.
 */
static int snap_open_file(struct snap_loader *ld, int dfd, const char *name, bool link,
                          struct stat *st)
{
    /* O_NONBLOCK: a FIFO swapped in after the listing must not hang the control thread. */
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (link ? 0 : O_NOFOLLOW));
    if (fd < 0) {
        if (link && (errno == ENOENT || errno == ELOOP || errno == EACCES))
            return -ENOENT;
        int e = -errno;
        lb_err_set(ld->err, "static '%s': %s/%s%s: %s", ld->cf->name, ld->cf->dir, ld->rel, name,
                   strerror(-e));
        return e;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || (link && !snap_fd_inside(ld, fd))) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

/* Loads one representation of @name into @v. @ctype names the base file's type. */
static int snap_load_var(struct snap_loader *ld, int dfd, const char *name, bool link,
                         const char *ctype, bool gzip, bool vary, struct snap_var *v)
{
    struct stat st;
    int fd = snap_open_file(ld, dfd, name, link, &st);
    if (fd < 0)
        return fd;

    int rc;
    uint64_t size = (uint64_t)st.st_size;
    if (size > ld->cf->max_file_bytes) {
        lb_err_set(ld->err, "static '%s': %s/%s%s is %llu bytes, over max_file_size (%llu)",
                   ld->cf->name, ld->cf->dir, ld->rel, name, (unsigned long long)size,
                   (unsigned long long)ld->cf->max_file_bytes);
        rc = -EFBIG;
        goto fail;
    }

    /* The ETag has a fixed width, so formatting with a placeholder gives the exact lengths
     * and the body can be read straight into its final place. */
    char h200[SNAP_HDR_MAX], h304[SNAP_HDR_MAX];
    uint32_t len200, rest_off, len304;
    v->mtime = st.st_mtim.tv_sec;
    memset(v->etag, '0', sizeof(v->etag));
    rc = snap_fmt_headers(h200, h304, ctype, size, v->etag, v->mtime, ld->max_age_s, gzip, vary,
                          &len200, &rest_off, &len304);
    if (rc < 0)
        goto fail;
    v->mem = malloc((size_t)rc + size);
    if (!v->mem) {
        lb_err_set(ld->err, "static '%s': %s/%s%s: out of memory", ld->cf->name, ld->cf->dir,
                   ld->rel, name);
        rc = -ENOMEM;
        goto fail;
    }
    char *body = v->mem + len200;
    rc = snap_read_all(fd, body, size);
    if (rc < 0) {
        lb_err_set(ld->err, "static '%s': %s/%s%s: %s", ld->cf->name, ld->cf->dir, ld->rel, name,
                   rc == -ESTALE ? "changed size while being read" : strerror(-rc));
        goto fail;
    }
    if (gzip && (size < 2 || (unsigned char)body[0] != 0x1f || (unsigned char)body[1] != 0x8b)) {
        lb_err_set(ld->err, "static '%s': %s/%s%s: not gzip data", ld->cf->name, ld->cf->dir,
                   ld->rel, name);
        rc = -EINVAL;
        goto fail;
    }
    char hex[SNAP_ETAG_HEX + 1];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)snap_hash64(body, size));
    memcpy(v->etag, hex, SNAP_ETAG_HEX);
    snap_fmt_headers(h200, h304, ctype, size, v->etag, v->mtime, ld->max_age_s, gzip, vary, &len200,
                     &rest_off, &len304);
    memcpy(v->mem, h200, len200);
    memcpy(body + size, h304, len304);
    v->hdr = v->mem;
    v->hdr_len = len200;
    v->rest_off = rest_off;
    v->body = body;
    v->body_len = size;
    v->hdr304 = body + size;
    v->hdr304_len = len304;
    close(fd);
    ld->set->stats.body_bytes += size;
    ld->set->stats.memory_bytes += len200 + size + len304;
    return 0;

fail:
    free(v->mem);
    v->mem = NULL;
    close(fd);
    return rc;
}

static int snap_add_entry(struct snap_loader *ld, struct snap_entry *e)
{
    struct snap_set *s = ld->set;
    if (s->nentries == s->entries_cap) {
        size_t cap = s->entries_cap ? s->entries_cap * 2 : 64;
        struct snap_entry **n = realloc(s->entries, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->entries = n;
        s->entries_cap = cap;
    }
    s->entries[s->nentries++] = e;
    s->stats.memory_bytes += sizeof(*e);
    return 0;
}

static void snap_entry_free(struct snap_entry *e)
{
    if (!e)
        return;
    free(e->id.mem);
    free(e->gz.mem);
    free(e);
}

static int snap_oom(struct snap_loader *ld)
{
    lb_err_set(ld->err, "static '%s': out of memory", ld->cf->name);
    return -ENOMEM;
}

/* Characters a path segment may carry unescaped (RFC 3986 pchar minus '%'). */
static bool snap_pchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

/* The 301 for directory @rel ("a/b/") named without its slash: "Location: ./b/", relative so
 * that it holds under any route prefix; "./" keeps a name with ':' from reading as a scheme. */
static int snap_add_redirect(struct snap_loader *ld, size_t rel_len)
{
    size_t end = rel_len - 1; /* the slash */
    size_t start = end;
    while (start > 0 && ld->rel[start - 1] != '/')
        start--;

    char loc[3 * NAME_MAX + 8];
    size_t o = 0;
    loc[o++] = '.';
    loc[o++] = '/';
    for (size_t i = start; i < end; i++) {
        unsigned char c = (unsigned char)ld->rel[i];
        if (snap_pchar(c) && c) {
            loc[o++] = (char)c;
        } else {
            o += (size_t)snprintf(loc + o, 4, "%%%02X", c);
        }
    }
    loc[o++] = '/';

    struct snap_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return snap_oom(ld);
    e->kind = SNAP_K_REDIRECT;
    int n = asprintf(&e->id.mem,
                     "HTTP/1.1 301 Moved Permanently\r\nLocation: %.*s\r\n"
                     "Cache-Control: max-age=%llu\r\nContent-Length: 0\r\n\r\n",
                     (int)o, loc, (unsigned long long)ld->max_age_s);
    if (n < 0) {
        e->id.mem = NULL;
        free(e);
        return snap_oom(ld);
    }
    e->id.hdr = e->id.mem;
    e->id.hdr_len = (uint32_t)n;
    ld->set->stats.memory_bytes += (uint64_t)n + 1;
    if (snap_add_entry(ld, e) < 0) {
        snap_entry_free(e);
        return snap_oom(ld);
    }
    if (snap_set_add_key(ld->set, ld->rel, end, e) < 0)
        return snap_oom(ld);
    return 0;
}

/* A file and its optional gzip sibling @gz_name become one entry under rel + name; an
 * index.html also answers for its directory. Returns 0 (also when skipped) or -errno. */
static int snap_load_file(struct snap_loader *ld, int dfd, size_t rel_len,
                          const struct snap_dirent *d, const struct snap_dirent *gz)
{
    struct snap_set *s = ld->set;
    if (s->stats.files >= SNAP_MAX_FILES) {
        lb_err_set(ld->err, "static '%s': more than %d files under %s", ld->cf->name,
                   SNAP_MAX_FILES, ld->cf->dir);
        return -EMFILE;
    }
    struct snap_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return snap_oom(ld);
    e->kind = SNAP_K_FILE;
    const char *ctype = snap_content_type(d->name);
    int rc = snap_load_var(ld, dfd, d->name, d->type == DT_LNK, ctype, false, gz != NULL, &e->id);
    if (rc == -ENOENT) {
        s->stats.skipped++;
        snap_entry_free(e);
        return 0;
    }
    if (rc < 0)
        goto fail;
    if (gz) {
        rc = snap_load_var(ld, dfd, gz->name, gz->type == DT_LNK, ctype, true, true, &e->gz);
        if (rc == -ENOENT) {
            /* The variant is a link we do not follow; the base file has already been
             * written with Vary, which stays true (and harmless) without a variant. */
            s->stats.skipped++;
        } else if (rc < 0) {
            goto fail;
        } else {
            e->has_gz = true;
            s->stats.gzip++;
        }
    }
    rc = snap_add_entry(ld, e);
    if (rc < 0) {
        rc = snap_oom(ld);
        goto fail;
    }
    s->stats.files++;

    size_t nlen = strlen(d->name);
    memcpy(ld->rel + rel_len, d->name, nlen);
    rc = snap_set_add_key(s, ld->rel, rel_len + nlen, e);
    if (rc == 0 && strcmp(d->name, "index.html") == 0) {
        rc = snap_set_add_key(s, ld->rel, rel_len, e);
        if (rc == 0 && rel_len > 0)
            rc = snap_add_redirect(ld, rel_len);
    }
    ld->rel[rel_len] = '\0';
    return rc < 0 ? snap_oom(ld) : 0;

fail:
    snap_entry_free(e);
    return rc;
}

static int snap_dirent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct snap_dirent *)a)->name, ((const struct snap_dirent *)b)->name);
}

static void snap_dirents_free(struct snap_dirent *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(d[i].name);
    free(d);
}

/* Lists @dfd minus dot names, sorted; types from lstat, not d_type, which some file systems
 * leave unknown. */
static int snap_list_dir(struct snap_loader *ld, int dfd, struct snap_dirent **out, size_t *nout)
{
    int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    if (!dir) {
        int e = -errno;
        if (fd >= 0)
            close(fd);
        lb_err_set(ld->err, "static '%s': %s/%s: %s", ld->cf->name, ld->cf->dir, ld->rel,
                   strerror(-e));
        return e;
    }
    struct snap_dirent *list = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone since the listing: not part of this version */
        unsigned char type = S_ISREG(st.st_mode)   ? DT_REG
                             : S_ISDIR(st.st_mode) ? DT_DIR
                             : S_ISLNK(st.st_mode) ? DT_LNK
                                                   : DT_UNKNOWN;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct snap_dirent *l = realloc(list, cap * sizeof(*l));
            if (!l) {
                rc = snap_oom(ld);
                goto done;
            }
            list = l;
        }
        list[n].name = strdup(de->d_name);
        if (!list[n].name) {
            rc = snap_oom(ld);
            goto done;
        }
        list[n++].type = type;
        errno = 0;
    }
    if (errno) {
        rc = -errno;
        lb_err_set(ld->err, "static '%s': %s/%s: %s", ld->cf->name, ld->cf->dir, ld->rel,
                   strerror(-rc));
    }
done:
    closedir(dir);
    if (rc < 0) {
        snap_dirents_free(list, n);
        return rc;
    }
    if (n)
        qsort(list, n, sizeof(*list), snap_dirent_cmp);
    *out = list;
    *nout = n;
    return 0;
}

static const struct snap_dirent *snap_find(const struct snap_dirent *d, size_t n, const char *name)
{
    struct snap_dirent key = {.name = (char *)name};
    return bsearch(&key, d, n, sizeof(*d), snap_dirent_cmp);
}

static bool snap_is_gz_name(const char *name, size_t len)
{
    return len > 3 && strcmp(name + len - 3, ".gz") == 0;
}

/* Walks directory @dfd (takes @dfd), whose relative path is ld->rel[0..rel_len). */
static int snap_walk(struct snap_loader *ld, int dfd, size_t rel_len, int depth)
{
    struct snap_dirent *list = NULL;
    size_t n = 0;
    int rc = snap_list_dir(ld, dfd, &list, &n);
    if (rc < 0) {
        close(dfd);
        return rc;
    }

    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct snap_dirent *d = &list[i];
        size_t nlen = strlen(d->name);

        if (rel_len + nlen + 2 >= sizeof(ld->rel)) {
            lb_err_set(ld->err, "static '%s': %s/%s%s: path too long", ld->cf->name, ld->cf->dir,
                       ld->rel, d->name);
            rc = -ENAMETOOLONG;
        } else if (d->type == DT_DIR) {
            if (depth + 1 > SNAP_MAX_DEPTH) {
                lb_err_set(ld->err, "static '%s': %s/%s%s: directories nest deeper than %d",
                           ld->cf->name, ld->cf->dir, ld->rel, d->name, SNAP_MAX_DEPTH);
                rc = -ELOOP;
                break;
            }
            int sub = openat(dfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = -errno;
                lb_err_set(ld->err, "static '%s': %s/%s%s: %s", ld->cf->name, ld->cf->dir, ld->rel,
                           d->name, strerror(-rc));
                break;
            }
            memcpy(ld->rel + rel_len, d->name, nlen);
            ld->rel[rel_len + nlen] = '/';
            ld->rel[rel_len + nlen + 1] = '\0';
            rc = snap_walk(ld, sub, rel_len + nlen + 1, depth + 1);
            ld->rel[rel_len] = '\0';
        } else if (d->type == DT_REG || d->type == DT_LNK) {
            /* x.gz is a variant, not a URL, when x is a file of this directory. */
            if (snap_is_gz_name(d->name, nlen)) {
                char base[NAME_MAX + 1];
                if (nlen - 3 >= sizeof(base))
                    continue;
                memcpy(base, d->name, nlen - 3);
                base[nlen - 3] = '\0';
                const struct snap_dirent *b = snap_find(list, n, base);
                if (b && (b->type == DT_REG || b->type == DT_LNK))
                    continue;
            }
            char gzname[NAME_MAX + 4];
            const struct snap_dirent *gz = NULL;
            if (nlen + 4 <= sizeof(gzname)) {
                memcpy(gzname, d->name, nlen);
                memcpy(gzname + nlen, ".gz", 4);
                gz = snap_find(list, n, gzname);
            }
            if (gz && gz->type != DT_REG && gz->type != DT_LNK)
                gz = NULL;
            rc = snap_load_file(ld, dfd, rel_len, d, gz);
        } else {
            ld->set->stats.skipped++; /* FIFOs, sockets, devices */
        }
    }
    snap_dirents_free(list, n);
    close(dfd);
    return rc;
}

static void snap_set_free(struct snap_set *s)
{
    for (size_t i = 0; i < s->nentries; i++)
        snap_entry_free(s->entries[i]);
    free(s->entries);
    for (size_t i = 0; i < s->nkeys; i++)
        free(s->keys[i].key);
    free(s->keys);
    free(s->tab);
    free(s->name);
    free(s);
}

int snap_set_load(const struct conf_static *cf, struct snap_set **out, struct lb_err *err)
{
    struct snap_loader *ld = calloc(1, sizeof(*ld)); /* two PATH_MAX buffers: not the stack */
    struct snap_set *s = calloc(1, sizeof(*s));
    int rc = -ENOMEM;
    if (!ld || !s || !(s->name = strdup(cf->name ? cf->name : ""))) {
        lb_err_set(err, "static '%s': out of memory", cf->name ? cf->name : "");
        goto fail;
    }
    atomic_init(&s->refs, 1);
    s->stats.memory_bytes = sizeof(*s) + strlen(s->name) + 1;
    ld->cf = cf;
    ld->set = s;
    ld->err = err;
    ld->max_age_s = cf->max_age_ms / 1000;

    if (!realpath(cf->dir, ld->root)) {
        rc = -errno;
        lb_err_set(err, "static '%s': %s: %s", cf->name, cf->dir, strerror(-rc));
        goto fail;
    }
    ld->root_len = strlen(ld->root);
    if (ld->root_len == 1)
        ld->root_len = 0; /* "/": every path is inside, and "/" + "/" must not be required */
    int dfd = open(ld->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = -errno;
        lb_err_set(err, "static '%s': %s: %s", cf->name, cf->dir, strerror(-rc));
        goto fail;
    }
    rc = snap_walk(ld, dfd, 0, 0);
    if (rc < 0)
        goto fail;
    s->stats.memory_bytes += s->entries_cap * sizeof(*s->entries);
    rc = snap_set_build_table(s);
    if (rc < 0) {
        lb_err_set(err, "static '%s': %s", cf->name,
                   rc == -EEXIST ? "two files map to one URL" : "out of memory");
        goto fail;
    }
    free(ld);
    *out = s;
    return 0;

fail:
    if (s)
        snap_set_free(s);
    free(ld);
    return rc;
}

struct snap_set *snap_set_ref(struct snap_set *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void snap_set_unref(struct snap_set *s)
{
    if (!s)
        return;
    /* acq_rel: the thread freeing must see every other thread's reads finished. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snap_set_free(s);
}

const char *snap_set_name(const struct snap_set *s)
{
    return s->name;
}

void snap_set_stats(const struct snap_set *s, struct snap_stats *st)
{
    *st = s->stats;
}

void snap_slot_init(struct snap_slot *slot)
{
    pthread_mutex_init(&slot->lock, NULL);
    slot->cur = NULL;
    __atomic_store_n(&slot->gen, 0, __ATOMIC_RELAXED);
}

void snap_slot_destroy(struct snap_slot *slot)
{
    snap_set_unref(slot->cur);
    slot->cur = NULL;
    pthread_mutex_destroy(&slot->lock);
}

void snap_slot_publish(struct snap_slot *slot, struct snap_set *s)
{
    pthread_mutex_lock(&slot->lock);
    struct snap_set *old = slot->cur;
    slot->cur = s;
    __atomic_add_fetch(&slot->gen, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&slot->lock);
    snap_set_unref(old); /* outside the lock: freeing a big set takes a while */
}

struct snap_set *snap_slot_get(struct snap_slot *slot)
{
    pthread_mutex_lock(&slot->lock);
    struct snap_set *s = slot->cur ? snap_set_ref(slot->cur) : NULL;
    pthread_mutex_unlock(&slot->lock);
    return s;
}

uint64_t snap_slot_gen(const struct snap_slot *slot)
{
    return __atomic_load_n(&slot->gen, __ATOMIC_ACQUIRE);
}
