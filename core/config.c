/* config.c: experiment files, parameter schemas and typed sections (wgf/config.h).
 *
 * Syntax wgf accepts (the installed inih's rules, checked line by line with
 * small probes, plus what wgf adds; the value forms are listed in config.h):
 *
 *   [name]          a section. White space around name is ignored. A missing
 *                   ']', an empty name or text after ']' (other than a
 *                   comment) is a syntax error. A repeated header continues
 *                   the same section. A header may be indented (inih would
 *                   take an indented "[x]" after a key as part of its value).
 *   key = value     also `key: value`; the first '=' or ':' separates (so a
 *                   value may contain both: `sigma = blocks 2: ...`). Key and
 *                   value are trimmed; the value may be empty; quotes and
 *                   backslashes have no special meaning. A key before the
 *                   first header, or repeated within a section, is an error.
 *   ; comment       ';' or '#' as the first non-blank character. Blank lines
 *   # comment       are ignored.
 *   value ; note    ';' preceded by white space ends the value (inline
 *                   comment). '#' never does (`a = 1 # x` has the value
 *                   "1 # x"), nor does ';' right after a non-blank character
 *                   (`a = x;y` has the value "x;y").
 *   continuation    a line starting with white space continues the value of
 *                   the previous key, joined with one space, also across
 *                   blank and comment lines. Exception (not in inih): an
 *                   indented line of the form `name = ...` is a key, so
 *                   keys may be indented under their header (gitconfig style);
 *                   an indented `name: ...` still continues a value.
 *   anything else   "FILE:LINE: syntax error (expected [section], key = value
 *                   or a comment)"; parsing goes on, so every bad line is
 *                   reported. Continuation lines after a bad line are skipped.
 *
 * Lines may be of any length; CR LF line ends and a UTF-8 byte order mark
 * are accepted; a NUL byte makes its line a syntax error.
 *
 * How inih is used. The installed inih reads into a fixed line buffer of
 * INI_MAX_LINE = 200 bytes on the stack: a longer line is cut and its tail
 * read as a bogus line. It also truncates section names (and the key names it
 * repeats for continuation lines) to 49 characters, and reports only the
 * first bad line. So wgf feeds ini_parse_stream from its own reader
 * (read_piece), which takes whole physical lines from memory, counts them,
 * strips comments and handles headers, blank lines and syntax errors itself,
 * and hands inih only key lines and continuation lines. A line longer than
 * the buffer inih offers goes over in pieces: the key alone ("k="), then the
 * value in chunks, each presented as a continuation line " .CHUNK" (leading
 * white space: inih's multi-line values call the handler again; the '.'
 * keeps a chunk that starts with ';' or '#' from reading as a comment). The
 * reader records where each chunk was cut: inside a token (join with no
 * separator) or at white space (join with that white space, as written), so
 * a long value reads exactly as written. The handler (on_pair) builds values
 * from that record, not from inih's truncated names.
 *
 * No static limits: lines, names, values and messages live on the heap. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "wgf/config.h"

#if defined(__GNUC__)
#define CFG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CFG_PRINTF(f, a)
#endif

/* ================================================================ strings */

static char *str_ndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *str_dup(const char *s) { return str_ndup(s, strlen(s)); }

size_t wgf_mem_available(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t avail = SIZE_MAX;
    if (pages > 0 && page > 0 && __builtin_mul_overflow((size_t)pages, (size_t)page, &avail))
        avail = SIZE_MAX;
    const int limits[] = {RLIMIT_AS, RLIMIT_DATA};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        struct rlimit rl;
        if (getrlimit(limits[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < avail)
            avail = (size_t)rl.rlim_cur;
    }
    return avail;
}

/* n doubles, in bytes, when that fits in memory; 0 otherwise. */
static size_t doubles_fit(size_t n)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, sizeof(double), &bytes) || bytes > wgf_mem_available())
        return 0;
    return bytes;
}

static int is_blank(char c) { return isspace((unsigned char)c) != 0; }

static const char *skip_blank(const char *s)
{
    while (*s && is_blank(*s))
        s++;
    return s;
}

/* Remove trailing white space in place. */
static void rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1]))
        s[--n] = '\0';
}

/* End s at its inline comment: the first ';' preceded by white space. This
 * is inih's rule; applying it to the whole line gives the same result as
 * inih applying it to name and value separately, since the value scan starts
 * right after '=' (never white space). */
static void strip_inline_comment(char *s)
{
    if (!s[0])
        return;
    for (size_t i = 1; s[i]; i++)
        if (s[i] == ';' && is_blank(s[i - 1])) {
            s[i] = '\0';
            return;
        }
}

/* A growable string; an allocation failure is remembered, not reported at
 * every call. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static int sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom)
        return 0;
    if (b->len + extra + 1 <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

static void sb_vprintf(sbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (!sb_reserve(b, (size_t)n))
        return;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

static void sb_printf(sbuf *b, const char *fmt, ...) CFG_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* The string, owned by the caller; NULL if an allocation failed. */
static char *sb_take(sbuf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p ? b->p : str_dup("");
}

/* A user's value quoted for a message: shortened when long, so that a
 * 900-number matrix does not fill the screen. */
static void sb_quote(sbuf *b, const char *s, size_t n)
{
    const size_t max = 60;
    sb_add(b, "'");
    if (n > max) {
        sb_addn(b, s, max - 3);
        sb_add(b, "...");
    } else
        sb_addn(b, s, n);
    sb_add(b, "'");
}

/* Shortest %g text that reads back as x (range bounds in messages), with
 * the exponent as a user writes it: 1e-8, not 1e-08. */
static void fmt_number(char *buf, size_t size, double x)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    char *d = strchr(buf, 'e');
    if (!d)
        return;
    d++;
    if (*d == '+')
        memmove(d, d + 1, strlen(d)); /* drop the '+' */
    else if (*d == '-')
        d++;
    size_t z = 0;
    while (d[z] == '0' && d[z + 1])
        z++;
    memmove(d, d + z, strlen(d + z) + 1);
}

/* Optimal string alignment distance (edits and transpositions), ignoring
 * case: for "did you mean". SIZE_MAX when out of memory. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t m = strlen(a), n = strlen(b);
    size_t *d = malloc((m + 1) * (n + 1) * sizeof *d);
    if (!d)
        return (size_t)-1;
#define D(i, j) d[(i) * (n + 1) + (j)]
    for (size_t i = 0; i <= m; i++)
        D(i, 0) = i;
    for (size_t j = 0; j <= n; j++)
        D(0, j) = j;
    for (size_t i = 1; i <= m; i++)
        for (size_t j = 1; j <= n; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t best = D(i - 1, j - 1) + (ca != cb);
            if (D(i - 1, j) + 1 < best)
                best = D(i - 1, j) + 1;
            if (D(i, j - 1) + 1 < best)
                best = D(i, j - 1) + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && D(i - 2, j - 2) + 1 < best)
                best = D(i - 2, j - 2) + 1;
            D(i, j) = best;
        }
    size_t r = D(m, n);
#undef D
    free(d);
    return r;
}

/* Is word close enough to candidate to suggest it? One edit for short
 * names, two from 6 characters, three from 12. */
