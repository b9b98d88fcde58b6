/*
 * The scalar forms of the config language: durations, sizes and socket addresses. They are
 * public (conf.h) because lbctl and the admin socket accept the same forms on their command
 * lines, and a duration must mean the same thing everywhere. Also the loader's shared helpers
 * that compare them: duplicates in a list, and the order of two addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/load.h"

/* Reads the unsigned decimal at *@s, advancing it. -EINVAL without digits, -ERANGE when it
 * does not fit in 64 bits. Signs are not digits, so "-1s" and "+1s" fail here. */
static int parse_u64(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return -ERANGE;
        v = v * 10 + dgt;
    }
    *s = p;
    *out = v;
    return 0;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (__builtin_mul_overflow(a, b, out))
        return -ERANGE;
    return 0;
}

int conf_parse_duration(const char *s, uint64_t *ms)
{
    uint64_t v, mult;
    int rc = parse_u64(&s, &v);
    if (rc < 0)
        return rc;
    if (!strcmp(s, "ms"))
        mult = 1;
    else if (!strcmp(s, "s"))
        mult = 1000;
    else if (!strcmp(s, "m"))
        mult = 60 * 1000;
    else if (!strcmp(s, "h"))
        mult = 3600 * 1000;
    else if (*s == '\0' && v == 0)
        mult = 0; /* a bare 0 is unambiguous */
    else
        return -EINVAL;
    return mul_u64(v, mult, ms);
}

int conf_parse_size(const char *s, uint64_t *bytes)
{
    uint64_t v, mult;
    int rc = parse_u64(&s, &v);
    if (rc < 0)
        return rc;
    if (*s == '\0')
        mult = 1;
    else if (s[1] != '\0')
        return -EINVAL;
    else if (*s == 'k' || *s == 'K')
        mult = 1024;
    else if (*s == 'm' || *s == 'M')
        mult = 1024 * 1024;
    else if (*s == 'g' || *s == 'G')
        mult = 1024 * 1024 * 1024;
    else
        return -EINVAL;
    return mul_u64(v, mult, bytes);
}

int conf_parse_addr(const char *s, struct conf_addr *out)
{
    char host[64];
    const char *port;
    size_t n = strlen(s), hl;

    memset(out, 0, sizeof(*out));
    if (n == 0 || n >= sizeof(out->text))
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        hl = (size_t)(close - s - 1);
        memcpy(host, s + 1, hl);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
        memcpy(host, s, hl);
        port = colon + 1;
        if (memchr(s, ':', hl))
            return -EINVAL; /* an IPv6 address needs its brackets: [::1]:80 */
    }
    host[hl] = '\0';
    if (hl == 0)
        return -EINVAL;

    uint64_t p;
    const char *end = port;
    if (parse_u64(&end, &p) == -EINVAL || *end != '\0' || end - port > 5)
        return end - port > 5 && *end == '\0' ? -ERANGE : -EINVAL;
    if (p < 1 || p > 65535)
        return -ERANGE;

    if (s[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->ss;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -EINVAL;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p);
        out->len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&out->ss;
        if (!strcmp(host, "localhost"))
            a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -EINVAL;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p);
        out->len = sizeof(*a4);
    }
    memcpy(out->text, s, n + 1);
    return 0;
}

/* ---- shared helpers ---- */

struct dup_sort {
    int (*cmp)(size_t a, size_t b, void *arg);
    void *arg;
};

static int dup_cmp(const void *pa, const void *pb, void *ctx)
{
    const struct dup_sort *s = ctx;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    int r = s->cmp(a, b, s->arg);
    if (r)
        return r;
    return a < b ? -1 : a > b; /* the first occurrence sorts first */
}

int conf_find_dups(size_t n, int (*cmp)(size_t a, size_t b, void *arg),
                   void (*report)(size_t dup, size_t first, void *arg), void *arg)
{
    if (n < 2)
        return 0;
    size_t *idx = malloc(n * sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    struct dup_sort s = {cmp, arg};
    qsort_r(idx, n, sizeof(*idx), dup_cmp, &s);
    size_t first = idx[0];
    for (size_t i = 1; i < n; i++) {
        if (cmp(idx[i], first, arg) == 0)
            report(idx[i], first, arg);
        else
            first = idx[i];
    }
    free(idx);
    return 0;
}

int conf_addr_cmp(const struct conf_addr *a, const struct conf_addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return a->ss.ss_family < b->ss.ss_family ? -1 : 1;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        if (x->sin_port != y->sin_port)
            return ntohs(x->sin_port) < ntohs(y->sin_port) ? -1 : 1;
        return memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr));
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        if (x->sin6_port != y->sin6_port)
            return ntohs(x->sin6_port) < ntohs(y->sin6_port) ? -1 : 1;
        return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
    }
    return 0;
}
