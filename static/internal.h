/*
 * The insides of a snapshot set, shared by the static/ .c files and nobody else: the
 * representation of a file (header sections and body in one allocation), entries, and the
 * lookup table.
 */
#ifndef STATIC_INTERNAL_H
#define STATIC_INTERNAL_H

#include <stdatomic.h>
#include <time.h>

#include "static/snap.h"

#define SNAP_ETAG_HEX 16 /* the opaque tag is 16 lower-case hex digits */

/*
 * One representation of a file (identity or gzip). @mem holds, back to back:
 *   [200 header section][body][304 header section]
 * so that a 200 GET is one contiguous send.
 */
struct snap_var {
    char *mem;
    const char *hdr; /* 200 section, ends with "\r\n\r\n" */
    uint32_t hdr_len;
    uint32_t rest_off; /* offset in hdr of the fields after Content-Length (for 206) */
    const char *body;
    uint64_t body_len;
    const char *hdr304;
    uint32_t hdr304_len;
    time_t mtime;
    char etag[SNAP_ETAG_HEX]; /* the opaque tag without quotes, not NUL-terminated */
};

enum snap_kind {
    SNAP_K_FILE,
    SNAP_K_REDIRECT, /* a directory named without its slash: 301 to ./name/ */
};

struct snap_entry {
    enum snap_kind kind;
    bool has_gz;
    struct snap_var id; /* FILE: the file; REDIRECT: hdr/hdr_len is the 301 section */
    struct snap_var gz; /* valid when has_gz */
};

struct snap_key {
    char *key;
    uint32_t klen;
    const struct snap_entry *e;
};

/* Open addressing, linear probing, power-of-two size, at most half full. */
struct snap_bucket {
    uint64_t hash; /* an empty slot has key == NULL */
    const char *key;
    uint32_t klen;
    const struct snap_entry *e;
};

struct snap_set {
    atomic_uint refs;
    char *name;
    struct snap_entry **entries; /* owned */
    size_t nentries;
    size_t entries_cap;
    struct snap_key *keys; /* every URL of the set, owned; the table points into it */
    size_t nkeys;
    size_t keys_cap;
    struct snap_bucket *tab;
    uint32_t mask;
    struct snap_stats stats;
};

/* Adds @key -> @e to the set's key list (takes nothing: @key is copied). 0 or -ENOMEM. */
int snap_set_add_key(struct snap_set *s, const char *key, size_t klen, const struct snap_entry *e);
/* Builds the table from the key list. 0, -ENOMEM, or -EEXIST on a duplicate key (a bug). */
int snap_set_build_table(struct snap_set *s);

#endif
