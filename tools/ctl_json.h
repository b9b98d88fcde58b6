/*
 * A small JSON reader for lbctl: enough to read the admin socket's answers (objects, arrays,
 * strings, numbers, true/false/null) into a tree. Written for hostile input too (it is
 * fuzzed): nesting is capped, every read is bounds-checked, nothing is read past @len.
 */
#ifndef TOOLS_CTL_JSON_H
#define TOOLS_CTL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_JSON_MAX_DEPTH 64

enum ctl_json_type {
    CTL_JSON_NULL,
    CTL_JSON_BOOL,
    CTL_JSON_NUM,
    CTL_JSON_STR,
    CTL_JSON_ARR,
    CTL_JSON_OBJ,
};

struct ctl_json {
    enum ctl_json_type type;
    char *key;              /* member name inside an object, else NULL */
    char *str;              /* CTL_JSON_STR: decoded, NUL-terminated (a \u0000 ends it early) */
    double num;             /* CTL_JSON_NUM */
    bool b;                 /* CTL_JSON_BOOL */
    struct ctl_json *child; /* first element or member */
    struct ctl_json *next;  /* next sibling */
};

/*
 * Parses exactly one JSON value from @s (@len bytes, need not be NUL-terminated), with only
 * whitespace around it. Returns a tree for ctl_json_free(), or NULL with a reason in @err
 * (@errlen bytes, may be 0).
 */
struct ctl_json *ctl_json_parse(const char *s, size_t len, char *err, size_t errlen);
void ctl_json_free(struct ctl_json *v);

/* The member @key of object @obj, or NULL (also when @obj is NULL or not an object). */
const struct ctl_json *ctl_json_get(const struct ctl_json *obj, const char *key);

/* Typed lookups with a fallback for a missing member or a wrong type. */
const char *ctl_json_str(const struct ctl_json *obj, const char *key, const char *dflt);
double ctl_json_num(const struct ctl_json *obj, const char *key, double dflt);
bool ctl_json_bool(const struct ctl_json *obj, const char *key, bool dflt);

/* Writes code point @cp (at most U+10FFFF, not a surrogate: the caller checked) as UTF-8 at
 * @o, which has room for 4 bytes; returns the bytes written. */
size_t ctl_utf8_put(char *o, uint32_t cp);

/* @b bytes for people: "512", "1.5K", "3.2M" ... (powers of 1024) into @out (@len bytes). */
void ctl_human_bytes(char *out, size_t len, double b);

#endif
