/* lbctl cache purge and cache stats (tools/ctl_cache.c). */
#ifndef TOOLS_CTL_CACHE_H
#define TOOLS_CTL_CACHE_H

#include <stdbool.h>

struct ctl_json;

/*
 * Checks `cache ...` before anything is sent: @npos words in @pos (pos[0] is "cache"),
 * @host the --host value or NULL. Returns NULL, or a usage error to print.
 */
const char *ctl_cache_check(int npos, char *const *pos, const char *host);

/* Prints lb's answer @v to `cache purge` or `cache stats` (@sub) for people. */
void ctl_cache_print(const struct ctl_json *v, const char *sub);

#endif
