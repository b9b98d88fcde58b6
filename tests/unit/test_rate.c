/*
 * bench-rate's response framing (tools/bench/rate_rsp.c): each well-formed stream of
 * responses is fed whole and then one byte at a time (as a slow server sends it), and must
 * end each response exactly where it ends; malformed heads and chunk lines are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tools/bench/rate.h"

/* Feeds @s to a fresh parser in pieces of @piece bytes, as bench-rate does (a buffer, the
 * bytes taken removed). Stores the statuses of the responses that ended in @st, and returns
 * how many ended, or -1 once the parser refused the stream. *@left: bytes never taken. */
static int feed(const char *s, size_t piece, int *st, size_t *left)
{
    static char buf[RATE_BUF];
    struct rate_rsp r = {0};
    size_t len = 0, at = 0, n = strlen(s);
    int done = 0;

    while (at < n) {
        size_t take = n - at < piece ? n - at : piece, used = 0;
        memcpy(buf + len, s + at, take);
        at += take;
        len += take;
        for (;;) {
            int rc = rate_rsp_feed(&r, buf, len, &used);
            if (rc < 0)
                return -1;
            memmove(buf, buf + used, len - used);
            len -= used;
            if (rc == 0)
                break;
            st[done++] = r.status;
        }
    }
    *left = len;
    return done;
}

static void both(const char *s, int want, const int *statuses)
{
    int st[16];
    size_t left;
    for (size_t piece = 1; piece <= strlen(s); piece = piece == 1 ? strlen(s) : piece + 1) {
        assert_int_equal(feed(s, piece, st, &left), want);
        assert_int_equal(left, 0);
        for (int i = 0; i < want; i++)
            assert_int_equal(st[i], statuses[i]);
    }
}

static void test_content_length(void **state)
{
    int st[] = {200, 202, 503};
    both("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
         "HTTP/1.1 202 Accepted\r\ncontent-length:  2\r\nX: y\r\n\r\n{}"
         "HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
         3, st);
}

static void test_chunked(void **state)
{
    int st[] = {200, 200};
    both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n"
         "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
         2, st);
}

static void test_no_body(void **state)
{
    /* A 1xx is skipped; 204 and 304 have no body whatever their headers say. */
    int st[] = {204, 304, 200};
    both("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
         "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
         3, st);
}

static void test_until_close(void **state)
{
    struct rate_rsp r = {0};
    const char *s = "HTTP/1.1 200 OK\r\n\r\nbody until the server closes";
    size_t used;
    assert_int_equal(rate_rsp_feed(&r, s, strlen(s), &used), 0);
    assert_int_equal(used, strlen(s));
    assert_int_equal(r.st, RATE_RSP_UNTIL_EOF);
    assert_int_equal(r.close, 1);

    struct rate_rsp r10 = {0};
    const char *h10 = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(rate_rsp_feed(&r10, h10, strlen(h10), &used), 1);
    assert_int_equal(r10.close, 1);
    struct rate_rsp rc = {0};
    const char *c = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(rate_rsp_feed(&rc, c, strlen(c), &used), 1);
    assert_int_equal(rc.close, 1);
}

static void test_malformed(void **state)
{
    static const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 99 Low\r\n\r\n",
        "HTTP/1.1 600 High\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n12",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n",
    };
    int st[16];
    size_t left;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (feed(bad[i], strlen(bad[i]), st, &left) != -1)
            fail_msg("accepted: %s", bad[i]);
        if (feed(bad[i], 1, st, &left) != -1)
            fail_msg("accepted byte by byte: %s", bad[i]);
    }
}

static void test_head_too_big(void **state)
{
    size_t n = RATE_BUF + 64;
    char *s = malloc(n + 1);
    int st[4];
    size_t left;
    assert_non_null(s);
    memset(s, 'a', n);
    memcpy(s, "HTTP/1.1 200 OK\r\nX: ", 20);
    s[n] = '\0';
    assert_int_equal(feed(s, 4096, st, &left), -1);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length), cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_no_body),        cmocka_unit_test(test_until_close),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_head_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
