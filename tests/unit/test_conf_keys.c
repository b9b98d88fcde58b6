/*
 * The manual cannot drift from the config checker: every key path conf_keys_each() gives (the
 * loader's own tables) has an entry in packaging/man/lb.yaml.5's KEYS section, with a default
 * and an example, and every entry there is a key the loader accepts. A table added to conf/
 * without a place in conf_keys_each() is caught by counting the tables in the .c files of conf/.
 * Run from the top of the checkout (tests/run.sh does).
 */
#include <dirent.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"

#define MAN_PAGE "packaging/man/lb.yaml.5"
#define MAX_KEYS 512
#define KEY_MAX 160

struct key_list {
    char keys[MAX_KEYS][KEY_MAX];
    size_t n;
};

static int has(const struct key_list *l, const char *k)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->keys[i], k))
            return 1;
    return 0;
}

static int add_key(const char *path, void *arg)
{
    struct key_list *l = arg;
    if (has(l, path)) {
        fprintf(stderr, "conf_keys_each gave '%s' twice\n", path);
        return -1;
    }
    if (l->n == MAX_KEYS)
        return -1;
    snprintf(l->keys[l->n++], KEY_MAX, "%s", path);
    return 0;
}

/* Copies the troff text @s without font escapes (\fB, \fI, \fR, \fP) and with \- as -. */
static void untroff(char *out, size_t size, const char *s)
{
    size_t o = 0;
    while (*s && o + 1 < size) {
        if (s[0] == '\\' && s[1] == 'f' && s[2]) {
            s += 3;
        } else if (s[0] == '\\' && s[1] == '-') {
            out[o++] = '-';
            s += 2;
        } else if (*s == '"' || *s == '\n') {
            s++;
        } else {
            out[o++] = *s++;
        }
    }
    out[o] = 0;
}

/* The KEYS section's entries: ".TP" then ".B PATH"; each body needs "Default:" and
 * "Example:". Returns the number of malformed entries. */
static int read_man(struct key_list *l)
{
    FILE *f = fopen(MAN_PAGE, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s (run from the top of the checkout)\n", MAN_PAGE);
        return 1;
    }
    char line[1024], cur[KEY_MAX] = "";
    int in_keys = 0, after_tp = 0, has_default = 0, has_example = 0, bad = 0;
    for (;;) {
        char *got = fgets(line, sizeof(line), f);
        int end_entry = !got || !strncmp(line, ".TP", 3) || !strncmp(line, ".SH", 3) ||
                        !strncmp(line, ".SS", 3);
        if (end_entry && cur[0]) {
            if (!has_default || !has_example) {
                fprintf(stderr, "%s: key %s has no %s\n", MAN_PAGE, cur,
                        has_default ? "Example:" : "Default:");
                bad++;
            }
            cur[0] = 0;
        }
        if (!got)
            break;
        if (!strncmp(line, ".SH", 3)) {
            in_keys = strstr(line, "KEYS") != NULL;
            continue;
        }
        if (!in_keys)
            continue;
        if (after_tp && !strncmp(line, ".B ", 3)) {
            untroff(cur, sizeof(cur), line + 3);
            if (has(l, cur)) {
                fprintf(stderr, "%s: key %s documented twice\n", MAN_PAGE, cur);
                bad++;
            } else if (l->n < MAX_KEYS) {
                snprintf(l->keys[l->n++], KEY_MAX, "%s", cur);
            }
            has_default = has_example = 0;
        } else if (cur[0]) {
            has_default |= strstr(line, "Default:") != NULL;
            has_example |= strstr(line, "Example:") != NULL;
        }
        after_tp = !strncmp(line, ".TP", 3);
    }
    fclose(f);
    return bad;
}

static void test_man_matches_checker(void **state)
{
    static struct key_list code, man;
    size_t ntables = 0;
    assert_int_equal(conf_keys_each(add_key, &code, &ntables), 0);
    assert_true(code.n > 50); /* the walk found the nested tables, not just the top */
    assert_true(has(&code, "listeners[].tls.certificates[].cert"));
    assert_true(has(&code, "global.admin.socket"));
    assert_true(has(&code, "clusters.NAME.timeouts.connect"));

    int bad = read_man(&man);
    for (size_t i = 0; i < code.n; i++)
        if (!has(&man, code.keys[i])) {
            fprintf(stderr, "%s: key %s (known to conf/) is not documented\n", MAN_PAGE,
                    code.keys[i]);
            bad++;
        }
    for (size_t i = 0; i < man.n; i++)
        if (!has(&code, man.keys[i])) {
            fprintf(stderr, "%s: key %s is documented but conf/ does not accept it\n", MAN_PAGE,
                    man.keys[i]);
            bad++;
        }
    assert_int_equal(bad, 0);
    fprintf(stderr, "%zu keys from %zu tables, all documented\n", code.n, ntables);
}

/* Tables defined in conf/: "struct conf_key NAME[] =" in each .c file. */
static size_t count_tables(void)
{
    regex_t re;
    assert_int_equal(regcomp(&re, "struct conf_key [a-z_0-9]+\\[\\] =", REG_EXTENDED), 0);
    DIR *d = opendir("conf");
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".c"))
            continue;
        char path[512], line[1024];
        snprintf(path, sizeof(path), "conf/%s", e->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
            n += regexec(&re, line, 0, NULL, 0) == 0;
        fclose(f);
    }
    closedir(d);
    regfree(&re);
    return n;
}

static int ignore_key(const char *path, void *arg)
{
    return 0;
}

static void test_every_table_is_walked(void **state)
{
    size_t ntables = 0;
    assert_int_equal(conf_keys_each(ignore_key, NULL, &ntables), 0);
    size_t defined = count_tables();
    if (ntables != defined)
        fprintf(stderr,
                "conf/ defines %zu key tables but conf_keys_each walks %zu: add the new table "
                "to its file's conf_roots_* list\n",
                defined, ntables);
    assert_int_equal(ntables, defined);
}

static int stop_at(const char *path, void *arg)
{
    return !strcmp(path, arg) ? 7 : 0;
}

static void test_walk_stops_on_request(void **state)
{
    assert_int_equal(conf_keys_each(stop_at, "global.workers", NULL), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_man_matches_checker),
        cmocka_unit_test(test_every_table_is_walked),
        cmocka_unit_test(test_walk_stops_on_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
