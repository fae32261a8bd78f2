/* values.c: the typed values of experiment files (the forms listed in
 * wgf/config.h): integers, doubles, booleans, choices, vectors (a scalar
 * fills the vector, or random), lists and matrices (identity, a number times
 * I, diag, full, blocks, random), each checked against its schema entry's range, and the
 * messages that name a bad value's file, line, section and key. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "cfg.h"
#include "suggest.h"
#include "wgf/rng.h"

/* n doubles, in bytes, when that fits in memory; 0 otherwise. */
static size_t doubles_fit(size_t n)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, sizeof(double), &bytes) || bytes > wgf_mem_available())
        return 0;
    return bytes;
}

/* A user's value quoted for a message: shortened when long, so that a
 * 900-number matrix does not fill the screen. */
static void sb_quote(wgf_strbuf *b, const char *s, size_t n)
{
    const size_t max = 60;
    wgf_strbuf_add(b, "'");
    if (n > max) {
        wgf_strbuf_addn(b, s, max - 3);
        wgf_strbuf_add(b, "...");
    } else
        wgf_strbuf_addn(b, s, n);
    wgf_strbuf_add(b, "'");
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

/* Is word close enough to candidate to suggest it? One edit for short
 * names, two from 6 characters, three from 12. */
int wgf_cfg_close_enough(const char *word, const char *candidate, size_t *dist)
{
    size_t len = strlen(candidate);
    size_t allowed = 1 + (len >= 6) + (len >= 12);
    *dist = wgf_edit_distance(word, strlen(word), candidate, len, 1);
    return *dist <= allowed;
}

/* "FILE:LINE: section.key: ", "--set section.key: " or "FILE: section.key: ". */
void wgf_cfg_where(wgf_strbuf *b, const char *file, int line, int from_set, const char *sec,
                     const char *key)
{
    if (from_set)
        wgf_strbuf_add(b, "--set ");
    else if (line > 0)
        wgf_strbuf_printf(b, "%s:%d: ", file, line);
    else
        wgf_strbuf_printf(b, "%s: ", file);
    wgf_strbuf_add(b, sec);
    if (key)
        wgf_strbuf_printf(b, ".%s", key);
    wgf_strbuf_add(b, ": ");
}

/* The message: where, then (before non-NULL) before and the quoted user
 * value s[0..n), then the printf tail. */
static void verr_v(vctx *c, const char *before, const char *s, size_t n, const char *fmt, va_list ap)
    WGF_STRBUF_PRINTF(5, 0);
static void verr_v(vctx *c, const char *before, const char *s, size_t n, const char *fmt, va_list ap)
{
    wgf_strbuf b = {0};
    wgf_cfg_where(&b, c->file, c->line, c->from_set, c->sec, c->key);
    if (before) {
        wgf_strbuf_add(&b, before);
        sb_quote(&b, s, n);
    }
    wgf_strbuf_vprintf(&b, fmt, ap);
    c->nerr++;
    wgf_cfg_diag_take(c->diag, wgf_strbuf_take(&b));
}

void wgf_cfg_verr(vctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr_v(c, NULL, NULL, 0, fmt, ap);
    va_end(ap);
}

/* The same, with a quoted user value and then a printf tail. */
static void verr_quoted(vctx *c, const char *before, const char *s, size_t n, const char *fmt, ...)
    WGF_STRBUF_PRINTF(5, 6);
static void verr_quoted(vctx *c, const char *before, const char *s, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr_v(c, before, s, n, fmt, ap);
    va_end(ap);
}

/* "(allowed: >= 1)" text of a range; empty without one. */
void wgf_cfg_range(wgf_strbuf *b, const wgf_param *p)
{
    char lo[32], hi[32];
    fmt_number(lo, sizeof lo, p->min);
    fmt_number(hi, sizeof hi, p->max);
    const char *gl = p->flags & WGF_P_MIN_OPEN ? ">" : ">=";
    const char *gh = p->flags & WGF_P_MAX_OPEN ? "<" : "<=";
    if ((p->flags & WGF_P_MIN) && (p->flags & WGF_P_MAX))
        wgf_strbuf_printf(b, "%s %s and %s %s", gl, lo, gh, hi);
    else if (p->flags & WGF_P_MIN)
        wgf_strbuf_printf(b, "%s %s", gl, lo);
    else if (p->flags & WGF_P_MAX)
        wgf_strbuf_printf(b, "%s %s", gh, hi);
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
    wgf_strbuf r = {0};
    wgf_cfg_range(&r, c->p);
    char *range = wgf_strbuf_take(&r);
    wgf_cfg_verr(c, "%s%.*s is out of range (allowed: %s)", prefix, (int)n, tok, range ? range : "?");
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
            wgf_strbuf b = {0};
            wgf_strbuf_printf(&b, "%selement %zu: ", what, *n + 1);
            char *pre = wgf_strbuf_take(&b);
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
    wgf_strbuf list = {0};
    char *best = NULL;
    size_t best_d = (size_t)-1;
    for (const char *a = choices;;) {
        const char *bar = strchr(a, '|');
        size_t n = bar ? (size_t)(bar - a) : strlen(a);
        if (n == tl && memcmp(a, text, n) == 0) {
            free(list.s);
            free(best);
            return 0;
        }
        wgf_strbuf_printf(&list, "%s%.*s", list.len ? ", " : "", (int)n, a);
        char *cand = str_ndup(a, n);
        size_t d;
        if (cand && wgf_cfg_close_enough(text, cand, &d) && d < best_d) {
            free(best);
            best = cand;
            best_d = d;
        } else
            free(cand);
        if (!bar)
            break;
        a = bar + 1;
    }
    char *allowed = wgf_strbuf_take(&list);
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

static int parse_random(vctx *c, const char *s, int matrix, double **out);

static int is_random(const char *text, const char **rest)
{
    const char *s = skip_blank(text);
    if (strncmp(s, "random", 6) != 0 || (s[6] && !is_blank(s[6]) && s[6] != ':'))
        return 0;
    *rest = s + 6;
    return 1;
}

static int parse_vector(vctx *c, const char *text, sec_entry *e)
{
    double *v;
    size_t n;
    const char *rest;
    if (c->p->type == WGF_PARAM_VECTOR && is_random(text, &rest)) {
        int rc = parse_random(c, rest, 0, &v);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < c->dim; i++)
            if (!in_range(c->p, v[i])) {
                wgf_cfg_verr(c, "random element %zu is %g, out of the key's range (give LO HI within it)",
                             i + 1, v[i]);
                free(v);
                return 1;
            }
        e->v = v;
        e->len = c->dim;
        return 0;
    }
    int rc = parse_numbers(c, text, text + strlen(text), "", &v, &n);
    if (rc != 0)
        return rc;
    size_t d = c->dim, given = n;
    if (c->p->type == WGF_PARAM_LIST || d == 0) {
        /* a list; also a vector of a section validated without a dimension */
        if (n == 0) {
            wgf_cfg_verr(c, "needs at least one number, got 0");
            return 1;
        }
    } else if (n == 1 && d > 1) {
        if (!doubles_fit(d)) {
            wgf_cfg_verr(c, "a vector of dim = %zu numbers does not fit in memory", d);
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
        wgf_cfg_verr(c, "needs %zu numbers (dim) or one to fill the vector, got %zu", d, n);
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
                                   "blocks K: b1, b2, ..., random SEED[: LO HI]";

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
        wgf_cfg_verr(c, "'blocks' needs a block size and a colon (allowed: blocks K: b1, b2, ..., "
                "each block K*K numbers)");
        return 1;
    }
    if (k < 1) {
        wgf_cfg_verr(c, "block size %ld is out of range (allowed: >= 1)", k);
        return 1;
    }
    if (d % (size_t)k != 0) {
        wgf_cfg_verr(c, "block size %ld does not divide the dimension %zu", k, d);
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
            wgf_cfg_verr(c, "block %zu needs %zu numbers (%zu x %zu), got %zu", got, K * K, K, K, n);
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
        wgf_cfg_verr(c, "'blocks %zu' needs %zu blocks (%zu / %zu), got %zu", K, nb, d, K, got);
        return 1;
    }
    return 0;
}

/* random SEED [: LO HI]: a problem drawn from its own seed, so that a sweep
 * over random problems is one key (MATH.md 6.1). A vector has independent
 * entries uniform in [LO, HI] (default [-1, 1]); a matrix is
 * Q diag(e) Q^T with Q Haar-distributed (Gram-Schmidt on a standard Gaussian
 * matrix, which is QR with R's diagonal positive) and e_i uniform in
 * [LO, HI] (default [0.5, 2], 0 < LO <= HI): symmetric positive definite
 * with its spectrum in the stated range. The generator is mt19937 seeded
 * from (SEED, 7001 vector / 7002 matrix, 0, 0), so that a vector and a matrix
 * of one seed are independent draws, and the same value reads as the same
 * numbers everywhere it is read. */
static int parse_random(vctx *c, const char *s, int matrix, double **out)
{
    static const char form[] = "random SEED or random SEED: LO HI";
    size_t d = c->dim;
    if (d == 0) {
        wgf_cfg_verr(c, "'random' needs the dimension, which is not known here");
        return 1;
    }
    s = skip_blank(s);
    char *end;
    errno = 0;
    unsigned long long seed = isdigit((unsigned char)*s) ? strtoull(s, &end, 10) : 0;
    if (!isdigit((unsigned char)*s) || errno == ERANGE || seed > ULONG_MAX) {
        wgf_cfg_verr(c, "'random' needs a seed, a non-negative integer (allowed: %s)", form);
        return 1;
    }
    double lo = matrix ? 0.5 : -1.0, hi = matrix ? 2.0 : 1.0;
    s = skip_blank(end);
    if (*s == ':') {
        double *b;
        size_t nb;
        int rc = parse_numbers(c, s + 1, s + strlen(s), "'random' range, ", &b, &nb);
        if (rc != 0)
            return rc;
        if (nb != 2) {
            wgf_cfg_verr(c, "'random' needs two numbers after the colon, got %zu (allowed: %s)", nb, form);
            free(b);
            return 1;
        }
        lo = b[0];
        hi = b[1];
        free(b);
    } else if (*s) {
        wgf_cfg_verr(c, "'random %llu' is followed by '%s' (allowed: %s)", seed, s, form);
        return 1;
    }
    if (!(lo <= hi) || (matrix && !(lo > 0.0))) {
        wgf_cfg_verr(c, "'random' range %g %g is empty%s (allowed: LO <= HI%s)", lo, hi,
                     matrix ? " or not positive" : "", matrix ? ", LO > 0" : "");
        return 1;
    }
    size_t dd = matrix ? d * d : d;
    if (!doubles_fit(2 * dd)) {
        wgf_cfg_verr(c, "a random value of dim = %zu does not fit in memory", d);
        return 1;
    }
    double *v = calloc(dd, sizeof *v), *q = matrix ? malloc(dd * sizeof *q) : NULL;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!v || (matrix && !q) || !r) {
        free(v);
        free(q);
        if (r)
            gsl_rng_free(r);
        return -1;
    }
    wgf_rng_set(r, (unsigned long)seed, matrix ? 7002 : 7001, 0, 0);
    if (!matrix) {
        for (size_t i = 0; i < d; i++)
            v[i] = lo + (hi - lo) * gsl_rng_uniform(r);
    } else {
        /* columns of q: Gaussian, then orthonormalised in order (modified Gram-Schmidt; a
         * Gaussian matrix has full rank with probability one) */
        for (size_t i = 0; i < dd; i++)
            q[i] = gsl_ran_gaussian(r, 1.0);
        for (size_t j = 0; j < d; j++) {
            for (size_t k = 0; k < j; k++) {
                double dot = 0.0;
                for (size_t i = 0; i < d; i++)
                    dot += q[i * d + k] * q[i * d + j];
                for (size_t i = 0; i < d; i++)
                    q[i * d + j] -= dot * q[i * d + k];
            }
            double nn = 0.0;
            for (size_t i = 0; i < d; i++)
                nn += q[i * d + j] * q[i * d + j];
            nn = sqrt(nn);
            for (size_t i = 0; i < d; i++)
                q[i * d + j] /= nn;
        }
        double *e = malloc(d * sizeof *e);
        if (!e) {
            free(v);
            free(q);
            gsl_rng_free(r);
            return -1;
        }
        for (size_t k = 0; k < d; k++)
            e[k] = lo + (hi - lo) * gsl_rng_uniform(r);
        for (size_t i = 0; i < d; i++) /* exactly symmetric: the lower triangle, mirrored */
            for (size_t j = 0; j <= i; j++) {
                double acc = 0.0;
                for (size_t k = 0; k < d; k++)
                    acc += q[i * d + k] * e[k] * q[j * d + k];
                v[i * d + j] = v[j * d + i] = acc;
            }
        free(e);
    }
    free(q);
    gsl_rng_free(r);
    *out = v;
    return 0;
}

static int parse_matrix(vctx *c, const char *text, sec_entry *e)
{
    size_t d = c->dim;
    if (d == 0) {
        wgf_cfg_verr(c, "a matrix needs the dimension, which is not known here");
        return 1;
    }
    const char *s = skip_blank(text), *w = s;
    while (*s && !is_blank(*s) && *s != ':')
        s++;
    size_t wl = (size_t)(s - w), dd;
    /* d comes from the file: d * d may wrap, or ask for more than the machine has */
    if (__builtin_mul_overflow(d, d, &dd) || !doubles_fit(dd)) {
        wgf_cfg_verr(c, "a dim x dim matrix (dim = %zu) does not fit in memory", d);
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
            wgf_cfg_verr(c, "'diag' needs %zu numbers (dim), got %zu", d, n);
            rc = 1;
        }
        for (size_t i = 0; rc == 0 && i < d; i++)
            m[i * d + i] = v[i];
    } else if (wl == 4 && memcmp(w, "full", 4) == 0) {
        rc = parse_numbers(c, s, s + strlen(s), "", &v, &n);
        if (rc == 0 && n != d * d) {
            wgf_cfg_verr(c, "'full' needs %zu numbers (%zu x %zu), got %zu", d * d, d, d, n);
            rc = 1;
        }
        if (rc == 0)
            memcpy(m, v, d * d * sizeof *m);
    } else if (wl == 6 && memcmp(w, "blocks", 6) == 0) {
        rc = parse_blocks(c, s, m);
    } else if (wl == 6 && memcmp(w, "random", 6) == 0) {
        double *r = NULL;
        rc = parse_random(c, s, 1, &r);
        if (rc == 0)
            memcpy(m, r, dd * sizeof *m);
        free(r);
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
int wgf_cfg_parse_value(vctx *c, const char *text, sec_entry *e)
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
    wgf_cfg_verr(c, "unknown parameter type %d in the schema", (int)c->p->type);
    return 1;
}

/* The keys of the schemas, first occurrence wins. */
