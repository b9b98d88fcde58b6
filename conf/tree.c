/*
 * From bytes to a tree of YAML nodes with positions. Two passes: conf_text_check() proves the
 * bytes are UTF-8 that YAML accepts, reporting every bad byte at its line and column (libyaml
 * stops at the first and gives only a byte offset); conf_tree_parse() then reads libyaml's
 * events into struct conf_node, enforcing the limits that keep a hostile file cheap: no
 * aliases (so no "billion laughs"), nesting at most CONF_MAX_DEPTH, at most CONF_MAX_NODES
 * values, one document. It also marks duplicate mapping keys so the loader can name them.
 *
 * Positions follow libyaml's: lines split at LF, CR, CRLF, U+0085, U+2028 and U+2029, and a
 * column counts characters, not bytes, both 1-based here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "conf/internal.h"

/* Decodes one UTF-8 character at @p (@n bytes left). Returns its length, or 0 when the bytes
 * are not a well-formed, shortest-form encoding of a scalar value. */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    uint32_t c = p[0], min;
    size_t len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* The characters libyaml's reader accepts (YAML 1.1 "printable"). */
static bool yaml_printable(uint32_t c)
{
    return c == 0x09 || c == 0x0a || c == 0x0d || (c >= 0x20 && c <= 0x7e) || c == 0x85 ||
           (c >= 0xa0 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) ||
           (c >= 0x10000 && c <= 0x10ffff);
}

int conf_text_check(const char *buf, size_t len, struct conf_diags *d)
{
    const unsigned char *p = (const unsigned char *)buf;
    struct conf_pos pos = {1, 1};
    int rc = 0;

    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t n = utf8_decode(p + i, len - i, &c);
        if (n == 0) {
            conf_diag(d, pos, "invalid UTF-8 (byte 0x%02x): the file must be UTF-8 text", p[i]);
            rc = -EINVAL;
            i++; /* resynchronise on the next byte */
            pos.col++;
            continue;
        }
        if (c == 0) {
            conf_diag(d, pos, "NUL byte: the file must be text");
            rc = -EINVAL;
        } else if (!yaml_printable(c)) {
            conf_diag(d, pos, "control character U+%04X is not allowed in YAML", c);
            rc = -EINVAL;
        }
        i += n;
        if (c == '\r' && i < len && p[i] == '\n') {
            i++;
            c = '\n';
        }
        if (c == '\n' || c == '\r' || c == 0x85 || c == 0x2028 || c == 0x2029) {
            pos.line++;
            pos.col = 1;
        } else {
            pos.col++;
        }
    }
    return rc;
}

static struct conf_pos pos_of(yaml_mark_t m)
{
    struct conf_pos p = {(uint32_t)m.line + 1, (uint32_t)m.column + 1};
    return p;
}

struct builder {
    struct conf_diags *d;
    struct conf_node *root;
    struct conf_node *stack[CONF_MAX_DEPTH];
    size_t depth;
    size_t nnodes;
    size_t ndocs;
};

