/* cfg.h: what config.c (the INI file), values.c (typed values) and
 * schema.c (validation against schemas) share, and nothing else includes.
 * Calls go one way: schema.c -> values.c -> config.c. */
#ifndef WGF_CFG_H
#define WGF_CFG_H

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "wgf/config.h"
#include "strbuf.h"

static inline char *str_ndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static inline char *str_dup(const char *s) { return str_ndup(s, strlen(s)); }

static inline int is_blank(char c) { return isspace((unsigned char)c) != 0; }

static inline const char *skip_blank(const char *s)
{
    while (*s && is_blank(*s))
        s++;
    return s;
}

/* ---------------------------------------------------------------- config.c: the file */

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

/* The section called name, or NULL. */
cfg_sec *wgf_cfg_find_sec(const wgf_config *cfg, const char *name);
/* Add message m (malloc'd; NULL: out of memory) to d, which takes it; freed when d is NULL. */
void wgf_cfg_diag_take(wgf_diag *d, char *m);

/* ---------------------------------------------------------------- schema.c: a typed section */

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

/* ---------------------------------------------------------------- values.c */

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

/* "FILE:LINE: section.key: ", "--set section.key: " or "FILE: section.key: ". */
void wgf_cfg_where(wgf_strbuf *b, const char *file, int line, int from_set, const char *sec, const char *key);
/* A message about the value c describes, added to c->diag. */
void wgf_cfg_verr(vctx *c, const char *fmt, ...) WGF_STRBUF_PRINTF(2, 3);
/* ">= 1 and <= 10": the range of p; nothing without one. */
void wgf_cfg_range(wgf_strbuf *b, const wgf_param *p);
/* Is word close enough to candidate to suggest it ("did you mean")? *dist: the distance. */
int wgf_cfg_close_enough(const char *word, const char *candidate, size_t *dist);
/* Parse text for c->p's type into e. 0 ok, 1 reported, -1 out of memory. */
int wgf_cfg_parse_value(vctx *c, const char *text, sec_entry *e);

#endif
