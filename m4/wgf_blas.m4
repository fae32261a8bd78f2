# WGF_CHECK_BLAS: --with-blas=gsl|openblas. GSL brings its reference CBLAS
# (gslcblas); openblas replaces it with OpenBLAS's CBLAS. Adjusts GSL_LIBS and
# sets WGF_BLAS_LIBS.
AC_DEFUN([WGF_CHECK_BLAS], [
  AC_ARG_WITH([blas],
    [AS_HELP_STRING([--with-blas=gsl|openblas], [CBLAS used under GSL (default: gsl)])],
    [], [with_blas=gsl])
  AS_CASE([$with_blas],
    [gsl], [WGF_BLAS_LIBS="-lgslcblas"],
    [openblas], [
      PKG_CHECK_MODULES([OPENBLAS], [openblas], [WGF_BLAS_LIBS="$OPENBLAS_LIBS"],
        [AC_CHECK_LIB([openblas], [cblas_dgemm], [WGF_BLAS_LIBS="-lopenblas"],
           [AC_MSG_ERROR([--with-blas=openblas: OpenBLAS not found (install libopenblas-dev)])])])
      GSL_LIBS=`echo " $GSL_LIBS " | sed 's/ -lgslcblas / /'`
      GSL_LIBS="$GSL_LIBS $WGF_BLAS_LIBS"],
    [AC_MSG_ERROR([--with-blas: unknown value '$with_blas' (allowed: gsl, openblas)])])
  AC_SUBST([WGF_BLAS_LIBS])
])