static int close_enough(const char *word, const char *candidate, size_t *dist)
{
    size_t len = strlen(candidate);
    size_t allowed = 1 + (len >= 6) + (len >= 12);
    *dist = edit_distance(word, candidate);
    return *dist <= allowed;
}

/* ================================================================ diag */

void wgf_diag_init(wgf_diag *d)
{
    if (!d)
        return;
    d->n = d->cap = 0;
    d->msg = NULL;
}

static void diag_take(wgf_diag *d, char *m)
{
    if (!m)
        m = str_dup("out of memory");
    if (!m)
        return;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        char **msg = realloc(d->msg, cap * sizeof *msg);
        if (!msg) {
            free(m);
            return;
        }
        d->msg = msg;
        d->cap = cap;
    }
    d->msg[d->n++] = m;
}

void wgf_diag_add(wgf_diag *d, const char *fmt, ...)
{
    if (!d)
        return;
    sbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    diag_take(d, sb_take(&b));
}

void wgf_diag_print(const wgf_diag *d, FILE *f, const char *prefix)
{
    if (!d || !f)
        return;
    for (size_t i = 0; i < d->n; i++)
        fprintf(f, "%s%s\n", prefix ? prefix : "", d->msg[i]);
}

void wgf_diag_free(wgf_diag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msg[i]);
    free(d->msg);
    wgf_diag_init(d);
}

/* ================================================================ the file */

typedef struct cfg_key {
    char *name, *value;
    size_t vlen, vcap; /* value grows as continuation lines arrive */
    int line;          /* 0: from --set */
    int from_set;
    int used;
} cfg_key;

typedef struct cfg_sec {
    char *name;
    int line; /* first header; 0: created by --set */
    size_t n, cap;
    cfg_key *keys;
} cfg_sec;

struct wgf_config {
    char *file;
    size_t n, cap;
    cfg_sec *secs; /* file order */
};

static cfg_sec *find_sec(const wgf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->secs[i].name, name) == 0)
            return &cfg->secs[i];
    return NULL;
}

static cfg_key *find_key(const cfg_sec *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i].name, name) == 0)
            return &s->keys[i];
    return NULL;
}

/* The section called name (n characters), created at the end if absent.
 * NULL when out of memory. */
static cfg_sec *get_sec(wgf_config *cfg, const char *name, size_t n, int line)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strlen(cfg->secs[i].name) == n && memcmp(cfg->secs[i].name, name, n) == 0)
            return &cfg->secs[i];
    if (cfg->n == cfg->cap) {
        size_t cap = cfg->cap ? 2 * cfg->cap : 8;
        cfg_sec *secs = realloc(cfg->secs, cap * sizeof *secs);
        if (!secs)
            return NULL;
        cfg->secs = secs;
        cfg->cap = cap;
    }
    cfg_sec *s = &cfg->secs[cfg->n];
    memset(s, 0, sizeof *s);
    s->name = str_ndup(name, n);
    if (!s->name)
        return NULL;
    s->line = line;
    cfg->n++;
    return s;
}

/* Append a key (name and value copied). NULL when out of memory. */
static cfg_key *add_key(cfg_sec *s, const char *name, const char *value, int line, int from_set)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        cfg_key *keys = realloc(s->keys, cap * sizeof *keys);
        if (!keys)
            return NULL;
        s->keys = keys;
        s->cap = cap;
    }
    cfg_key *k = &s->keys[s->n];
    memset(k, 0, sizeof *k);
    k->name = str_dup(name);
    k->vlen = strlen(value);
    k->vcap = k->vlen + 1;
    k->value = str_ndup(value, k->vlen);
    if (!k->name || !k->value) {
        free(k->name);
        free(k->value);
        return NULL;
    }
    k->line = line;
    k->from_set = from_set;
    s->n++;
    return k;
}

/* value += sep (ls characters) + piece. 0 when out of memory. */
static int append_value(cfg_key *k, const char *sep, size_t ls, const char *piece)
{
    size_t lp = strlen(piece);
    if (k->vlen + ls + lp + 1 > k->vcap) {
        size_t cap = 2 * k->vcap;
        if (cap < k->vlen + ls + lp + 1)
            cap = k->vlen + ls + lp + 1;
        char *v = realloc(k->value, cap);
        if (!v)
            return 0;
        k->value = v;
        k->vcap = cap;
    }
    memcpy(k->value + k->vlen, sep, ls);
    memcpy(k->value + k->vlen + ls, piece, lp + 1);
    k->vlen += ls + lp;
    return 1;
}

void wgf_config_free(wgf_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        cfg_sec *s = &cfg->secs[i];
        for (size_t j = 0; j < s->n; j++) {
            free(s->keys[j].name);
            free(s->keys[j].value);
        }
        free(s->keys);
        free(s->name);
    }
    free(cfg->secs);
    free(cfg->file);
    free(cfg);
}

/* ================================================================ parsing */

enum { PREV_NONE, PREV_KEY, PREV_DISCARD };       /* what an indented line continues */
enum { DLV_NONE, DLV_KEY, DLV_KEY_ALONE, DLV_PIECE }; /* what inih was handed last */

typedef struct parser {
    wgf_config *cfg;
    wgf_diag *diag;
    const char *name; /* file name for messages */
    const char *text;
    size_t len, pos;
    int lineno;                 /* physical line */
    char *line;                 /* the current physical line */
    size_t linecap, linelen;
    const char *rest;           /* the part of line still to hand over, in pieces */
    size_t restlen;
    const char *join, *next_join; /* what goes between the value and a piece */
    size_t joinlen, next_joinlen;
    int delivered;              /* the last hand-over, for the handler */
    int prev;                   /* PREV_*: what an indented line continues */
    cfg_sec *sec;               /* current section; NULL before the first header */
    int bad_sec;                /* after a bad header: skip its keys quietly */
    char *keyname;              /* full name of the current key line */
    int keyline;
    cfg_key *cur;               /* where continuation goes; NULL: discard */
    size_t nerr;
    int oom, fatal;
} parser;

static void parse_error(parser *p, const char *fmt, ...) CFG_PRINTF(2, 3);
static void parse_error(parser *p, const char *fmt, ...)
{
    sbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    p->nerr++;
    if (p->diag)
        diag_take(p->diag, sb_take(&b));
    else
        free(sb_take(&b));
}

static void syntax_error(parser *p)
{
    parse_error(p, "%s:%d: syntax error (expected [section], key = value or a comment)", p->name,
                p->lineno);
}

