/* schema.c: sections validated against parameter schemas (wgf_param):
 * every key given is known (else "did you mean"), every value parses as its
 * type within its range (values.c), defaults fill what is not given, a
 * required key or section that is missing is reported; then the typed
 * look-ups plugins use (wgf_section_*), a section written back as INI
 * (config.ini of a run) and a schema printed as a table (`wgf plugins NAME`). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

/* ================================================================ typed sections */

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

int wgf_section_given(const wgf_section *s, const char *key)
{
    const sec_entry *e = entry(s, key);
    return e && e->has && (e->line > 0 || e->from_set);
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

int wgf_section_error(const wgf_section *s, const char *key, wgf_error *err, const char *fmt, ...)
{
    wgf_strbuf b = {0};
    if (s) {
        const sec_entry *e = key ? entry(s, key) : NULL;
        /* a defaulted key has no line: the section's, where it would be written */
        if (key)
            wgf_cfg_where(&b, s->file, e && e->line ? e->line : s->line, e ? e->from_set : 0, s->name, key);
        else
            wgf_cfg_where(&b, s->file, s->line, 0, s->name, NULL);
    }
    va_list ap;
    va_start(ap, fmt);
    wgf_strbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    char *m = wgf_strbuf_take(&b);
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
    wgf_strbuf list = {0};
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < np; i++) {
        wgf_strbuf_printf(&list, "%s%s", i ? ", " : "", params[i]->key);
        size_t d;
        if (wgf_cfg_close_enough(c->key, params[i]->key, &d) && d < best_d) {
            best = params[i]->key;
            best_d = d;
        }
    }
    char *allowed = wgf_strbuf_take(&list);
    if (!allowed)
        c->oom = 1;
    else if (best)
        wgf_cfg_verr(c, "unknown key (allowed: %s; did you mean '%s'?)", np ? allowed : "none", best);
    else
        wgf_cfg_verr(c, "unknown key (allowed: %s)", np ? allowed : "none");
    free(allowed);
}

wgf_section *wgf_config_section(wgf_config *cfg, const char *section,
                                const wgf_param *const *schemas, size_t dim, wgf_diag *diag)
{
    if (!cfg || !section)
        return NULL;
    cfg_sec *cs = wgf_cfg_find_sec(cfg, section);
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
        if (!e->text || wgf_cfg_parse_value(&c, k->value, e) < 0)
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
                wgf_strbuf b = {0};
                wgf_strbuf_printf(&b, "%s: [%s]: missing section (%s.%s is required%s%s)", c.file, section,
                          section, p->key, p->doc ? ": " : "", p->doc ? p->doc : "");
                c.nerr++;
                wgf_cfg_diag_take(diag, wgf_strbuf_take(&b));
            } else if (p->doc)
                wgf_cfg_verr(&c, "missing required key (%s: %s)", p->key, p->doc);
            else
                wgf_cfg_verr(&c, "missing required key");
            continue;
        }
        if (!p->def)
            continue;
        c.line = 0;
        e->has = 1;
        e->text = str_dup(p->def);
        if (!e->text || wgf_cfg_parse_value(&c, p->def, e) < 0)
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
    wgf_strbuf b = {0};
    switch (p->type) {
    case WGF_PARAM_INT:
    case WGF_PARAM_DOUBLE:
    case WGF_PARAM_VECTOR:
    case WGF_PARAM_LIST:
        wgf_cfg_range(&b, p);
        break;
    case WGF_PARAM_BOOL:
        wgf_strbuf_add(&b, "true|false");
        break;
    case WGF_PARAM_CHOICE:
        wgf_strbuf_add(&b, p->choices ? p->choices : "");
        break;
    case WGF_PARAM_MATRIX:
        wgf_strbuf_add(&b, "identity|<number>|diag|full|blocks|random");
        break;
    case WGF_PARAM_STRING:
        break;
    }
    if (b.len == 0)
        wgf_strbuf_add(&b, "-");
    return wgf_strbuf_take(&b);
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
