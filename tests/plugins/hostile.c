/* hostile.c: plugins that break the contract in the ways a careless author would, for tests of
 * the core's defences. Built four times (Makefile.am), one plugin per .so, chosen by a macro:
 *
 *   HOSTILE_SILENTCREATE  energy 'silentcreate': create() returns WGF_EINVAL without a message
 *   HOSTILE_SILENTEVAL    energy 'silenteval': eval() and wgrad() return WGF_ENUMERIC without a
 *                         message (create is fine)
 *   HOSTILE_NOPARAMS      energy 'noparams': a descriptor with params = NULL (otherwise the
 *                         energy |x|^2/2)
 *   HOSTILE_ZEROMAP       map 'zeromap': reports 0 parameters (the identity with nothing to learn)
 *   HOSTILE_SILENTSCHEME  scheme 'silentscheme': run() returns WGF_ENUMERIC without a message
 *   HOSTILE_ZEROSTAGES    map 'zerostages': one parameter but 0 stages (the contract says S >= 1)
 */
#include <stdlib.h>
#include <string.h>

#include <wgf/plugin.h>

static void he_destroy(void *state) { free(state); }

/* ------------------------------------------------------------ energies */

#if !defined(HOSTILE_ZEROMAP) && !defined(HOSTILE_ZEROSTAGES) && !defined(HOSTILE_SILENTSCHEME)
static int he_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)info;
#ifdef HOSTILE_SILENTCREATE
    (void)state;
    (void)err;
    return WGF_EINVAL; /* no wgf_error_set: the record stays as the core left it */
#else
    (void)err;
    *state = malloc(1);
    return *state ? WGF_OK : WGF_ENOMEM;
#endif
}

static int he_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    (void)state;
    (void)err;
#ifdef HOSTILE_SILENTEVAL
    (void)b;
    (void)F;
    (void)a;
    (void)c;
    return WGF_ENUMERIC;
#else
    double s = 0.0, w = 1.0 / (double)b->n;
    for (size_t k = 0; k < b->n * b->d; k++)
        s += b->x[k] * b->x[k];
    if (F)
        *F = 0.5 * w * s;
    if (a)
        for (size_t k = 0; k < b->n * b->d; k++)
            a[k] = w * b->x[k];
    if (c)
        memset(c, 0, b->n * sizeof *c);
    return WGF_OK;
#endif
}

static int he_wgrad(void *state, const wgf_batch *b, double *g, wgf_error *err)
{
    (void)state;
    (void)err;
#ifdef HOSTILE_SILENTEVAL
    (void)b;
    (void)g;
    return WGF_ENUMERIC;
#else
    memcpy(g, b->x, b->n * b->d * sizeof *g);
    return WGF_OK;
#endif
}

static const wgf_energy_vt he_vt = {
    .create = he_create,
    .destroy = he_destroy,
    .eval = he_eval,
    .wgrad = he_wgrad,
};

#if defined(HOSTILE_SILENTCREATE)
#define HOSTILE_NAME "silentcreate"
#elif defined(HOSTILE_SILENTEVAL)
#define HOSTILE_NAME "silenteval"
#elif defined(HOSTILE_NOPARAMS)
#define HOSTILE_NAME "noparams"
#endif

#ifdef HOSTILE_NAME
#ifndef HOSTILE_NOPARAMS
static const wgf_param he_params[] = {{0}};
#endif

static const wgf_plugin he_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = HOSTILE_NAME,
    .summary = "hostile test energy",
#ifdef HOSTILE_NOPARAMS
    .params = NULL,
#else
    .params = he_params,
#endif
    .vtable = &he_vt,
};
#define HOSTILE_PLUGIN he_plugin
#endif
#endif /* energies */

/* ------------------------------------------------------------ a map with nothing to learn */

#if defined(HOSTILE_ZEROMAP) || defined(HOSTILE_ZEROSTAGES)
static int zm_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec;
    (void)err;
    size_t *d = malloc(sizeof *d);
    if (!d)
        return wgf_error_set(err, WGF_ENOMEM, "zeromap: out of memory");
    *d = info->dim;
    *state = d;
    return WGF_OK;
}

