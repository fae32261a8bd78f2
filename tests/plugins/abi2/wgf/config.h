/* wgf/config.h: experiment files, parameter schemas and typed sections.
 *
 * An experiment is an INI file. Every section is validated against a schema
 * (the core's keys plus the chosen plugin's) before any work is done; a
 * plugin receives its section already typed and never parses text.
 *
 * Values:
 *   int, double, bool (true/false/yes/no/on/off/1/0), string, choice (one of
 *   a|b|c), vector (length dim; one number fills it), list (any length of
 *   numbers), matrix (dim x dim, one of:
 *       identity | <scalar> (times I) | diag v1 .. vd | full a11 a12 .. add
 *       | blocks K: b1 (K*K numbers), b2, ...   (block diagonal, K x K blocks)
 *   ).  Numbers in vectors and matrices are separated by spaces; a value may
 *   continue on following lines that start with white space. */
#ifndef WGF_CONFIG_H
#define WGF_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wgf_param_type {
    WGF_PARAM_INT = 1,
    WGF_PARAM_DOUBLE,
    WGF_PARAM_BOOL,
    WGF_PARAM_STRING,
    WGF_PARAM_CHOICE,
    WGF_PARAM_VECTOR, /* dim numbers; a single number fills the vector */
    WGF_PARAM_LIST,   /* any number (>= 1) of numbers */
    WGF_PARAM_MATRIX  /* dim x dim, forms above */
} wgf_param_type;

/* wgf_param.flags */
#define WGF_P_REQUIRED 0x01u /* must be given (def is then ignored) */
#define WGF_P_MIN 0x02u      /* value >= min (int, double; every element of vector/list) */
#define WGF_P_MAX 0x04u      /* value <= max */
#define WGF_P_MIN_OPEN 0x08u /* with WGF_P_MIN: value > min */
#define WGF_P_MAX_OPEN 0x10u /* with WGF_P_MAX: value < max */

/* One key of a schema. A schema is an array ended by an entry with key NULL. */
typedef struct wgf_param {
    const char *key;
    wgf_param_type type;
    const char *def;     /* default, as INI text; NULL: no default (absent unless given) */
    unsigned flags;
    double min, max;     /* range, with WGF_P_MIN / WGF_P_MAX */
    const char *choices; /* WGF_PARAM_CHOICE: "a|b|c" */
    const char *doc;     /* one line, for `wgf plugins NAME` */
} wgf_param;

/* ---- A validated, typed section (what a component's create() receives) ---- */

typedef struct wgf_section wgf_section;

const char *wgf_section_name(const wgf_section *s); /* "map", "energy.confine" */
const char *wgf_section_file(const wgf_section *s); /* the experiment file */
size_t wgf_section_dim(const wgf_section *s);       /* the run's dimension */

/* 1 if the key has a value (given, or a default), else 0. */
int wgf_section_has(const wgf_section *s, const char *key);
/* Line of the key in the file; 0 when it came from a default or --set. */
int wgf_section_line(const wgf_section *s, const char *key);

/* Typed getters. The key must be in the section's schema with that type and
 * have a value (check with wgf_section_has when it has no default); asking
 * for anything else is a programming error and returns 0 / NULL. */
long wgf_section_int(const wgf_section *s, const char *key);
double wgf_section_double(const wgf_section *s, const char *key);
int wgf_section_bool(const wgf_section *s, const char *key);
const char *wgf_section_string(const wgf_section *s, const char *key); /* also choice */
const double *wgf_section_vector(const wgf_section *s, const char *key, size_t *len); /* vector, list */
const double *wgf_section_matrix(const wgf_section *s, const char *key); /* dim*dim, row-major */
/* The value as written (or the default), for messages and config.ini. */
const char *wgf_section_text(const wgf_section *s, const char *key);

/* A semantic error found by a component in its own section:
 * "FILE:LINE: section.key: message" (a defaulted key: the section's LINE; no
 * LINE when the section is absent too; "--set section.key: " when set so);
 * returns WGF_EINVAL. */
int wgf_section_error(const wgf_section *s, const char *key, wgf_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ---- A list of error lines, so that all errors are reported at once ---- */

typedef struct wgf_diag {
    size_t n, cap;
    char **msg;
} wgf_diag;

void wgf_diag_init(wgf_diag *d);
void wgf_diag_add(wgf_diag *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void wgf_diag_print(const wgf_diag *d, FILE *f, const char *prefix); /* one line each */
void wgf_diag_free(wgf_diag *d);

/* ---- The experiment file (core side) ---- */

typedef struct wgf_config wgf_config;

/* The largest experiment file read (a dense 2000 x 2000 matrix written out
 * takes about 80 MB); less when memory is short. */
#define WGF_CONFIG_MAX_BYTES ((size_t)1 << 30)

/* Parse an INI file (a regular file, at most WGF_CONFIG_MAX_BYTES). Syntax errors (and duplicate keys) go to diag as
 * "FILE:LINE: ..." lines; returns WGF_OK, WGF_EINVAL (diag non-empty) or
 * WGF_EIO/WGF_ENOMEM (err filled). *cfg is set whenever the file was read. */
int wgf_config_load(wgf_config **cfg, const char *path, wgf_diag *diag, wgf_error *err);
/* Same, from a string (tests); name stands for the file name in messages. */
int wgf_config_load_string(wgf_config **cfg, const char *text, const char *name, wgf_diag *diag,
                           wgf_error *err);
void wgf_config_free(wgf_config *cfg);

/* --set section.key=value: adds or replaces a key (recorded as line 0,
 * source "--set"). WGF_EINVAL with a message when the text is malformed. */
int wgf_config_set(wgf_config *cfg, const char *assignment, wgf_error *err);

const char *wgf_config_file(const wgf_config *cfg);
size_t wgf_config_nsections(const wgf_config *cfg);
const char *wgf_config_section_name(const wgf_config *cfg, size_t i); /* file order */
int wgf_config_section_line(const wgf_config *cfg, const char *section); /* 0 if absent */
/* Raw text of a key, NULL when absent; *line (if not NULL) gets its line. */
const char *wgf_config_get(const wgf_config *cfg, const char *section, const char *key, int *line);

/* Validate one section against the concatenation of the given schemas
 * (NULL-terminated array of {0}-ended wgf_param arrays) for dimension dim.
 * Every problem is added to diag (unknown key, with the allowed keys; bad
 * type; out of range; missing required key; bad matrix); the keys are then
 * marked as used. Returns the typed section (also when the section is absent
 * from the file: defaults only), or NULL when diag got an error for it or on
 * allocation failure (then a line is added to diag too). */
wgf_section *wgf_config_section(wgf_config *cfg, const char *section,
                                const wgf_param *const *schemas, size_t dim, wgf_diag *diag);
void wgf_section_free(wgf_section *s);

/* Add to diag an "unknown section" line for every section of the file for
 * which allowed(name, user) returns 0. */
void wgf_config_check_sections(const wgf_config *cfg, int (*allowed)(const char *name, void *user),
                               void *user, wgf_diag *diag);

/* Write a section, every key of its schema with its value or default, as INI
 * text ("[name]\nkey = value\n..."), to f. */
int wgf_section_write(const wgf_section *s, FILE *f);

/* Bytes this process may allocate at most: the machine's physical memory,
 * or less under a resource limit (ulimit -v, -d). Sizes read from a file
 * are compared with it before anything of that size is allocated. */
size_t wgf_mem_available(void);

/* Print a schema as documentation: key, type, default, range or choices, doc. */
void wgf_param_print(const wgf_param *schema, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