/* Copy the next physical line into p->line. 0 at the end of the text. */
static int next_line(parser *p)
{
    if (p->pos >= p->len)
        return 0;
    const char *s = p->text + p->pos;
    const char *nl = memchr(s, '\n', p->len - p->pos);
    size_t n = nl ? (size_t)(nl - s) : p->len - p->pos;
    p->pos += n + (nl != NULL);
    p->lineno++;
    if (n + 1 > p->linecap) {
        char *line = realloc(p->line, n + 1);
        if (!line) {
            p->oom = 1;
            return 0;
        }
        p->line = line;
        p->linecap = n + 1;
    }
    memcpy(p->line, s, n);
    p->line[n] = '\0';
    p->linelen = n;
    return 1;
}

/* Hand inih the next chunk of p->rest (which starts with a non-blank) as a
 * continuation line " .CHUNK". inih trims the chunk, so the white space
 * around the cut is kept aside as the join of the next chunk: empty when
 * the cut fell inside a token, the blanks as written when it fell at white
 * space. The pieces thus add up to the line exactly. */
static char *give_piece(parser *p, char *str, size_t room)
{
    size_t k = p->restlen < room ? p->restlen : room;
    const char *chunk = p->rest, *end = chunk + k;
    str[0] = ' ';
    str[1] = '.';
    memcpy(str + 2, chunk, k);
    str[k + 2] = '\n';
    str[k + 3] = '\0';
    p->delivered = DLV_PIECE;
    p->join = p->next_join;
    p->joinlen = p->next_joinlen;
    p->restlen -= k;
    const char *j = end, *q = end;
    while (j > chunk && is_blank(j[-1]))
        j--;
    while (p->restlen > 0 && is_blank(*q)) {
        q++;
        p->restlen--;
    }
    p->rest = q;
    p->next_join = j;
    p->next_joinlen = (size_t)(q - j);
    return str;
}

/* `[name]` at t (comments already stripped). */
static void section_header(parser *p, const char *t)
{
    p->prev = PREV_NONE;
    const char *close = strchr(t, ']');
    const char *a = skip_blank(t + 1), *b = close;
    while (close && b > a && is_blank(b[-1]))
        b--;
    if (!close || b == a) {
        syntax_error(p);
        p->sec = NULL;
        p->bad_sec = 1;
        return;
    }
    if (*skip_blank(close + 1))
        syntax_error(p); /* but the section is clear: check its keys */
    p->sec = get_sec(p->cfg, a, (size_t)(b - a), p->lineno);
    p->bad_sec = 0;
    if (!p->sec)
        p->oom = 1;
}

/* An indented `name = ...`: a key, not a continuation. */
static int looks_like_key(const char *t)
{
    if (!isalpha((unsigned char)*t) && *t != '_')
        return 0;
    while (isalnum((unsigned char)*t) || *t == '_' || *t == '-' || *t == '.')
        t++;
    return *skip_blank(t) == '=';
}

/* Classify the physical line in p->line; hand inih what it must see (a key
 * line, or the first piece of a long one) and return str, or return NULL
 * when the line was dealt with here. */
static char *take_line(parser *p, char *str, int num)
{
    char *s = p->line;
    if (memchr(s, '\0', p->linelen)) {
        syntax_error(p);
        p->prev = PREV_DISCARD;
        return NULL;
    }
    if (p->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    strip_inline_comment(s);
    rstrip(s);
    char *t = (char *)skip_blank(s);
    if (*t == '\0' || *t == ';' || *t == '#')
        return NULL;
    if (*t == '[') {
        section_header(p, t);
        return NULL;
    }
    if (t > s && p->prev != PREV_NONE && !looks_like_key(t)) {
        if (p->prev == PREV_DISCARD)
            return NULL;
        p->rest = t;
        p->restlen = strlen(t);
        p->next_join = " "; /* a continuation line joins with one space */
        p->next_joinlen = 1;
        return give_piece(p, str, (size_t)num - 4);
    }
    char *sep = strpbrk(t, "=:");
    char *e = sep;
    while (e && e > t && is_blank(e[-1]))
        e--;
    if (!sep || e == t) {
        syntax_error(p);
        p->prev = PREV_DISCARD;
        return NULL;
    }
    p->prev = PREV_DISCARD;
    if (p->bad_sec)
        return NULL;
    if (!p->sec) {
        parse_error(p, "%s:%d: %.*s: key outside any section (put it under a [section] header)",
                    p->name, p->lineno, (int)(e - t), t);
        return NULL;
    }
    free(p->keyname);
    p->keyname = str_ndup(t, (size_t)(e - t));
    if (!p->keyname) {
        p->oom = 1;
        return NULL;
    }
    p->keyline = p->lineno;
    p->prev = PREV_KEY;
    size_t tl = strlen(t);
    if (tl + 2 <= (size_t)num) {
        memcpy(str, t, tl);
        str[tl] = '\n';
        str[tl + 1] = '\0';
        p->delivered = DLV_KEY;
        return str;
    }
    /* Too long for inih's buffer: the key alone, then the value in pieces. */
    memcpy(str, "k=\n", 4);
    p->delivered = DLV_KEY_ALONE;
    p->rest = skip_blank(sep + 1);
    p->restlen = strlen(p->rest);
    p->next_join = "";
    p->next_joinlen = 0;
    return str;
}

/* inih's reader: fgets-like, str of size num. */
static char *read_piece(char *str, int num, void *stream)
{
    parser *p = stream;
    if (p->delivered != DLV_NONE)
        p->fatal = 1; /* inih did not pass the last hand-over to the handler */
    if (p->oom || p->fatal)
        return NULL;
    if (num < 8) {
        p->fatal = 1;
        return NULL;
    }
    if (p->restlen > 0)
        return give_piece(p, str, (size_t)num - 4);
    while (next_line(p)) {
        char *r = take_line(p, str, num);
        if (r || p->oom)
            return r;
    }
    return NULL;
}

static void start_key(parser *p, const char *value)
{
    p->cur = NULL;
    cfg_key *old = find_key(p->sec, p->keyname);
    if (old) {
        parse_error(p, "%s:%d: %s.%s: duplicate key, first at line %d", p->name, p->keyline,
                    p->sec->name, p->keyname, old->line);
        return;
    }
    p->cur = add_key(p->sec, p->keyname, value, p->keyline, 0);
    if (!p->cur)
        p->oom = 1;
}

/* inih's handler. Section and name are inih's (truncated to 49 characters);
 * the reader's record of what it handed over is used instead. */
static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    parser *p = user;
    (void)section;
    (void)name;
    if (!value)
        value = "";
    switch (p->delivered) {
    case DLV_KEY:
        start_key(p, value);
        break;
    case DLV_KEY_ALONE:
        start_key(p, "");
        break;
    case DLV_PIECE:
        if (*value == '.')
            value++;
        value = skip_blank(value);
        /* no join before the first words of an empty value (`k =` then
         * an indented line) */
        if (p->cur && *value &&
            !append_value(p->cur, p->join, p->cur->vlen > 0 ? p->joinlen : 0, value))
            p->oom = 1;
        break;
    default:
        p->fatal = 1;
    }
    p->delivered = DLV_NONE;
    return !(p->oom || p->fatal);
}

