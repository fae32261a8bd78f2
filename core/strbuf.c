/* strbuf.c: the core's one growable text buffer (strbuf.h). A failed
 * allocation is remembered in the buffer, not reported at once, so that a
 * message or a file is built without a check after every piece. */
#include <stdarg.h>
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
