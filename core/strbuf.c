/* strbuf.c: the core's one growable text buffer (strbuf.h). A failed
 * allocation is remembered in the buffer, not reported at once, so that a
 * message or a file is built without a check after every piece. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* Room for extra more bytes and a NUL; 0 when that cannot be had. */
static int reserve(wgf_strbuf *b, size_t extra)
{
    if (b->failed)
        return 0;
    if (extra >= (size_t)-1 - b->len - 1) {
        b->failed = 1;
        return 0;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return 0;
    }
    b->s = s;
    b->cap = cap;
    return 1;
}

void wgf_strbuf_addn(wgf_strbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void wgf_strbuf_add(wgf_strbuf *b, const char *s) { wgf_strbuf_addn(b, s, strlen(s)); }

/* Formatted straight into the room left, and a second time only when it
 * does not fit: formatting (the samples' CSV, the history) is most of the
 * cost, and the room is mostly enough. */
void wgf_strbuf_vprintf(wgf_strbuf *b, const char *fmt, va_list ap)
{
    if (b->failed)
        return;
    size_t room = b->cap - b->len; /* with the terminating NUL; 0 before the first reserve */
    va_list ap2;
    va_copy(ap2, ap);
    int k = vsnprintf(room ? b->s + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (k < 0) {
        b->failed = 1;
        if (room)
            b->s[b->len] = '\0';
        return;
    }
    if ((size_t)k >= room) {
        if (!reserve(b, (size_t)k)) {
            if (room)
                b->s[b->len] = '\0'; /* drop what the first try left */
            return;
        }
        vsnprintf(b->s + b->len, (size_t)k + 1, fmt, ap);
    }
    b->len += (size_t)k;
}

void wgf_strbuf_printf(wgf_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wgf_strbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 strbuf_u128;

/* round(|v| 10^k) to the nearest integer, ties to even, exactly: |v| = m 2^-s
 * with m < 2^53 (normal v, s >= 1), and m 10^k < 2^117 for k <= 19. */
static uint64_t scaled_round(uint64_t m, int s, int k)
{
    static const uint64_t pow10[20] = {
        UINT64_C(1), UINT64_C(10), UINT64_C(100), UINT64_C(1000), UINT64_C(10000), UINT64_C(100000),
        UINT64_C(1000000), UINT64_C(10000000), UINT64_C(100000000), UINT64_C(1000000000),
        UINT64_C(10000000000), UINT64_C(100000000000), UINT64_C(1000000000000),
        UINT64_C(10000000000000), UINT64_C(100000000000000), UINT64_C(1000000000000000),
        UINT64_C(10000000000000000), UINT64_C(100000000000000000), UINT64_C(1000000000000000000),
        UINT64_C(10000000000000000000)};
    strbuf_u128 p = (strbuf_u128)m * pow10[k], half = (strbuf_u128)1 << (s - 1);
    strbuf_u128 q = p >> s, r = p & ((half << 1) - 1);
    if (r > half || (r == half && (q & 1)))
        q++;
    return (uint64_t)q;
}

/* v as "%.10g" writes it, into out (at least 24 bytes), without printf when
 * the decimal exponent X of v to 10 digits is in [-10, 9] (%g's fixed form
 * for X >= -4, its exponent form below); the length, or 0 for the other
 * cases (zero, non-finite, |v| outside about [1e-10, 1e10)). The samples
 * files are 10 such numbers a row, and printf's exact conversion through
 * multiple precision was most of their cost. */
static size_t format_g10(double v, char *out)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int be = (int)((bits >> 52) & 0x7ff); /* biased exponent: |v| = m 2^(be - 1075) */
    uint64_t m = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
    int s = 1075 - be;
    /* |v| in [2^-33, 2^33): s in [20, 85], and 10^-10 < 2^-33, 2^33 < 10^10 */
    if (be == 0 || s < 20 || s > 85)
        return 0;
    /* floor(log10 |v|) or one less: log10(2) = 0.30103, rounded down here */
    int x = (int)floor((double)(52 - s) * 0.30102999566398119);
    uint64_t n = 0;
    for (int tries = 0; tries < 3; tries++) {
        if (x < -10 || x > 9)
            return 0;
        n = scaled_round(m, s, 9 - x);
        if (n >= UINT64_C(10000000000))
            x++;
        else if (n < UINT64_C(1000000000))
            x--;
        else
            break;
    }
    if (n < UINT64_C(1000000000) || n >= UINT64_C(10000000000))
        return 0;
    char dig[10];
    uint32_t hi = (uint32_t)(n / 100000), lo = (uint32_t)(n % 100000);
    for (int i = 4; i >= 0; i--) {
        dig[i] = (char)('0' + hi % 10);
        dig[i + 5] = (char)('0' + lo % 10);
        hi /= 10;
        lo /= 10;
    }
    int nd = 10; /* significant digits left once trailing zeros go */
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    size_t len = 0;
    if (bits >> 63)
        out[len++] = '-';
    if (x >= 0) { /* ddd.ddd: x + 1 digits before the point */
        for (int i = 0; i <= x; i++)
            out[len++] = dig[i];
        if (nd > x + 1) {
            out[len++] = '.';
            for (int i = x + 1; i < nd; i++)
                out[len++] = dig[i];
        }
    } else if (x >= -4) { /* 0.000ddd */
        out[len++] = '0';
        out[len++] = '.';
        for (int i = 0; i < -x - 1; i++)
            out[len++] = '0';
        for (int i = 0; i < nd; i++)
            out[len++] = dig[i];
    } else { /* d.ddde-XX, x in [-10, -5] */
        out[len++] = dig[0];
        if (nd > 1) {
            out[len++] = '.';
            for (int i = 1; i < nd; i++)
                out[len++] = dig[i];
        }
        out[len++] = 'e';
        out[len++] = '-';
        out[len++] = (char)('0' + (-x) / 10);
        out[len++] = (char)('0' + (-x) % 10);
    }
    out[len] = '\0';
    return len;
}
#else
static size_t format_g10(double v, char *out)
{
    (void)v;
    (void)out;
    return 0;
}
#endif

void wgf_strbuf_g10(wgf_strbuf *b, double v)
{
    char buf[32];
    size_t k = format_g10(v, buf);
    if (k == 0) {
        wgf_strbuf_printf(b, "%.10g", v);
        return;
    }
    wgf_strbuf_addn(b, buf, k);
}

char *wgf_strbuf_take(wgf_strbuf *b)
{
    if (b->failed) {
        wgf_strbuf_free(b);
        return NULL;
    }
    char *s = b->s;
    if (!s) {
        s = malloc(1);
        if (s)
            s[0] = '\0';
    }
    memset(b, 0, sizeof *b);
    return s;
}

void wgf_strbuf_free(wgf_strbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}
