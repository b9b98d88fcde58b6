/*
 * The status page: lb/metrics/page.html, assembled into this object (.incbin; the Makefile
 * rebuilds it when the HTML changes), served with the current /stats JSON written in place of
 * its marker so that it renders at once, before its first fetch.
 */
#include <stdbool.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/metrics/metrics.h"

/* The file's bytes between page_html and page_html_end, NUL-terminated. Paths are relative to
 * the top of the tree, where make runs the compiler. */
__asm__(".section .rodata\n"
        ".balign 16\n"
        "page_html:\n"
        ".incbin \"lb/metrics/page.html\"\n"
        "page_html_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const char page_html[], page_html_end[];

#define PAGE_MARKER "/*STATS*/null"

void metrics_page(struct lb_runtime *rt, const double *const *rates, bool admin,
                  struct lb_jbuf *out)
{
    struct lb_jbuf json;
    lb_jbuf_init(&json, out->max);
    metrics_json(rt, rates, &json);
    const char *mark = strstr(page_html, PAGE_MARKER);
    if (json.overflow || !mark) {
        out->overflow = true;
        lb_jbuf_free(&json);
        return;
    }
    lb_jbuf_printf(out, "%.*s", (int)(mark - page_html), page_html);
    /* The page shows drain buttons when the JSON says so: only on the admin address. */
    if (admin && json.len && json.p[json.len - 1] == '}') {
        json.len--;
        lb_jbuf_printf(&json, ",\"admin\":true}");
    }
    /* Inside <script>, "</" could end the element early; JSON may spell it "<\/". Names are
     * restricted by the config, but the page should not depend on that. */
    size_t start = 0;
    for (size_t i = 0; i + 1 < json.len; i++) {
        if (json.p[i] == '<' && json.p[i + 1] == '/') {
            lb_jbuf_printf(out, "%.*s<\\", (int)(i - start), json.p + start);
            start = i + 1;
        }
    }
    const char *rest = mark + strlen(PAGE_MARKER);
    lb_jbuf_printf(out, "%.*s%.*s", (int)(json.len - start), json.p + start,
                   (int)(page_html_end - rest), rest);
    lb_jbuf_free(&json);
}
