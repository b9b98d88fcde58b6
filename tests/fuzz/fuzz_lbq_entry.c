/*
 * libFuzzer target for tools/lbq/entry.c, the decoder of queue entries that lbq reads from
 * Redis. Every input gets a heap copy of exactly its bytes (so a read past the end is caught),
 * and an accepted entry is checked against the decoder's promises: strings inside the arena
 * and NUL-terminated, a method that is a token, a URI starting with '/', header values free of
 * CR and LF, and a body no longer than the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/lbq/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static int inside(const struct lbq_entry *e, const char *p, size_t n, size_t size)
{
    return p >= e->mem && p + n <= e->mem + size + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    struct lbq_entry e;
    struct lb_err err = {{0}};
    int rc = lbq_entry_parse(&e, copy, size, &err);
    if (rc == 0) {
        CHECK(e.id[0] && inside(&e, e.id, strlen(e.id) + 1, size));
        CHECK(e.method[0] && !strpbrk(e.method, " \r\n\t"));
        CHECK(e.uri[0] == '/' && !strpbrk(e.uri, " \r\n"));
        CHECK(e.ts >= 0);
        CHECK(e.body_len <= size && inside(&e, e.body, e.body_len, size));
        CHECK(e.nheaders <= LBQ_ENTRY_MAX_HEADERS);
        for (size_t i = 0; i < e.nheaders; i++) {
            const struct lbq_header *h = &e.headers[i];
            CHECK(h->name_len > 0 && inside(&e, h->name, h->name_len, size));
            CHECK(inside(&e, h->value, h->value_len, size));
            CHECK(!memchr(h->name, ':', h->name_len));
            CHECK(!memchr(h->value, '\r', h->value_len) && !memchr(h->value, '\n', h->value_len));
        }
        lbq_entry_free(&e);
    } else {
        CHECK(rc == -EINVAL || rc == -ENOMEM);
        CHECK(err.msg[0]);
    }
    free(copy);
    return 0;
}
