/*
 * The loader of global.admin.http: the status page with drain and undrain buttons, on an
 * address of its own, behind a token read from a file (so that the token is not in a config
 * file that may be world-readable or kept in version control).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/load.h"

static const struct conf_key admin_http_keys[] = {
    {.name = "listen",
     .set = conf_set_addr,
     .off = offsetof(struct conf_global, admin_http_listen),
     .flags = CONF_K_REQUIRED},
    {.name = "token_file",
     .set = conf_set_file,
     .off = offsetof(struct conf_global, admin_http_token_file),
     .flags = CONF_K_REQUIRED},
    {.name = NULL},
};

/* Reads the token: its first line, without trailing blanks, CONF_TOKEN_MIN..CONF_TOKEN_MAX
 * visible ASCII characters. Returns 0 or -EINVAL with the reason at @n. */
static int read_token(struct conf_ctx *x, const struct conf_node *n, struct conf_global *g)
{
    char buf[CONF_TOKEN_MAX + 2];
    int fd = open(g->admin_http_token_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        conf_err(x, n->pos, "cannot read the token file %s: %s", g->admin_http_token_file,
                 strerror(errno));
        return -EINVAL;
    }
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len < 0)
        len = 0;
    buf[len] = 0;
    size_t k = strcspn(buf, "\r\n");
    if (buf[k] == 0 && (size_t)len == sizeof(buf) - 1)
        k = sizeof(buf); /* no line end within the limit: too long */
    while (k && k <= CONF_TOKEN_MAX && (buf[k - 1] == ' ' || buf[k - 1] == '\t'))
        k--;
    bool ok = k >= CONF_TOKEN_MIN && k <= CONF_TOKEN_MAX;
    for (size_t i = 0; ok && i < k; i++)
        ok = (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f;
    if (!ok) {
        conf_err(x, n->pos,
                 "the token in %s must be one line of %d to %d visible ASCII characters "
                 "(e.g. openssl rand -hex 32 > FILE)",
                 g->admin_http_token_file, CONF_TOKEN_MIN, CONF_TOKEN_MAX);
        memset(buf, 0, sizeof(buf));
        return -EINVAL;
    }
    g->admin_http_token = strndup(buf, k);
    memset(buf, 0, sizeof(buf));
    if (!g->admin_http_token) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int conf_set_admin_http(struct conf_ctx *x, const struct conf_node *n, void *field,
                        const struct conf_key *k)
{
    struct conf_global *g = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    if (conf_map(x, n, g, admin_http_keys, seen) < 0)
        return -EINVAL;
    const struct conf_seen *l = conf_seen_get(admin_http_keys, seen, "listen");
    const struct conf_seen *t = conf_seen_get(admin_http_keys, seen, "token_file");
    if (!l->key || l->bad || !t->key || t->bad)
        return -EINVAL;
    if (read_token(x, t->val, g) < 0)
        return -EINVAL;
    g->has_admin_http = true;
    g->admin_http_pos = l->val->pos;
    return 0;
}

/* For conf_keys_each() (keys.c). */
const struct conf_key_root conf_roots_admin[] = {{"global.admin.http", admin_http_keys},
                                                 {NULL, NULL}};
