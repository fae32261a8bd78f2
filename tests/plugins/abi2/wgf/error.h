/* wgf/error.h: status codes and the error record every fallible call fills.
 *
 * Library and plugin code never prints, exits or aborts: a function returns
 * WGF_OK or one of the codes below and describes the failure in a wgf_error.
 * The command turns the code into an exit status (wgf_error_exit_status). */
#ifndef WGF_ERROR_H
#define WGF_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    WGF_OK = 0,
    WGF_EINVAL = 1,   /* user input: configuration, command line, data file */
    WGF_ENOMEM = 2,   /* allocation failed */
    WGF_EIO = 3,      /* reading or writing a file */
    WGF_EPLUGIN = 4,  /* plugin discovery or loading */
    WGF_ENUMERIC = 5, /* numerical breakdown: NaN, non-invertible map, solver failure */
    WGF_EINTR = 6,    /* interrupted by the user (SIGINT) */
    WGF_EUNSUP = 7,   /* an optional operation a component does not provide */
    WGF_EDIVERGED = 8 /* a run diverging: an explicit step beyond its stability limit */
};

#define WGF_ERROR_MSG_MAX 1024

typedef struct wgf_error {
    int code;
    char msg[WGF_ERROR_MSG_MAX]; /* one line (one per problem, wgf_error_append), no trailing newline */
} wgf_error;

/* Fill err (if not NULL) with code and a printf-style message; returns code,
 * so callers write `return wgf_error_set(err, WGF_EINVAL, "...", ...);`. */
int wgf_error_set(wgf_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prefix an existing message: "context: old message". Keeps the code and
 * returns it; a record that nobody filled (code WGF_OK, or err NULL) stands
 * for a failure of unknown cause and gives WGF_EPLUGIN, never success. */
int wgf_error_prefix(wgf_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A component (a plugin) returned rc: make err say so, prefixed with the
 * context, and return the code to pass on. rc == WGF_OK returns WGF_OK and
 * leaves err alone. A code outside the list above becomes WGF_EPLUGIN. When
 * the component did not fill the record (its code is not rc, or the message
 * is empty), the message says that it failed without one: a refusal is a
 * refusal, with or without a message. Callers clear err before the call
 * (wgf_error_clear) so that an earlier message is not taken for its own. */
int wgf_error_forward(wgf_error *err, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* One more problem for err: when err already holds an error, a new line
 * after its message (a component reports every problem it found at once;
 * the command prints a line each), otherwise as wgf_error_set. Lines that do
 * not fit in the record are dropped whole. Returns err's code. */
int wgf_error_append(wgf_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* 1 when code is one of the codes above other than WGF_OK. */
int wgf_error_known(int code);

void wgf_error_clear(wgf_error *err);

/* Short name of a code ("invalid input", "numerical failure", ...). */
const char *wgf_strerror(int code);

/* Exit status of the command for a code: 0 ok, 2 user input or plugins,
 * 3 numerical failure, 130 interrupted, 1 anything else. */
int wgf_error_exit_status(int code);

/* A GSL status (nonzero) as a wgf error: GSL_ENOMEM is WGF_ENOMEM, a bad
 * argument (GSL_EINVAL, GSL_EBADLEN, GSL_ENOTSQR) WGF_EINVAL, anything else
 * (not positive definite, singular, no convergence, ...) WGF_ENUMERIC. The
 * message is "context: GSL's description (GSL status N)". libwgf turns GSL's
 * aborting error handler off when a problem, a registry or a self-test is
 * made, so that GSL functions return these statuses instead. */
int wgf_error_gsl(wgf_error *err, int gsl_status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
