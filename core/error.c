/* error.c: the error record. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "wgf/error.h"

int wgf_error_set(wgf_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

/* Put "context: " (formatted from fmt, ap) before err->msg. */
static void prefix_msg(wgf_error *err, const char *fmt, va_list ap)
{
    char buf[WGF_ERROR_MSG_MAX];
    int k = vsnprintf(buf, sizeof buf, fmt, ap);
    size_t used = k < 0 ? 0 : ((size_t)k < sizeof buf - 1 ? (size_t)k : sizeof buf - 1);
    if (used + 2 < sizeof buf) {
        buf[used++] = ':';
        buf[used++] = ' ';
        size_t rest = strnlen(err->msg, sizeof err->msg);
        if (rest > sizeof buf - 1 - used)
            rest = sizeof buf - 1 - used;
        memcpy(buf + used, err->msg, rest);
        used += rest;
    }
    buf[used] = '\0';
    memcpy(err->msg, buf, used + 1);
}

int wgf_error_prefix(wgf_error *err, const char *fmt, ...)
{
    /* Only ever called on a failure: an empty record must not read as success. */
    if (!err)
        return WGF_EPLUGIN;
    if (err->code == WGF_OK) {
        err->code = WGF_EPLUGIN;
        snprintf(err->msg, sizeof err->msg, "failed without a message");
    }
    va_list ap;
    va_start(ap, fmt);
    prefix_msg(err, fmt, ap);
    va_end(ap);
    return err->code;
}

int wgf_error_append(wgf_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    char line[WGF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t used = err->code != WGF_OK ? strnlen(err->msg, sizeof err->msg) : 0;
    if (used == 0 || used == sizeof err->msg) {
        memcpy(err->msg, line, sizeof line);
        err->code = code;
        return code;
    }
    size_t n = strlen(line);
    if (used + 1 + n < sizeof err->msg) {
        err->msg[used] = '\n';
        memcpy(err->msg + used + 1, line, n + 1);
    }
    return err->code;
}

int wgf_error_known(int code) { return code >= WGF_EINVAL && code <= WGF_EUNSUP; }

int wgf_error_forward(wgf_error *err, int rc, const char *fmt, ...)
{
    if (rc == WGF_OK)
        return WGF_OK;
    int code = wgf_error_known(rc) ? rc : WGF_EPLUGIN;
    if (!err)
        return code;
    int filled = err->code == rc && err->msg[0] != '\0' && memchr(err->msg, '\0', sizeof err->msg);
    if (!filled) {
        if (wgf_error_known(rc))
            snprintf(err->msg, sizeof err->msg, "failed without a message (%s)", wgf_strerror(rc));
        else
            snprintf(err->msg, sizeof err->msg, "failed with an unknown status %d and no message", rc);
    }
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    prefix_msg(err, fmt, ap);
    va_end(ap);
    return code;
}

void wgf_error_clear(wgf_error *err)
{
    if (err) {
        err->code = WGF_OK;
        err->msg[0] = '\0';
    }
}

const char *wgf_strerror(int code)
{
    switch (code) {
    case WGF_OK: return "success";
    case WGF_EINVAL: return "invalid input";
    case WGF_ENOMEM: return "out of memory";
    case WGF_EIO: return "input/output error";
    case WGF_EPLUGIN: return "plugin error";
    case WGF_ENUMERIC: return "numerical failure";
    case WGF_EINTR: return "interrupted";
    case WGF_EUNSUP: return "not supported";
    case WGF_EDIVERGED: return "diverged";
    default: return "unknown error";
    }
}

int wgf_error_exit_status(int code)
{
    switch (code) {
    case WGF_OK: return 0;
    case WGF_EINVAL:
    case WGF_EPLUGIN:
    case WGF_EUNSUP: return 2;
    case WGF_ENUMERIC:
    case WGF_EDIVERGED: return 3;
    case WGF_EINTR: return 130;
    default: return 1;
    }
}

int wgf_error_gsl(wgf_error *err, int gsl_status, const char *fmt, ...)
{
    int code = gsl_status == GSL_ENOMEM ? WGF_ENOMEM
               : (gsl_status == GSL_EINVAL || gsl_status == GSL_EBADLEN || gsl_status == GSL_ENOTSQR)
                   ? WGF_EINVAL
                   : WGF_ENUMERIC;
    if (err) {
        char ctx[WGF_ERROR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx, sizeof ctx, fmt, ap);
        va_end(ap);
        wgf_error_set(err, code, "%.900s: %s (GSL status %d)", ctx, gsl_strerror(gsl_status), gsl_status);
    }
    return code;
}