void conf_tree_free(struct conf_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        conf_tree_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

static struct conf_node *node_new(struct builder *b, enum conf_node_kind kind, yaml_mark_t m)
{
    if (++b->nnodes > CONF_MAX_NODES)
        return NULL;
    struct conf_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->kind = kind;
    n->pos = pos_of(m);
    return n;
}

/* Hangs @n under the open collection (or makes it the root). Takes @n. */
static int attach(struct builder *b, struct conf_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    struct conf_node *parent = b->stack[b->depth - 1];
    if ((parent->nkids & (parent->nkids - 1)) == 0) { /* 0, 1, 2, 4...: grow at powers of 2 */
        size_t cap = parent->nkids ? parent->nkids * 2 : 4;
        struct conf_node **k = realloc(parent->kids, cap * sizeof(*k));
        if (!k) {
            conf_tree_free(n);
            return -ENOMEM;
        }
        parent->kids = k;
    }
    /* An empty value ("key:" and nothing) gets libyaml's position of whatever follows, often
     * the next line; pointing at its key reads better. */
    if (parent->kind == CONF_NODE_MAP && parent->nkids % 2 == 1 && n->kind == CONF_NODE_SCALAR &&
        n->len == 0 && !n->quoted)
        n->pos = parent->kids[parent->nkids - 1]->pos;
    parent->kids[parent->nkids++] = n;
    return 0;
}

/* Reports anchors and tags: anchors only serve aliases, which we refuse, and tags would let
 * a file change how a value is typed behind the schema's back. The node stays usable. */
static void check_props(struct builder *b, const yaml_event_t *ev, const yaml_char_t *anchor,
                        const yaml_char_t *tag)
{
    char q[48];
    if (anchor)
        conf_diag(b->d, pos_of(ev->start_mark),
                  "anchor '&%s': anchors and aliases are not supported; write the value out",
                  conf_quote(q, sizeof(q), (const char *)anchor, strlen((const char *)anchor)));
    if (tag)
        conf_diag(b->d, pos_of(ev->start_mark), "tag '%s': YAML tags are not supported",
                  conf_quote(q, sizeof(q), (const char *)tag, strlen((const char *)tag)));
}

struct key_ref {
    const struct conf_node *key;
    size_t idx;
};

static int key_cmp(const void *pa, const void *pb)
{
    const struct key_ref *a = pa, *b = pb;
    size_t n = a->key->len < b->key->len ? a->key->len : b->key->len;
    int r = memcmp(a->key->str, b->key->str, n);
    if (r)
        return r;
    if (a->key->len != b->key->len)
        return a->key->len < b->key->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* A mapping is complete: refuse non-scalar keys, and point each repeated key at its first
 * occurrence. Sorting keeps this O(n log n) however many keys a file throws at us. */
static int close_map(struct builder *b, struct conf_node *m)
{
    size_t npairs = m->nkids / 2, nk = 0;
    if (npairs < 2) {
        if (npairs == 1 && m->kids[0]->kind != CONF_NODE_SCALAR && !m->kids[0]->bad) {
            conf_diag(b->d, m->kids[0]->pos, "a mapping key must be a plain string");
            m->kids[0]->bad = true;
        }
        return 0;
    }
    struct key_ref *refs = malloc(npairs * sizeof(*refs));
    if (!refs)
        return -ENOMEM;
    for (size_t i = 0; i < npairs; i++) {
        struct conf_node *k = m->kids[2 * i];
        if (k->kind != CONF_NODE_SCALAR) {
            if (!k->bad)
                conf_diag(b->d, k->pos, "a mapping key must be a plain string");
            k->bad = true;
            continue;
        }
        if (!k->bad)
            refs[nk++] = (struct key_ref){k, i};
    }
    qsort(refs, nk, sizeof(*refs), key_cmp);
    for (size_t i = 1; i < nk; i++) {
        const struct conf_node *prev = refs[i - 1].key, *cur = refs[i].key;
        if (cur->len == prev->len && !memcmp(cur->str, prev->str, cur->len))
            m->kids[2 * refs[i].idx]->dup_of = prev->dup_of ? prev->dup_of : prev;
    }
    free(refs);
    return 0;
}

static void syntax_error(struct builder *b, const yaml_parser_t *p)
{
    char ctx[96] = "";
    if (p->error == YAML_MEMORY_ERROR) {
        conf_diag(b->d, (struct conf_pos){1, 1}, "out of memory while parsing YAML");
        return;
    }
    struct conf_pos at = pos_of(p->problem_mark);
    if (p->error == YAML_READER_ERROR) {
        /* conf_text_check should have caught it; libyaml gives only an offset here. */
        at = (struct conf_pos){1, 1};
    }
    if (p->context)
        snprintf(ctx, sizeof(ctx), " (%s at %u:%u)", p->context, (unsigned)p->context_mark.line + 1,
                 (unsigned)p->context_mark.column + 1);
    conf_diag(b->d, at, "YAML syntax error: %s%s", p->problem ? p->problem : "unknown problem",
              ctx);
}

/* node_new() returned NULL: past CONF_MAX_NODES (reported here) or out of memory. Returns
 * -EINVAL or -ENOMEM. */
static int node_new_failed(struct builder *b, const yaml_event_t *ev)
{
    if (b->nnodes > CONF_MAX_NODES) {
        conf_diag(b->d, pos_of(ev->start_mark), "more than %d values in one file", CONF_MAX_NODES);
        return -EINVAL;
    }
    return -ENOMEM;
}

/* An alias is refused, and stands in the tree as a bad empty scalar. */
static int on_alias(struct builder *b, const yaml_event_t *ev)
{
    struct conf_node *n;
    char q[48];
    const char *a = (const char *)ev->data.alias.anchor;
    conf_diag(b->d, pos_of(ev->start_mark),
              "alias '*%s': anchors and aliases are not supported; write the value out",
              conf_quote(q, sizeof(q), a, strlen(a)));
    if (!(n = node_new(b, CONF_NODE_SCALAR, ev->start_mark)) || !(n->str = strdup(""))) {
        conf_tree_free(n);
        return -ENOMEM;
    }
    n->bad = true;
    return attach(b, n) < 0 ? -ENOMEM : 1;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    struct conf_node *n;
    check_props(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
    if (!(n = node_new(b, CONF_NODE_SCALAR, ev->start_mark)))
        return node_new_failed(b, ev);
    n->len = ev->data.scalar.length;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (!(n->str = malloc(n->len + 1))) {
        conf_tree_free(n);
        return -ENOMEM;
    }
    memcpy(n->str, ev->data.scalar.value, n->len);
    n->str[n->len] = '\0';
    if (memchr(n->str, '\0', n->len)) { /* "\0" escapes in double quotes */
        conf_diag(b->d, n->pos, "a value must not contain NUL characters");
        n->bad = true;
    }
    return attach(b, n) < 0 ? -ENOMEM : 1;
}

/* The start of a mapping or a sequence: attached, then pushed until its end event. */
static int on_collection_start(struct builder *b, const yaml_event_t *ev)
{
    struct conf_node *n;
    int rc;
    bool map = ev->type == YAML_MAPPING_START_EVENT;
    if (map)
        check_props(b, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
    else
        check_props(b, ev, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
    if (b->depth == CONF_MAX_DEPTH) {
        conf_diag(b->d, pos_of(ev->start_mark),
                  "nesting is deeper than %d levels; no lb config needs that", CONF_MAX_DEPTH);
        return -EINVAL;
    }
    if (!(n = node_new(b, map ? CONF_NODE_MAP : CONF_NODE_SEQ, ev->start_mark)))
        return node_new_failed(b, ev);
    if (!(n->str = strdup(""))) {
        conf_tree_free(n);
        return -ENOMEM;
    }
    if ((rc = attach(b, n)) < 0)
        return rc;
    b->stack[b->depth++] = n;
    return 1;
}

/* Handles one event. Returns 1 to go on, 0 at the end of the stream, -errno to stop. */
static int on_event(struct builder *b, const yaml_event_t *ev)
{
    struct conf_node *n;

    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 1;
    case YAML_STREAM_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1) {
            conf_diag(b->d, pos_of(ev->start_mark),
                      "a second YAML document: the config must be a single document");
            return -EINVAL;
        }
        return 1;
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, ev);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth == 0)
            return -EINVAL; /* libyaml never does this; be safe anyway */
        n = b->stack[--b->depth];
        if (n->kind == CONF_NODE_MAP && close_map(b, n) < 0)
            return -ENOMEM;
        return 1;
    }
    return 1;
}

int conf_tree_parse(const char *buf, size_t len, struct conf_diags *d, struct conf_node **root)
{
    struct builder b = {.d = d};
    yaml_parser_t p;
    int rc = 0;

    *root = NULL;
    if (!yaml_parser_initialize(&p)) {
        conf_diag(d, (struct conf_pos){1, 1}, "out of memory");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    /* Never guess UTF-16 from a byte order mark: the file is UTF-8 (conf_text_check). */
    yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(&b, &p);
            rc = -EINVAL;
            break;
        }
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (rc <= 0)
            break;
    }
    if (rc == -ENOMEM)
        conf_diag(d, (struct conf_pos){1, 1}, "out of memory");
    yaml_parser_delete(&p);
    *root = b.root;
    return rc < 0 ? rc : 0;
}