static int parse_text(wgf_config **out, const char *text, size_t len, const char *name,
                      wgf_diag *diag, wgf_error *err)
{
    *out = NULL;
    wgf_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return wgf_error_set(err, WGF_ENOMEM, "%s: out of memory", name);
    cfg->file = str_dup(name);
    if (!cfg->file) {
        free(cfg);
        return wgf_error_set(err, WGF_ENOMEM, "%s: out of memory", name);
    }
    parser p = {.cfg = cfg, .diag = diag, .name = name, .text = text, .len = len};
    int rc = ini_parse_stream(read_piece, &p, on_pair, &p);
    if (p.delivered != DLV_NONE)
        p.fatal = 1;
    free(p.line);
    free(p.keyname);
    if (p.oom || rc == -2) {
        wgf_config_free(cfg);
        return wgf_error_set(err, WGF_ENOMEM, "%s: out of memory", name);
    }
    if (p.fatal || rc != 0)
        parse_error(&p, "%s:%d: the INI parser (inih) did not take a line as handed over "
                        "(is it built without multi-line values?)", name, p.lineno);
    *out = cfg;
    return p.nerr ? WGF_EINVAL : WGF_OK;
}

int wgf_config_load_string(wgf_config **cfg, const char *text, const char *name, wgf_diag *diag,
                           wgf_error *err)
{
    if (!text)
        text = "";
    return parse_text(cfg, text, strlen(text), name ? name : "(string)", diag, err);
}

int wgf_config_load(wgf_config **cfg, const char *path, wgf_diag *diag, wgf_error *err)
{
    *cfg = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return wgf_error_set(err, WGF_EIO, "%s: cannot open: %s", path, strerror(errno));
    /* Only a regular file, and one that fits: /dev/zero or a pipe would be
     * read forever. The cap also holds if the file grows while read. */
    struct stat st;
    size_t cap = wgf_mem_available() / 4;
    if (cap > WGF_CONFIG_MAX_BYTES)
        cap = WGF_CONFIG_MAX_BYTES;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return wgf_error_set(err, WGF_EIO, "%s: not a regular file (an experiment is an INI file)", path);
    }
    sbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= cap)
        sb_addn(&b, chunk, n);
    if (b.len > cap) {
        fclose(f);
        free(b.p);
        return wgf_error_set(err, WGF_EIO, "%s: too large (more than %zu bytes)", path, cap);
    }
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (failed) {
        free(b.p);
        return wgf_error_set(err, WGF_EIO, "%s: cannot read: %s", path, strerror(saved));
    }
    if (b.oom) {
        free(b.p);
        return wgf_error_set(err, WGF_ENOMEM, "%s: out of memory", path);
    }
    int rc = parse_text(cfg, b.p ? b.p : "", b.len, path, diag, err);
    free(b.p);
    return rc;
}

/* ================================================================ --set */

int wgf_config_set(wgf_config *cfg, const char *assignment, wgf_error *err)
{
    if (!cfg || !assignment)
        return wgf_error_set(err, WGF_EINVAL, "--set: nothing to set");
    const char *eq = strchr(assignment, '=');
    const char *a = skip_blank(assignment);
    const char *b = eq;
    while (b && b > a && is_blank(b[-1]))
        b--;
    const char *dot = NULL;
    for (const char *c = a; b && c < b; c++)
        if (*c == '.')
            dot = c;
    /* section: [a, se); key: [ks, b) */
    const char *se = dot, *ks = dot ? skip_blank(dot + 1) : NULL;
    while (se && se > a && is_blank(se[-1]))
        se--;
    if (!eq || !dot || se == a || ks >= b || strpbrk(assignment, "\r\n"))
        return wgf_error_set(err, WGF_EINVAL, "--set '%s': expected section.key=value", assignment);

    /* The value follows the file's rules (inline comment, trimming), so that
     * config.ini written from it reads back the same. */
    char *key = str_ndup(ks, (size_t)(b - ks));
    char *value = str_dup(eq + 1);
    if (!key || !value) {
        free(key);
        free(value);
        return wgf_error_set(err, WGF_ENOMEM, "--set: out of memory");
    }
    strip_inline_comment(value);
    rstrip(value);
    const char *v = skip_blank(value);

    int rc = WGF_OK;
    cfg_sec *s = get_sec(cfg, a, (size_t)(se - a), 0);
    cfg_key *k = s ? find_key(s, key) : NULL;
    if (!s)
        rc = WGF_ENOMEM;
    else if (k) {
        char *nv = str_dup(v);
        if (!nv)
            rc = WGF_ENOMEM;
        else {
            free(k->value);
            k->value = nv;
            k->vlen = strlen(nv);
            k->vcap = k->vlen + 1;
            k->line = 0;
            k->from_set = 1;
        }
    } else if (!add_key(s, key, v, 0, 1))
        rc = WGF_ENOMEM;
    free(key);
    free(value);
    if (rc != WGF_OK)
        return wgf_error_set(err, rc, "--set: out of memory");
    return WGF_OK;
}

/* ================================================================ look-ups */

const char *wgf_config_file(const wgf_config *cfg) { return cfg ? cfg->file : NULL; }

size_t wgf_config_nsections(const wgf_config *cfg) { return cfg ? cfg->n : 0; }

const char *wgf_config_section_name(const wgf_config *cfg, size_t i)
{
    return cfg && i < cfg->n ? cfg->secs[i].name : NULL;
}

int wgf_config_section_line(const wgf_config *cfg, const char *section)
{
    const cfg_sec *s = cfg && section ? find_sec(cfg, section) : NULL;
    return s ? s->line : 0;
}

const char *wgf_config_get(const wgf_config *cfg, const char *section, const char *key, int *line)
{
    const cfg_sec *s = cfg && section ? find_sec(cfg, section) : NULL;
    const cfg_key *k = s && key ? find_key(s, key) : NULL;
    if (line)
        *line = k ? k->line : 0;
    return k ? k->value : NULL;
}

void wgf_config_check_sections(const wgf_config *cfg, int (*allowed)(const char *name, void *user),
                               void *user, wgf_diag *diag)
{
    if (!cfg || !allowed)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        const cfg_sec *s = &cfg->secs[i];
        if (allowed(s->name, user))
            continue;
        if (s->line > 0)
            wgf_diag_add(diag, "%s:%d: [%s]: unknown section", cfg->file, s->line, s->name);
        else if (s->n > 0)
            wgf_diag_add(diag, "--set %s.%s: unknown section [%s]", s->name, s->keys[0].name,
                         s->name);
        else
            wgf_diag_add(diag, "%s: [%s]: unknown section", cfg->file, s->name);
    }
}

/* ================================================================ typed sections */

typedef struct sec_entry {
    char *key;
    wgf_param_type type;
    int has;      /* given or defaulted */
    int line;     /* 0: default or --set */
    int from_set;
    char *text;   /* as written */
    long i;
    double x;
    int b;
    double *v;    /* vector, list, matrix */
    size_t len;
} sec_entry;

