/* config.c: the experiment file (wgf/config.h): reading INI text into sections
 * of keys and values, long lines and continuation lines rejoined, --set
 * assignments, look-ups by section and key, and the list of diagnostics
 * (wgf_diag) every configuration error is collected in. Typed values are
 * values.c's; validation against parameter schemas is schema.c's.
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
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "cfg.h"

/* What this process may allocate: physical memory, within its rlimits
 * (wgf/config.h). */
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


/* ================================================================ diag */

void wgf_diag_init(wgf_diag *d)
{
    if (!d)
        return;
    d->n = d->cap = 0;
    d->msg = NULL;
}

void wgf_cfg_diag_take(wgf_diag *d, char *m)
{
    if (!d) {
        free(m);
        return;
    }
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
    wgf_strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    wgf_strbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    wgf_cfg_diag_take(d, wgf_strbuf_take(&b));
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

cfg_sec *wgf_cfg_find_sec(const wgf_config *cfg, const char *name)
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

static void parse_error(parser *p, const char *fmt, ...) WGF_STRBUF_PRINTF(2, 3);
static void parse_error(parser *p, const char *fmt, ...)
{
    wgf_strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    wgf_strbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    p->nerr++;
    wgf_cfg_diag_take(p->diag, wgf_strbuf_take(&b));
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
    wgf_strbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= cap)
        wgf_strbuf_addn(&b, chunk, n);
    if (b.len > cap) {
        fclose(f);
        free(b.s);
        return wgf_error_set(err, WGF_EIO, "%s: too large (more than %zu bytes)", path, cap);
    }
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (failed) {
        free(b.s);
        return wgf_error_set(err, WGF_EIO, "%s: cannot read: %s", path, strerror(saved));
    }
    if (b.failed) {
        free(b.s);
        return wgf_error_set(err, WGF_ENOMEM, "%s: out of memory", path);
    }
    int rc = parse_text(cfg, b.s ? b.s : "", b.len, path, diag, err);
    free(b.s);
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
    const cfg_sec *s = cfg && section ? wgf_cfg_find_sec(cfg, section) : NULL;
    return s ? s->line : 0;
}

const char *wgf_config_get(const wgf_config *cfg, const char *section, const char *key, int *line)
{
    const cfg_sec *s = cfg && section ? wgf_cfg_find_sec(cfg, section) : NULL;
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
