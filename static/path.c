/*
 * Snapshot store: from a URL path to an entry. Owns the path normaliser (percent-decoding and
 * dot segments in one pass), snap_hash64 (conf/hash.h's hash) and the set's lookup table.
 *
 * Security rests here: a set holds only files read at load time, and the table is keyed by
 * their relative paths, so whatever a request path decodes to, the worst it can reach is
 * another file of the same set. The normaliser still refuses paths that climb above the root
 * or smuggle a slash or NUL in an escape, because those are attacks, not typos, and a 400
 * says so to the operator's logs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/hash.h"
#include "static/internal.h"

/*
 * ETags need "changes whenever the content does" (64 bits make an accidental match
 * negligible) and the lookup table needs spread; neither needs a cryptographic hash. This is
 * the project's one hash (conf/hash.h) with a fixed seed, so an ETag is the same on every
 * machine and after every restart, and loading a large set is dominated by reading it.
 */
uint64_t snap_hash64(const void *data, size_t len)
{
    return lb_hash64(data, len, 0);
}

static inline int snap_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Single pass: bytes are decoded straight into @out, and at the end of each segment the
 * segment just written is inspected: "." is dropped, ".." drops it and the one before
 * (nothing before: above the root), an empty one (from "//") is dropped. Output segments
 * are joined by '/', so @out ends with '/' exactly when the input named a directory: a
 * trailing slash, or a final "." or "..", as in RFC 3986 5.2.4.
 */
int snap_path_normalize(const char *path, size_t len, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)path;
    const unsigned char *end = p + len;
    size_t o = 0;

    if (len > INT32_MAX)
        return -ENAMETOOLONG;
    while (p < end && *p != '?') {
        size_t seg = o; /* where this segment starts in out */
        while (p < end && *p != '/' && *p != '?') {
            unsigned char c = *p++;
            if (c == '%') {
                int hi, lo;
                if (end - p < 2 || (hi = snap_hexval(p[0])) < 0 || (lo = snap_hexval(p[1])) < 0)
                    return -EINVAL;
                c = (unsigned char)(hi << 4 | lo);
                p += 2;
                if (c == '/')
                    return -EINVAL;
            }
            if (c == '\0')
                return -EINVAL; /* encoded or raw: no file name holds one */
            if (o >= cap)
                return -ENAMETOOLONG;
            out[o++] = (char)c;
        }
        bool slash = p < end && *p == '/';
        if (slash)
            p++;
        size_t n = o - seg;
        if (n == 0)
            continue; /* "//" or a leading '/' */
        if (n == 1 && out[seg] == '.') {
            o = seg;
            continue;
        }
        if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (seg == 0)
                return -EINVAL; /* would climb above the root */
            o = seg - 1;        /* the '/' ending the previous segment */
            while (o > 0 && out[o - 1] != '/')
                o--;
            continue;
        }
        if (slash) {
            if (o >= cap)
                return -ENAMETOOLONG;
            out[o++] = '/';
        }
    }
    return (int)o;
}

int snap_lookup(const struct snap_set *set, const char *path, size_t len, char *buf, size_t cap,
                const struct snap_entry **entry)
{
    int n = snap_path_normalize(path, len, buf, cap);
    if (n < 0)
        return n;
    uint64_t h = snap_hash64(buf, (size_t)n);
    for (uint32_t i = (uint32_t)h & set->mask;; i = (i + 1) & set->mask) {
        const struct snap_bucket *s = &set->tab[i];
        if (!s->key)
            return -ENOENT;
        if (s->hash == h && s->klen == (uint32_t)n && memcmp(s->key, buf, (size_t)n) == 0) {
            *entry = s->e;
            return 0;
        }
    }
}

int snap_set_add_key(struct snap_set *s, const char *key, size_t klen, const struct snap_entry *e)
{
    if (s->nkeys == s->keys_cap) {
        size_t ncap = s->keys_cap ? s->keys_cap * 2 : 64;
        struct snap_key *k = realloc(s->keys, ncap * sizeof(*k));
        if (!k)
            return -ENOMEM;
        s->keys = k;
        s->keys_cap = ncap;
    }
    char *copy = malloc(klen + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, key, klen);
    copy[klen] = '\0';
    s->keys[s->nkeys++] = (struct snap_key){.key = copy, .klen = (uint32_t)klen, .e = e};
    s->stats.memory_bytes += klen + 1;
    return 0;
}

int snap_set_build_table(struct snap_set *s)
{
    size_t size = 16;
    while (size < 2 * s->nkeys)
        size *= 2;
    s->tab = calloc(size, sizeof(*s->tab));
    if (!s->tab)
        return -ENOMEM;
    s->mask = (uint32_t)(size - 1);
    s->stats.memory_bytes += size * sizeof(*s->tab) + s->keys_cap * sizeof(*s->keys);
    for (size_t k = 0; k < s->nkeys; k++) {
        const struct snap_key *key = &s->keys[k];
        uint64_t h = snap_hash64(key->key, key->klen);
        uint32_t i = (uint32_t)h & s->mask;
        for (; s->tab[i].key; i = (i + 1) & s->mask) {
            if (s->tab[i].klen == key->klen && memcmp(s->tab[i].key, key->key, key->klen) == 0)
                return -EEXIST;
        }
        s->tab[i] =
            (struct snap_bucket){.hash = h, .key = key->key, .klen = key->klen, .e = key->e};
    }
    return 0;
}