struct wgf_section {
    char *name, *file;
    size_t dim;
    int line; /* of the header; 0 if absent from the file */
    size_t n;
    sec_entry *e;
};

static const sec_entry *entry(const wgf_section *s, const char *key)
{
    if (!s || !key)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i].key, key) == 0)
            return &s->e[i];
    return NULL;
}

static const sec_entry *typed(const wgf_section *s, const char *key, wgf_param_type t1,
                              wgf_param_type t2)
{
    const sec_entry *e = entry(s, key);
    return e && e->has && (e->type == t1 || e->type == t2) ? e : NULL;
}

const char *wgf_section_name(const wgf_section *s) { return s ? s->name : NULL; }
const char *wgf_section_file(const wgf_section *s) { return s ? s->file : NULL; }
size_t wgf_section_dim(const wgf_section *s) { return s ? s->dim : 0; }

int wgf_section_has(const wgf_section *s, const char *key)
{
    const sec_entry *e = entry(s, key);
    return e && e->has;
}

int wgf_section_line(const wgf_section *s, const char *key)
{
    const sec_entry *e = entry(s, key);
    return e ? e->line : 0;
}

long wgf_section_int(const wgf_section *s, const char *key)
{
    const sec_entry *e = typed(s, key, WGF_PARAM_INT, WGF_PARAM_INT);
    return e ? e->i : 0;
}

double wgf_section_double(const wgf_section *s, const char *key)
{
    const sec_entry *e = typed(s, key, WGF_PARAM_DOUBLE, WGF_PARAM_DOUBLE);
    return e ? e->x : 0.0;
}

int wgf_section_bool(const wgf_section *s, const char *key)
{
    const sec_entry *e = typed(s, key, WGF_PARAM_BOOL, WGF_PARAM_BOOL);
    return e ? e->b : 0;
}

const char *wgf_section_string(const wgf_section *s, const char *key)
{
    const sec_entry *e = typed(s, key, WGF_PARAM_STRING, WGF_PARAM_CHOICE);
    return e ? e->text : NULL;
}

const double *wgf_section_vector(const wgf_section *s, const char *key, size_t *len)
{
    const sec_entry *e = typed(s, key, WGF_PARAM_VECTOR, WGF_PARAM_LIST);
    if (len)
        *len = e ? e->len : 0;
    return e ? e->v : NULL;
}

const double *wgf_section_matrix(const wgf_section *s, const char *key)
{
    const sec_entry *e = typed(s, key, WGF_PARAM_MATRIX, WGF_PARAM_MATRIX);
    return e ? e->v : NULL;
}

const char *wgf_section_text(const wgf_section *s, const char *key)
{
    const sec_entry *e = entry(s, key);
    return e && e->has ? e->text : NULL;
}

/* "FILE:LINE: section.key: ", "--set section.key: " or "FILE: section.key: ". */
static void sb_where(sbuf *b, const char *file, int line, int from_set, const char *sec,
                     const char *key)
{
    if (from_set)
        sb_add(b, "--set ");
    else if (line > 0)
        sb_printf(b, "%s:%d: ", file, line);
    else
        sb_printf(b, "%s: ", file);
    sb_add(b, sec);
    if (key)
        sb_printf(b, ".%s", key);
    sb_add(b, ": ");
}

int wgf_section_error(const wgf_section *s, const char *key, wgf_error *err, const char *fmt, ...)
{
    sbuf b = {0};
    if (s) {
        const sec_entry *e = key ? entry(s, key) : NULL;
        /* a defaulted key has no line: the section's, where it would be written */
        if (key)
            sb_where(&b, s->file, e && e->line ? e->line : s->line, e ? e->from_set : 0, s->name, key);
        else
            sb_where(&b, s->file, s->line, 0, s->name, NULL);
    }
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    char *m = sb_take(&b);
    wgf_error_set(err, WGF_EINVAL, "%s", m ? m : "out of memory");
    free(m);
    return WGF_EINVAL;
}

void wgf_section_free(wgf_section *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].key);
        free(s->e[i].text);
        free(s->e[i].v);
    }
    free(s->e);
    free(s->name);
    free(s->file);
    free(s);
}

/* ---------------------------------------------------------------- values */

/* What validation of one value needs: where it came from, for messages. */
typedef struct vctx {
    const char *file, *sec, *key;
    int line, from_set;
    size_t dim;
    const wgf_param *p;
    wgf_diag *diag;
    size_t nerr;
    int oom;
} vctx;

static void verr(vctx *c, const char *fmt, ...) CFG_PRINTF(2, 3);
static void verr(vctx *c, const char *fmt, ...)
{
    sbuf b = {0};
    sb_where(&b, c->file, c->line, c->from_set, c->sec, c->key);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    c->nerr++;
    if (c->diag)
        diag_take(c->diag, sb_take(&b));
    else
        free(sb_take(&b));
}

/* The same, with a quoted user value and then a printf tail. */
static void verr_quoted(vctx *c, const char *before, const char *s, size_t n, const char *fmt, ...)
    CFG_PRINTF(5, 6);
static void verr_quoted(vctx *c, const char *before, const char *s, size_t n, const char *fmt, ...)
{
    sbuf b = {0};
    sb_where(&b, c->file, c->line, c->from_set, c->sec, c->key);
    sb_add(&b, before);
    sb_quote(&b, s, n);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    c->nerr++;
    if (c->diag)
        diag_take(c->diag, sb_take(&b));
    else
        free(sb_take(&b));
}

/* "(allowed: >= 1)" text of a range; empty without one. */
static void sb_range(sbuf *b, const wgf_param *p)
{
    char lo[32], hi[32];
    fmt_number(lo, sizeof lo, p->min);
    fmt_number(hi, sizeof hi, p->max);
    const char *gl = p->flags & WGF_P_MIN_OPEN ? ">" : ">=";
    const char *gh = p->flags & WGF_P_MAX_OPEN ? "<" : "<=";
    if ((p->flags & WGF_P_MIN) && (p->flags & WGF_P_MAX))
        sb_printf(b, "%s %s and %s %s", gl, lo, gh, hi);
    else if (p->flags & WGF_P_MIN)
        sb_printf(b, "%s %s", gl, lo);
    else if (p->flags & WGF_P_MAX)
        sb_printf(b, "%s %s", gh, hi);
}

static int in_range(const wgf_param *p, double x)
{
    if (p->flags & WGF_P_MIN) {
        if (p->flags & WGF_P_MIN_OPEN ? !(x > p->min) : !(x >= p->min))
            return 0;
    }
    if (p->flags & WGF_P_MAX) {
        if (p->flags & WGF_P_MAX_OPEN ? !(x < p->max) : !(x <= p->max))
            return 0;
    }
    return 1;
}

/* "PREFIX" + "TOKEN is out of range (allowed: ...)" */
static void range_error(vctx *c, const char *prefix, const char *tok, size_t n)
{
    sbuf r = {0};
    sb_range(&r, c->p);
    char *range = sb_take(&r);
    verr(c, "%s%.*s is out of range (allowed: %s)", prefix, (int)n, tok, range ? range : "?");
    free(range);
}

