/*
 * Snapshot store: a directory of files loaded into memory as one immutable set, each file
 * with its HTTP response prebuilt, served without touching the file system.
 *
 * Life of a set. The control thread calls snap_set_load() for a `static:` entry of the
 * config; the result is a set holding one reference. It publishes the set (snap_slot_* below
 * or its own generation object); a worker takes a reference with snap_set_ref() and keeps it
 * for as long as any send points into the set's memory, then drops it with snap_set_unref().
 * The set is freed when the last reference goes, so a republish never pulls bytes out from
 * under a send in flight. Nothing in a set changes after snap_set_load() returns: any number
 * of threads may read it at once without locks.
 *
 * Serving one request is two pure calls, neither of which allocates or blocks:
 *
 *   1. snap_lookup(set, path, len, buf, cap, &entry): @path is the URL path after the route's
 *      path_prefix (a query string, if passed, is ignored). It is percent-decoded and its dot
 *      segments resolved (RFC 3986 5.2.4) into @buf, then looked up in a hash table.
 *   2. snap_eval(entry, &req, hbuf, sizeof(hbuf), &resp): picks the representation (gzip or
 *      not), evaluates the method and conditional/range headers (RFC 9110 13.2.2 order) and
 *      says what to send: a header section and a body slice.
 *
 * URL to file mapping (URL = route path_prefix + relative path):
 *   - "a/b.json" is the file b.json in subdirectory a.
 *   - "a/" is a/index.html when that file exists; "a" (no slash) answers 301 with the
 *     relative "Location: ./a/" so that relative links in the page resolve under a/. The root
 *     "" and "/" both serve index.html at the top of the directory.
 *   - x.json.gz next to x.json is x.json's gzip variant, not a URL of its own; a .gz file
 *     without a sibling is an ordinary file (application/octet-stream).
 *   - Names starting with '.' (files and directories) are skipped, so a publisher can write
 *     ".tmp-x.json" and rename it into place. Repeated slashes in a URL are merged.
 *   - Symbolic links to regular files are followed only when the file they open lies inside
 *     the set's directory (checked on the opened file, so a race cannot escape); others are
 *     skipped and counted. Symbolic links to directories are never followed.
 *
 * Headers the store does not write: Date, Connection, Server. A caller that wants them sends
 * resp.hdr_len - 2 bytes of the header section (which always ends with the empty line
 * "\r\n"), its own fields, then "\r\n".
 */
#ifndef STATIC_SNAP_H
#define STATIC_SNAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "conf/err.h"

#define SNAP_MAX_DEPTH 16     /* directory nesting below the set's dir; deeper is an error */
#define SNAP_MAX_FILES 100000 /* files per set; more is an error */
#define SNAP_PATH_MAX 4096    /* a normalised path buffer this big is always enough */
#define SNAP_HDR_MAX 512      /* snap_eval's header buffer: this big is always enough */

struct snap_set;   /* opaque, immutable, refcounted */
struct snap_entry; /* opaque; lives as long as its set */

/* Memory and content of one set, for /stats. */
struct snap_stats {
    uint64_t files;        /* URLs backed by a file (gzip variants not counted) */
    uint64_t gzip;         /* files that have a .gz variant */
    uint64_t body_bytes;   /* file contents, variants included */
    uint64_t memory_bytes; /* everything the set allocated: contents, headers, table */
    uint64_t skipped;      /* symbolic links not followed (outside dir, dangling, dirs) */
};

/*
 * Loads every file under cf->dir (see the mapping above) into a new set holding one
 * reference, stored in *@out. Returns 0, or -errno with a message naming the set and the
 * file in @err and *@out untouched: -EFBIG when a file is over cf->max_file_bytes, -ELOOP
 * when directories nest deeper than SNAP_MAX_DEPTH, -EMFILE (sic: too many) beyond
 * SNAP_MAX_FILES files, -EINVAL when a .gz variant is not gzip data, -ENOMEM, or the errno
 * of a failed open/read. A failed load allocates nothing that outlives the call, so the
 * caller keeps serving its old set.
 */
int snap_set_load(const struct conf_static *cf, struct snap_set **out, struct lb_err *err);

/* Takes one more reference to @s and returns @s. Thread-safe. */
struct snap_set *snap_set_ref(struct snap_set *s);

/* Drops one reference; the last one frees the set and every entry in it. NULL is allowed.
 * Thread-safe: any thread may drop the last reference. */
void snap_set_unref(struct snap_set *s);

/* The set's name (the key under `static:`); lives as long as the set. */
const char *snap_set_name(const struct snap_set *s);

/* Fills @st. Constant for the life of the set. */
void snap_set_stats(const struct snap_set *s, struct snap_stats *st);

