# AX_WGF_C11: make sure the compiler accepts C11 (adds -std=c11 when needed).
AC_DEFUN([AX_WGF_C11], [
  AC_CACHE_CHECK([for C11 support], [wgf_cv_c11], [
    wgf_save_CFLAGS="$CFLAGS"
    for flag in "" "-std=c11" "-std=gnu11"; do
      CFLAGS="$wgf_save_CFLAGS $flag"
      AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[
#if !defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L
#error not C11
#endif
_Static_assert(1, "c11");]], [[]])], [wgf_cv_c11="${flag:-yes}"; break], [wgf_cv_c11=no])
    done
    CFLAGS="$wgf_save_CFLAGS"])
  AS_CASE([$wgf_cv_c11],
    [no], [AC_MSG_ERROR([a C11 compiler is required])],
    [yes], [],
    [CFLAGS="$CFLAGS $wgf_cv_c11"])
])