/* A token (not NUL-terminated) as a finite double. Returns 0 ok, 1 not a
 * number, 2 not finite; -1 out of memory. The token is copied so that strtod
 * cannot read past it. */
static int token_double(const char *tok, size_t n, double *x)
{
    char *t = str_ndup(tok, n);
    if (!t)
        return -1;
    char *end;
    *x = strtod(t, &end);
    int rc = (n == 0 || *end != '\0') ? 1 : !isfinite(*x) ? 2 : 0;
    free(t);
    return rc;
}

/* The work of parse_numbers; may leave a partial array in *out. */
static int read_numbers(vctx *c, const char *s, const char *end, const char *what, double **out,
                        size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    while (1) {
        while (s < end && is_blank(*s))
            s++;
        if (s >= end)
            return 0;
        const char *t = s;
        while (s < end && !is_blank(*s))
            s++;
        double x;
        int rc = token_double(t, (size_t)(s - t), &x);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            sbuf b = {0};
            sb_printf(&b, "%selement %zu: ", what, *n + 1);
            char *pre = sb_take(&b);
            verr_quoted(c, pre ? pre : "", t, (size_t)(s - t), " is not %s",
                        rc == 1 ? "a number" : "a finite number");
            free(pre);
            return 1;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            double *v = realloc(*out, cap * sizeof *v);
            if (!v)
                return -1;
            *out = v;
        }
        (*out)[(*n)++] = x;
    }
}

/* Numbers separated by white space in [s, end): every one parsed into a
 * growing array. Returns 0, or 1 after reporting a bad element (what names
 * it in the message, e.g. "" or "block 2, "), or -1 out of memory; *out is
 * then NULL. */
static int parse_numbers(vctx *c, const char *s, const char *end, const char *what, double **out,
                         size_t *n)
{
    int rc = read_numbers(c, s, end, what, out, n);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int parse_int(vctx *c, const char *text, sec_entry *e)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *skip_blank(end) != '\0') {
        verr_quoted(c, "", text, strlen(text), " is not an integer");
        return 1;
    }
    if (errno == ERANGE) {
        verr_quoted(c, "", text, strlen(text), " is out of range (allowed: %ld to %ld)", LONG_MIN,
                    LONG_MAX);
        return 1;
    }
    if (!in_range(c->p, (double)v)) {
        range_error(c, "", text, strlen(text));
        return 1;
    }
    e->i = v;
    return 0;
}

static int parse_double(vctx *c, const char *text, sec_entry *e)
{
    const char *t = skip_blank(text);
    size_t n = strlen(t);
    while (n > 0 && is_blank(t[n - 1]))
        n--;
    int rc = token_double(t, n, &e->x);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        verr_quoted(c, "", text, strlen(text), " is not %s", rc == 1 ? "a number" : "a finite number");
        return 1;
    }
    if (!in_range(c->p, e->x)) {
        range_error(c, "", t, n);
        return 1;
    }
    return 0;
}

static int parse_bool(vctx *c, const char *text, sec_entry *e)
{
    static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "1", "0"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        const char *a = text, *w = words[i];
        while (*a && tolower((unsigned char)*a) == *w)
            a++, w++;
        if (!*a && !*w) {
            e->b = i % 2 == 0;
            return 0;
        }
    }
    verr_quoted(c, "", text, strlen(text),
                " is not a boolean (allowed: true, false, yes, no, on, off, 1, 0)");
    return 1;
}

static int parse_choice(vctx *c, const char *text)
{
    const char *choices = c->p->choices ? c->p->choices : "";
    size_t tl = strlen(text);
    sbuf list = {0};
    char *best = NULL;
    size_t best_d = (size_t)-1;
    for (const char *a = choices;;) {
        const char *bar = strchr(a, '|');
        size_t n = bar ? (size_t)(bar - a) : strlen(a);
        if (n == tl && memcmp(a, text, n) == 0) {
            free(list.p);
            free(best);
            return 0;
        }
        sb_printf(&list, "%s%.*s", list.len ? ", " : "", (int)n, a);
        char *cand = str_ndup(a, n);
        size_t d;
        if (cand && close_enough(text, cand, &d) && d < best_d) {
            free(best);
            best = cand;
            best_d = d;
        } else
            free(cand);
        if (!bar)
            break;
        a = bar + 1;
    }
    char *allowed = sb_take(&list);
    if (best)
        verr_quoted(c, "", text, tl, " is not allowed (allowed: %s; did you mean '%s'?)",
                    allowed ? allowed : "?", best);
    else
        verr_quoted(c, "", text, tl, " is not allowed (allowed: %s)", allowed ? allowed : "?");
    free(allowed);
    free(best);
    return 1;
}

/* Every element of v within the key's range; else report the first. */
static int check_elements(vctx *c, const char *text, const double *v, size_t n)
{
    if (!(c->p->flags & (WGF_P_MIN | WGF_P_MAX)))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!in_range(c->p, v[i])) {
            /* the i-th token, as written */
            const char *s = skip_blank(text), *t = s;
            for (size_t k = 0; k <= i; k++) {
                t = skip_blank(s);
                s = t;
                while (*s && !is_blank(*s))
                    s++;
            }
            char pre[48];
            snprintf(pre, sizeof pre, "element %zu: ", i + 1);
            range_error(c, pre, t, (size_t)(s - t));
            return 1;
        }
    return 0;
}

static int parse_vector(vctx *c, const char *text, sec_entry *e)
{
    double *v;
    size_t n;
    int rc = parse_numbers(c, text, text + strlen(text), "", &v, &n);
    if (rc != 0)
        return rc;
    size_t d = c->dim, given = n;
    if (c->p->type == WGF_PARAM_LIST || d == 0) {
        /* a list; also a vector of a section validated without a dimension */
        if (n == 0) {
            verr(c, "needs at least one number, got 0");
            return 1;
        }
    } else if (n == 1 && d > 1) {
        if (!doubles_fit(d)) {
            verr(c, "a vector of dim = %zu numbers does not fit in memory", d);
            free(v);
            return 1;
        }
        double *full = realloc(v, d * sizeof *full);
        if (!full) {
            free(v);
            return -1;
        }
        v = full;
        for (size_t i = 1; i < d; i++)
            v[i] = v[0];
        n = d;
    } else if (n != d) {
        verr(c, "needs %zu numbers (dim) or one to fill the vector, got %zu", d, n);
        free(v);
        return 1;
    }
    if (check_elements(c, text, v, given)) { /* a filled vector: its one number */
        free(v);
        return 1;
    }
    e->v = v;
    e->len = n;
    return 0;
}

static const char matrix_forms[] = "identity, a number (times I), diag v1 .. vd, full a11 a12 .. add, "
                                   "blocks K: b1, b2, ...";

