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

int wgf_error_prefix(wgf_error *err, const char *fmt, ...)
{
    if (!err)
        return WGF_OK;
    char buf[WGF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
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
    return err->code;
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