/*
 * Normalises a URL path: percent-decodes it and resolves "." and ".." segments (RFC 3986
 * 5.2.4), merging repeated slashes, into @out (no NUL written). The result has no leading
 * slash; it ends with '/' when it names a directory; "" is the root. A raw '?' ends the
 * path. Returns the length, or:
 *   -EINVAL        a malformed escape (%4, %zz), an encoded slash (%2F), a NUL (raw or
 *                  %00), or ".." above the root: answer 400;
 *   -ENAMETOOLONG  the result does not fit in @cap: no entry can match, answer 404.
 * Decoding happens once: "%252e" becomes the three bytes "%2e", a name, not a dot.
 */
int snap_path_normalize(const char *path, size_t len, char *out, size_t cap);

/*
 * Finds the entry for @path (as for snap_path_normalize, using @buf of @cap bytes as scratch;
 * SNAP_PATH_MAX is enough for any path that can match). Returns 0 with *@entry set, -ENOENT
 * when the set has nothing at that path (ask the fallback cluster, else 404), or an error of
 * snap_path_normalize. *@entry lives as long as the caller's reference to @set.
 * A hash probe after one pass over the path; no allocation, no system call.
 */
int snap_lookup(const struct snap_set *set, const char *path, size_t len, char *buf, size_t cap,
                const struct snap_entry **entry);

enum snap_method {
    SNAP_M_GET,
    SNAP_M_HEAD,
    SNAP_M_OTHER, /* anything else: 405 */
};

/* A request header value; p == NULL means the header is absent. Pass the value with
 * surrounding whitespace stripped; for a header sent more than once pass the first. */
struct snap_span {
    const char *p;
    size_t len;
};

struct snap_req {
    enum snap_method method;
    struct snap_span if_none_match;
    struct snap_span if_modified_since;
    struct snap_span range;
    struct snap_span if_range;
    struct snap_span accept_encoding;
};

struct snap_resp {
    uint16_t status; /* 200, 206, 301, 304, 405 or 416 */
    const char *hdr; /* the status line and fields, through the final empty line */
    size_t hdr_len;
    const char *body; /* NULL when there is no body (HEAD, 301, 304, 405, 416) */
    size_t body_len;
    bool contiguous; /* hdr + hdr_len == body: one send can carry both (200 GET) */
};

/*
 * Decides the response to @req for @e:
 *   - method other than GET/HEAD: 405 with "Allow: GET, HEAD";
 *   - a directory without slash: 301 to "./name/";
 *   - the gzip variant when one exists and Accept-Encoding accepts gzip (q > 0, "gzip" or
 *     "*" not overridden by an explicit gzip;q=0), the identity one otherwise;
 *   - If-None-Match (weak comparison, "*" matches) when present, else If-Modified-Since
 *     (IMF-fixdate, RFC 850 or asctime date; unparseable dates are ignored): 304;
 *   - GET with a single byte range (bytes=a-b, a-, -n) and no failing If-Range: 206, or 416
 *     with "Content-Range: bytes *\/N" when the range starts at or past the end. Invalid
 *     syntax, other units and several ranges are ignored: 200 with the whole body;
 *   - otherwise 200 with the prebuilt header (the body left out for HEAD).
 * Headers for 206 and 416 are written into @buf (@cap >= SNAP_HDR_MAX); the others point
 * into the set or into constant storage. Everything in @resp lives as long as both the
 * caller's set reference and @buf. Returns 0, or -ENOSPC when @cap is too small.
 */
int snap_eval(const struct snap_entry *e, const struct snap_req *req, char *buf, size_t cap,
              struct snap_resp *resp);

/* The 64-bit hash behind ETags and the lookup table; stable across runs and machines. */
uint64_t snap_hash64(const void *data, size_t len);

/*
 * A publication point for one set: the control thread stores a new set, workers pick up the
 * current one. snap_slot_get() takes a short mutex (workers call it when snap_slot_gen()
 * moved, not per request); the mutex makes "read the pointer, take a reference" atomic
 * against a publish dropping the last reference in between.
 */
struct snap_slot {
    pthread_mutex_t lock;
    struct snap_set *cur;
    uint64_t gen; /* accessed atomically */
};

void snap_slot_init(struct snap_slot *slot);
/* Drops the slot's reference to its set. */
void snap_slot_destroy(struct snap_slot *slot);
/* Replaces the current set with @s (NULL allowed); takes @s's reference, drops the old one. */
void snap_slot_publish(struct snap_slot *slot, struct snap_set *s);
/* Returns a new reference to the current set (NULL when none); the caller unrefs it. */
struct snap_set *snap_slot_get(struct snap_slot *slot);
/* A counter that moves on every publish: cheap to poll, no lock. */
uint64_t snap_slot_gen(const struct snap_slot *slot);

#endif