static void not_a_matrix(vctx *c, const char *text)
{
    verr_quoted(c, "", text, strlen(text), " is not a matrix (allowed: %s)", matrix_forms);
}

/* blocks K: b1, b2, ...  (block diagonal; each block K*K numbers, row-major) */
static int parse_blocks(vctx *c, const char *s, double *m)
{
    size_t d = c->dim;
    char *end;
    s = skip_blank(s);
    errno = 0;
    long k = isdigit((unsigned char)*s) ? strtol(s, &end, 10) : 0;
    if (!isdigit((unsigned char)*s) || errno == ERANGE || *skip_blank(end) != ':') {
        verr(c, "'blocks' needs a block size and a colon (allowed: blocks K: b1, b2, ..., "
                "each block K*K numbers)");
        return 1;
    }
    if (k < 1) {
        verr(c, "block size %ld is out of range (allowed: >= 1)", k);
        return 1;
    }
    if (d % (size_t)k != 0) {
        verr(c, "block size %ld does not divide the dimension %zu", k, d);
        return 1;
    }
    size_t K = (size_t)k, nb = d / K;
    s = skip_blank(end) + 1;
    size_t got = 0;
    for (const char *a = s;;) {
        const char *comma = strchr(a, ',');
        const char *b = comma ? comma : a + strlen(a);
        if (!comma && got > 0 && *skip_blank(a) == '\0')
            break; /* a trailing comma */
        got++;
        double *v;
        size_t n;
        char what[48];
        snprintf(what, sizeof what, "block %zu, ", got);
        int rc = parse_numbers(c, a, b, what, &v, &n);
        if (rc != 0)
            return rc;
        if (n != K * K) {
            verr(c, "block %zu needs %zu numbers (%zu x %zu), got %zu", got, K * K, K, K, n);
            free(v);
            return 1;
        }
        if (got <= nb) {
            size_t o = (got - 1) * K;
            for (size_t i = 0; i < K; i++)
                for (size_t j = 0; j < K; j++)
                    m[(o + i) * d + o + j] = v[i * K + j];
        }
        free(v);
        if (!comma)
            break;
        a = comma + 1;
    }
    if (got != nb) {
        verr(c, "'blocks %zu' needs %zu blocks (%zu / %zu), got %zu", K, nb, d, K, got);
        return 1;
    }
    return 0;
}

static int parse_matrix(vctx *c, const char *text, sec_entry *e)
{
    size_t d = c->dim;
    if (d == 0) {
        verr(c, "a matrix needs the dimension, which is not known here");
        return 1;
    }
    const char *s = skip_blank(text), *w = s;
    while (*s && !is_blank(*s) && *s != ':')
        s++;
    size_t wl = (size_t)(s - w), dd;
    /* d comes from the file: d * d may wrap, or ask for more than the machine has */
    if (__builtin_mul_overflow(d, d, &dd) || !doubles_fit(dd)) {
        verr(c, "a dim x dim matrix (dim = %zu) does not fit in memory", d);
        return 1;
    }
    double *m = calloc(dd, sizeof *m);
    if (!m)
        return -1;
    int rc = 0;
    double *v = NULL;
    size_t n = 0;
    if (wl == 8 && memcmp(w, "identity", 8) == 0 && *skip_blank(s) == '\0') {
        for (size_t i = 0; i < d; i++)
            m[i * d + i] = 1.0;
    } else if (wl == 4 && memcmp(w, "diag", 4) == 0) {
        rc = parse_numbers(c, s, s + strlen(s), "", &v, &n);
        if (rc == 0 && n != d) {
            verr(c, "'diag' needs %zu numbers (dim), got %zu", d, n);
            rc = 1;
        }
        for (size_t i = 0; rc == 0 && i < d; i++)
            m[i * d + i] = v[i];
    } else if (wl == 4 && memcmp(w, "full", 4) == 0) {
        rc = parse_numbers(c, s, s + strlen(s), "", &v, &n);
        if (rc == 0 && n != d * d) {
            verr(c, "'full' needs %zu numbers (%zu x %zu), got %zu", d * d, d, d, n);
            rc = 1;
        }
        if (rc == 0)
            memcpy(m, v, d * d * sizeof *m);
    } else if (wl == 6 && memcmp(w, "blocks", 6) == 0) {
        rc = parse_blocks(c, s, m);
    } else {
        double x;
        const char *t = skip_blank(text);
        size_t tl = strlen(t);
        int r = token_double(t, tl, &x);
        if (r < 0)
            rc = -1;
        else if (r == 2) {
            verr_quoted(c, "", t, tl, " is not a finite number");
            rc = 1;
        } else if (r == 1) {
            not_a_matrix(c, text);
            rc = 1;
        } else
            for (size_t i = 0; i < d; i++)
                m[i * d + i] = x;
    }
    free(v);
    if (rc != 0) {
        free(m);
        return rc;
    }
    e->v = m;
    e->len = d * d;
    return 0;
}

/* Parse text for the entry's type. 0 ok, 1 reported, -1 out of memory. */
static int parse_value(vctx *c, const char *text, sec_entry *e)
{
    switch (c->p->type) {
    case WGF_PARAM_INT:
        return parse_int(c, text, e);
    case WGF_PARAM_DOUBLE:
        return parse_double(c, text, e);
    case WGF_PARAM_BOOL:
        return parse_bool(c, text, e);
    case WGF_PARAM_STRING:
        return 0;
    case WGF_PARAM_CHOICE:
        return parse_choice(c, text);
    case WGF_PARAM_VECTOR:
    case WGF_PARAM_LIST:
        return parse_vector(c, text, e);
    case WGF_PARAM_MATRIX:
        return parse_matrix(c, text, e);
    }
    verr(c, "unknown parameter type %d in the schema", (int)c->p->type);
    return 1;
}

/* The keys of the schemas, first occurrence wins. */
static const wgf_param **collect_params(const wgf_param *const *schemas, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; schemas && schemas[i]; i++)
        for (const wgf_param *p = schemas[i]; p->key; p++)
            total++;
    const wgf_param **out = malloc((total + 1) * sizeof *out);
    if (!out)
        return NULL;
    *n = 0;
    for (size_t i = 0; schemas && schemas[i]; i++)
        for (const wgf_param *p = schemas[i]; p->key; p++) {
            size_t j = 0;
            while (j < *n && strcmp(out[j]->key, p->key) != 0)
                j++;
            if (j == *n)
                out[(*n)++] = p;
        }
    return out;
}

static void unknown_key(vctx *c, const wgf_param *const *params, size_t np)
{
    sbuf list = {0};
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < np; i++) {
        sb_printf(&list, "%s%s", i ? ", " : "", params[i]->key);
        size_t d;
        if (close_enough(c->key, params[i]->key, &d) && d < best_d) {
            best = params[i]->key;
            best_d = d;
        }
    }
    char *allowed = sb_take(&list);
    if (!allowed)
        c->oom = 1;
    else if (best)
        verr(c, "unknown key (allowed: %s; did you mean '%s'?)", np ? allowed : "none", best);
    else
        verr(c, "unknown key (allowed: %s)", np ? allowed : "none");
    free(allowed);
}

