# WGF_CHECK_GSL: GSL through pkg-config, else gsl-config. Sets GSL_CFLAGS, GSL_LIBS.
AC_DEFUN([WGF_CHECK_GSL], [
  PKG_CHECK_MODULES([GSL], [gsl >= 2.5], [], [
    AC_PATH_PROG([GSL_CONFIG], [gsl-config], [no])
    AS_IF([test "x$GSL_CONFIG" = xno],
      [AC_MSG_ERROR([GSL >= 2.5 not found (install libgsl-dev, or set PKG_CONFIG_PATH)])])
    GSL_CFLAGS=`$GSL_CONFIG --cflags`
    GSL_LIBS=`$GSL_CONFIG --libs`
  ])
  wgf_save_CFLAGS="$CFLAGS"; wgf_save_LIBS="$LIBS"
  CFLAGS="$CFLAGS $GSL_CFLAGS"; LIBS="$GSL_LIBS $LIBS"
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <gsl/gsl_multimin.h>]],
                                  [[return gsl_multimin_fdfminimizer_vector_bfgs2 == 0;]])],
    [], [AC_MSG_ERROR([cannot link a program against GSL ($GSL_LIBS)])])
  CFLAGS="$wgf_save_CFLAGS"; LIBS="$wgf_save_LIBS"
  AC_SUBST([GSL_CFLAGS])
  AC_SUBST([GSL_LIBS])
])
