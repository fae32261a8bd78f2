/* scoreenergy.c: an energy that reads the score s, for the chain rule's score path:
 *     F = 1/N sum_n 1/2 |s_n|^2 + w <s_n, x_n>,
 *     a_n = dF/dx_n = w s_n / N,   c_n = 0,   e_n = dF/ds_n = (s_n + w x_n) / N.
 * Built twice: scoreenergy.so with eval_s, and scorenoevals.so (SCORE_NO_EVAL_S) without it,
 * which the core must refuse at configuration. No Wasserstein gradient. */
#include <stdlib.h>

#include <wgf/plugin.h>

#ifdef SCORE_NO_EVAL_S
#define NAME "scorenoevals"
#else
#define NAME "scoreenergy"
#endif

typedef struct {
    double w;
} se;

static int se_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    se *s = malloc(sizeof *s);
    if (!s)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    s->w = wgf_section_double(sec, "w");
    *state = s;
    return WGF_OK;
}

static void se_destroy(void *state) { free(state); }

static unsigned se_needs(void *state)
{
    (void)state;
    return WGF_NEEDS_S;
}

static int se_eval_s(void *state, const wgf_batch *b, double *F, double *a, double *c, double *e,
                     wgf_error *err)
{
    const se *st = state;
    if (!b->s)
        return wgf_error_set(err, WGF_EINVAL, NAME ": the batch has no scores");
    size_t N = b->n, d = b->d;
    double sum = 0, in = 1.0 / (double)N;
    for (size_t k = 0; k < N * d; k++) {
        double s = b->s[k], x = b->x[k];
        sum += 0.5 * s * s + st->w * s * x;
        if (a)
            a[k] = st->w * s * in;
        if (e)
            e[k] = (s + st->w * x) * in;
    }
    if (c)
        for (size_t n = 0; n < N; n++)
            c[n] = 0;
    *F = sum * in;
    return WGF_OK;
}

static int se_eval(void *state, const wgf_batch *b, double *F, double *a, double *c, wgf_error *err)
{
    return se_eval_s(state, b, F, a, c, NULL, err);
}

static const wgf_energy_vt se_vt = {
    .create = se_create,
    .destroy = se_destroy,
    .needs = se_needs,
    .eval = se_eval,
#ifndef SCORE_NO_EVAL_S
    .eval_s = se_eval_s,
#endif
};

static const wgf_param se_params[] = {
    {"w", WGF_PARAM_DOUBLE, "1", 0, 0, 0, NULL, "weight of <s, x>"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin se_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_ENERGY,
    .name = NAME,
    .summary = "test energy E[|s|^2 / 2 + w <s, x>], reading the score",
    .params = se_params,
    .vtable = &se_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &se_plugin : NULL; }