wgf_section *wgf_config_section(wgf_config *cfg, const char *section,
                                const wgf_param *const *schemas, size_t dim, wgf_diag *diag)
{
    if (!cfg || !section)
        return NULL;
    cfg_sec *cs = find_sec(cfg, section);
    vctx c = {.file = cfg->file, .sec = section, .dim = dim, .diag = diag};
    size_t np = 0;
    const wgf_param **params = collect_params(schemas, &np);
    wgf_section *s = calloc(1, sizeof *s);
    if (!params || !s)
        goto oom;
    s->name = str_dup(section);
    s->file = str_dup(cfg->file);
    s->dim = dim;
    s->line = cs ? cs->line : 0;
    s->e = calloc(np ? np : 1, sizeof *s->e);
    if (!s->name || !s->file || !s->e)
        goto oom;
    for (size_t i = 0; i < np; i++) {
        s->e[i].key = str_dup(params[i]->key);
        s->e[i].type = params[i]->type;
        s->n++;
        if (!s->e[i].key)
            goto oom;
    }

    /* The keys given, in file order: unknown ones, then values. */
    for (size_t j = 0; cs && j < cs->n; j++) {
        cfg_key *k = &cs->keys[j];
        k->used = 1;
        c.key = k->name;
        c.line = k->line;
        c.from_set = k->from_set;
        size_t i = 0;
        while (i < np && strcmp(params[i]->key, k->name) != 0)
            i++;
        if (i == np) {
            unknown_key(&c, params, np);
            continue;
        }
        sec_entry *e = &s->e[i];
        e->has = 1;
        e->line = k->line;
        e->from_set = k->from_set;
        e->text = str_dup(k->value);
        c.p = params[i];
        if (!e->text || parse_value(&c, k->value, e) < 0)
            c.oom = 1;
    }
    /* The keys not given: defaults, or a missing required key. */
    for (size_t i = 0; i < np; i++) {
        sec_entry *e = &s->e[i];
        const wgf_param *p = params[i];
        if (e->has)
            continue;
        c.key = p->key;
        c.line = s->line;
        c.from_set = 0;
        c.p = p;
        if (p->flags & WGF_P_REQUIRED) {
            if (s->line == 0) {
                /* no line to point at: the section itself is what is missing */
                sbuf b = {0};
                sb_printf(&b, "%s: [%s]: missing section (%s.%s is required%s%s)", c.file, section,
                          section, p->key, p->doc ? ": " : "", p->doc ? p->doc : "");
                c.nerr++;
                if (diag)
                    diag_take(diag, sb_take(&b));
                else
                    free(sb_take(&b));
            } else if (p->doc)
                verr(&c, "missing required key (%s: %s)", p->key, p->doc);
            else
                verr(&c, "missing required key");
            continue;
        }
        if (!p->def)
            continue;
        c.line = 0;
        e->has = 1;
        e->text = str_dup(p->def);
        if (!e->text || parse_value(&c, p->def, e) < 0)
            c.oom = 1;
    }
    if (c.oom)
        goto oom;
    free(params);
    if (c.nerr) {
        wgf_section_free(s);
        return NULL;
    }
    return s;

oom:
    free(params);
    wgf_section_free(s);
    wgf_diag_add(diag, "%s: [%s]: out of memory", cfg->file, section);
    return NULL;
}

/* ================================================================ writing */

int wgf_section_write(const wgf_section *s, FILE *f)
{
    if (!s || !f)
        return WGF_EINVAL;
    int bad = fprintf(f, "[%s]\n", s->name) < 0;
    for (size_t i = 0; i < s->n; i++) {
        const sec_entry *e = &s->e[i];
        if (!e->has)
            continue;
        /* "key = ;x" would read as a comment; "key =;x" keeps the ';'. */
        bad |= fprintf(f, "%s =%s%s\n", e->key, e->text[0] == ';' ? "" : " ", e->text) < 0;
    }
    return bad || ferror(f) ? WGF_EIO : WGF_OK;
}

static const char *type_name(wgf_param_type t)
{
    switch (t) {
    case WGF_PARAM_INT:
        return "int";
    case WGF_PARAM_DOUBLE:
        return "double";
    case WGF_PARAM_BOOL:
        return "bool";
    case WGF_PARAM_STRING:
        return "string";
    case WGF_PARAM_CHOICE:
        return "choice";
    case WGF_PARAM_VECTOR:
        return "vector";
    case WGF_PARAM_LIST:
        return "list";
    case WGF_PARAM_MATRIX:
        return "matrix";
    }
    return "?";
}

/* The "allowed" column of wgf_param_print. */
static char *allowed_text(const wgf_param *p)
{
    sbuf b = {0};
    switch (p->type) {
    case WGF_PARAM_INT:
    case WGF_PARAM_DOUBLE:
    case WGF_PARAM_VECTOR:
    case WGF_PARAM_LIST:
        sb_range(&b, p);
        break;
    case WGF_PARAM_BOOL:
        sb_add(&b, "true|false");
        break;
    case WGF_PARAM_CHOICE:
        sb_add(&b, p->choices ? p->choices : "");
        break;
    case WGF_PARAM_MATRIX:
        sb_add(&b, "identity|<number>|diag|full|blocks");
        break;
    case WGF_PARAM_STRING:
        break;
    }
    if (b.len == 0)
        sb_add(&b, "-");
    return sb_take(&b);
}

static const char *default_text(const wgf_param *p)
{
    if (p->flags & WGF_P_REQUIRED)
        return "(required)";
    if (!p->def)
        return "-";
    return *p->def ? p->def : "''";
}

void wgf_param_print(const wgf_param *schema, FILE *f)
{
    if (!schema || !f)
        return;
    size_t n = 0;
    while (schema[n].key)
        n++;
    char **allowed = calloc(n + 1, sizeof *allowed);
    if (!allowed)
        return;
    const char *head[4] = {"key", "type", "default", "allowed"};
    size_t w[4];
    for (int j = 0; j < 4; j++)
        w[j] = strlen(head[j]);
    for (size_t i = 0; i < n; i++) {
        allowed[i] = allowed_text(&schema[i]);
        const char *col[4] = {schema[i].key, type_name(schema[i].type), default_text(&schema[i]),
                              allowed[i] ? allowed[i] : "-"};
        for (int j = 0; j < 4; j++)
            if (strlen(col[j]) > w[j])
                w[j] = strlen(col[j]);
    }
    fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], head[0], (int)w[1], head[1], (int)w[2],
            head[2], (int)w[3], head[3], "description");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], schema[i].key, (int)w[1],
                type_name(schema[i].type), (int)w[2], default_text(&schema[i]), (int)w[3],
                allowed[i] ? allowed[i] : "-", schema[i].doc ? schema[i].doc : "");
    for (size_t i = 0; i < n; i++)
        free(allowed[i]);
    free(allowed);
}