#ifdef HOSTILE_ZEROSTAGES
static size_t zm_nparams(void *state) { (void)state; return 1; }
static size_t zm_nstages(void *state) { (void)state; return 0; }
#else
static size_t zm_nparams(void *state) { (void)state; return 0; }
static size_t zm_nstages(void *state) { (void)state; return 1; }
#endif

static int zm_init(void *state, gsl_rng *rng, double *theta, wgf_error *err)
{
    (void)state, (void)rng, (void)theta, (void)err;
    return WGF_OK;
}

static int zm_check(void *state, const double *theta, wgf_error *err)
{
    (void)state, (void)theta, (void)err;
    return WGF_OK;
}

static void *zm_tape_create(void *state, size_t n) { (void)state, (void)n; return malloc(1); }
static void zm_tape_destroy(void *state, void *tape) { (void)state; free(tape); }

static int zm_forward(void *state, const double *theta, size_t n, const double *z, void *tape,
                      double *const *x, double *const *ld, wgf_error *err)
{
    (void)theta, (void)tape, (void)err;
    size_t d = *(size_t *)state;
    for (size_t k = 0; k <= 1; k++) {
        if (x && x[k])
            memcpy(x[k], z, n * d * sizeof *z);
        if (ld && ld[k])
            memset(ld[k], 0, n * sizeof *ld[k]);
    }
    return WGF_OK;
}

static int zm_jvp(void *state, const double *theta, size_t n, void *tape, const double *v, double *jx,
                  double *jld, wgf_error *err)
{
    (void)theta, (void)tape, (void)v, (void)err;
    size_t d = *(size_t *)state;
    memset(jx, 0, n * d * sizeof *jx);
    if (jld)
        memset(jld, 0, n * sizeof *jld);
    return WGF_OK;
}

static int zm_path_vjp(void *state, const double *theta, size_t n, void *tape, const double *const *xbar,
                       const double *const *ldbar, const double *const *sbar, double *thetabar,
                       wgf_error *err)
{
    (void)state, (void)theta, (void)n, (void)tape, (void)xbar, (void)ldbar, (void)sbar, (void)thetabar,
        (void)err;
    return WGF_OK;
}

static const wgf_map_vt zm_vt = {
    .create = zm_create,
    .destroy = he_destroy,
    .nparams = zm_nparams,
    .nstages = zm_nstages,
    .init = zm_init,
    .check = zm_check,
    .tape_create = zm_tape_create,
    .tape_destroy = zm_tape_destroy,
    .forward = zm_forward,
    .jvp = zm_jvp,
    .path_vjp = zm_path_vjp,
};

static const wgf_param zm_params[] = {{0}};

static const wgf_plugin zm_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_MAP,
#ifdef HOSTILE_ZEROSTAGES
    .name = "zerostages",
#else
    .name = "zeromap",
#endif
    .summary = "hostile test map: no parameters",
    .params = zm_params,
    .vtable = &zm_vt,
};
#define HOSTILE_PLUGIN zm_plugin
#endif

/* ------------------------------------------------------------ a scheme that fails silently */

#ifdef HOSTILE_SILENTSCHEME
static int ss_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)sec, (void)info, (void)err;
    *state = malloc(1);
    return *state ? WGF_OK : WGF_ENOMEM;
}

static int ss_run(void *state, wgf_problem *p, wgf_error *err)
{
    (void)state, (void)p, (void)err;
    return WGF_ENUMERIC;
}

static const wgf_scheme_vt ss_vt = {.create = ss_create, .destroy = he_destroy, .run = ss_run};

static const wgf_param ss_params[] = {{0}};

static const wgf_plugin ss_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "silentscheme",
    .summary = "hostile test scheme: fails without a message",
    .params = ss_params,
    .vtable = &ss_vt,
};
#define HOSTILE_PLUGIN ss_plugin
#endif

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);

const wgf_plugin *wgf_plugin_entry(unsigned index)
{
    return index == 0 ? &HOSTILE_PLUGIN : NULL;
}
