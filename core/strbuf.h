/* strbuf.h: the core's growable text buffer, for messages, CSV rows, INI
 * files and gnuplot scripts. Start from {0}; the text s is NUL-terminated
 * once anything was added. An allocation failure sets failed and makes every
 * later call a no-op, so the caller checks once, at the end. */
#ifndef WGF_STRBUF_H
#define WGF_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define WGF_STRBUF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define WGF_STRBUF_PRINTF(f, a)
#endif

typedef struct wgf_strbuf {
    char *s;
    size_t len, cap;
    int failed; /* an allocation failed: the content is incomplete */
} wgf_strbuf;

/* n bytes of s (which need not be NUL-terminated), or the string s. */
void wgf_strbuf_addn(wgf_strbuf *b, const char *s, size_t n);
void wgf_strbuf_add(wgf_strbuf *b, const char *s);
void wgf_strbuf_printf(wgf_strbuf *b, const char *fmt, ...) WGF_STRBUF_PRINTF(2, 3);
void wgf_strbuf_vprintf(wgf_strbuf *b, const char *fmt, va_list ap) WGF_STRBUF_PRINTF(2, 0);
/* v as "%.10g" formats it (the same characters, faster). */
void wgf_strbuf_g10(wgf_strbuf *b, double v);
/* The text, now owned by the caller ("" when nothing was added), and the
 * buffer emptied; NULL (and the buffer freed) when an allocation failed. */
char *wgf_strbuf_take(wgf_strbuf *b);
void wgf_strbuf_free(wgf_strbuf *b);

#endif
