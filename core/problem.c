/* problem.c: the helpers schemes and metrics compose at run time
 * (wgf/problem.h): the energy and its theta-gradient by the chain rule,
 * Wasserstein gradients and their reverse pass, the metric prepared, applied
 * and solved (MINRES when the metric does not solve itself), the map's
 * constraints, and observation (the monitors a step or a path is reported
 * to). The problem is built by setup.c. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <gsl/gsl_errno.h>

#include "internal.h"

/* ------------------------------------------------------------ helpers */

const wgf_problem_info *wgf_problem_get_info(const wgf_problem *p) { return &p->info; }
size_t wgf_problem_nparams(const wgf_problem *p) { return p->nparams; }
size_t wgf_problem_nstages(const wgf_problem *p) { return p->nstages; }
double *wgf_problem_theta(wgf_problem *p) { return p->theta; }
unsigned wgf_problem_energy_needs(const wgf_problem *p) { return p->energy_needs; }

void wgf_problem_scratch_free(wgf_problem *p)
{
    wgf_free(p->a);
    wgf_free(p->c);
    wgf_free(p->a_sum);
    wgf_free(p->c_sum);
    wgf_free(p->e);
    wgf_free(p->e_sum);
    p->a = p->c = p->a_sum = p->c_sum = p->e = p->e_sum = NULL;
    p->scratch_n = 0;
}

static int ensure_scratch(wgf_problem *p, size_t n, wgf_error *err)
{
    if (p->scratch_n >= n)
        return WGF_OK;
    size_t d = p->info.dim;
    wgf_problem_scratch_free(p);
    p->a = wgf_alloc_doubles(n * d);
    p->c = wgf_alloc_doubles(n);
    p->a_sum = wgf_alloc_doubles(n * d);
    p->c_sum = wgf_alloc_doubles(n);
    int ok = p->a && p->c && p->a_sum && p->c_sum;
    if (p->energy_needs & WGF_NEEDS_S) {
        p->e = wgf_alloc_doubles(n * d);
        p->e_sum = wgf_alloc_doubles(n * d);
        ok = ok && p->e && p->e_sum;
    }
    p->scratch_n = ok ? n : 0;
    return p->scratch_n ? WGF_OK : wgf_error_set(err, WGF_ENOMEM, "out of memory");
}

int wgf_problem_energy(wgf_problem *p, wgf_eval *ev, double *F, double *grad, wgf_error *err)
{
    size_t n = wgf_eval_n(ev), d = p->info.dim, S = wgf_eval_nstages(ev);
    const wgf_batch *b = wgf_eval_batch(ev, S);
    int rc = ensure_scratch(p, n, err);
    if (rc != WGF_OK)
        return rc;
    double total = 0;
    int uses_s = (p->energy_needs & WGF_NEEDS_S) != 0;
    if (uses_s && !b->s)
        return wgf_error_set(err, WGF_EINVAL, "the energy reads scores and this batch has none");
    if ((p->energy_needs & WGF_NEEDS_L) && !b->l)
        return wgf_error_set(err, WGF_EINVAL, "the energy reads log-densities and this batch has none "
                             "(created with WGF_EVAL_NO_L)");
    if (grad) {
        memset(p->a_sum, 0, n * d * sizeof(double));
        memset(p->c_sum, 0, n * sizeof(double));
        if (uses_s)
            memset(p->e_sum, 0, n * d * sizeof(double));
    }
    for (size_t i = 0; i < p->nterms; i++) {
        wgf_energy_term *t = &p->terms[i];
        double Fi = 0;
        wgf_error_clear(err);
        int term_s = (t->needs & WGF_NEEDS_S) != 0;
        if (term_s)
            rc = t->vt->eval_s(t->state, b, &Fi, grad ? p->a : NULL, grad ? p->c : NULL,
                               grad ? p->e : NULL, err);
        else
            rc = t->vt->eval(t->state, b, &Fi, grad ? p->a : NULL, grad ? p->c : NULL, err);
        if (rc != WGF_OK)
            return wgf_error_forward(err, rc, "energy '%s'", t->plugin->name);
        if (!isfinite(Fi))
            return wgf_error_set(err, WGF_ENUMERIC,
                                 "energy '%s' is not finite (%g): the samples or densities "
                                 "have left the range the energy can handle",
                                 t->plugin->name, Fi);
        total += Fi;
        if (grad) {
            for (size_t k = 0; k < n * d; k++)
                p->a_sum[k] += p->a[k];
            for (size_t k = 0; k < n; k++)
                p->c_sum[k] += p->c[k];
            if (term_s)
                for (size_t k = 0; k < n * d; k++)
                    p->e_sum[k] += p->e[k];
        }
    }
    *F = total;
    if (!grad)
        return WGF_OK;
    /* grad_theta F = sum_n J_n^T a_n + c_n dl_n/dtheta + (ds_n/dtheta)^T e_n (MATH.md 2) */
    int uses_l = (p->energy_needs & WGF_NEEDS_L) != 0;
    rc = wgf_eval_vjp(ev, p->a_sum, uses_l ? p->c_sum : NULL, uses_s ? p->e_sum : NULL, grad, err);
    if (rc != WGF_OK)
        return rc;
    for (size_t j = 0; j < p->nparams; j++)
        if (!isfinite(grad[j]))
            return wgf_error_set(err, WGF_ENUMERIC, "the energy gradient has a non-finite entry (%zu)", j);
    return WGF_OK;
}

int wgf_problem_wgrad(wgf_problem *p, wgf_eval *ev, size_t stage, double *g, wgf_error *err)
{
    size_t n = wgf_eval_n(ev), d = p->info.dim;
    const wgf_batch *b = wgf_eval_batch(ev, stage);
    if (!b)
        return wgf_error_set(err, WGF_EINVAL, "stage %zu is not kept in this batch", stage);
    if ((p->energy_needs & WGF_WGRAD_NEEDS_S) && !b->s)
        return wgf_error_set(err, WGF_EINVAL,
                             "the Wasserstein gradient reads scores and this batch has none (create "
                             "it with WGF_EVAL_SCORE, or declare WGF_SCHEME_NEEDS_WGRAD)");
    if ((p->energy_needs & WGF_WGRAD_NEEDS_L) && !b->l)
        return wgf_error_set(err, WGF_EINVAL, "the Wasserstein gradient reads log-densities and this "
                             "batch has none (created with WGF_EVAL_NO_L)");
    int rc = ensure_scratch(p, n, err);
    if (rc != WGF_OK)
        return rc;
    memset(g, 0, n * d * sizeof(double));
    for (size_t i = 0; i < p->nterms; i++) {
        wgf_energy_term *t = &p->terms[i];
        if (!t->vt->wgrad)
            return wgf_error_set(err, WGF_EUNSUP, "energy '%s' has no Wasserstein gradient",
                                 t->plugin->name);
        wgf_error_clear(err);
        rc = t->vt->wgrad(t->state, b, p->a, err);
        if (rc != WGF_OK)
            return wgf_error_forward(err, rc, "energy '%s'", t->plugin->name);
        for (size_t k = 0; k < n * d; k++)
            g[k] += p->a[k];
    }
    return WGF_OK;
}

int wgf_problem_misfit_possible(const wgf_problem *p, const char **why)
{
    for (size_t i = 0; i < p->nterms; i++)
        if (!p->terms[i].vt->wgrad) {
            *why = "an energy term has no Wasserstein gradient";
            return 0;
        }
    if ((p->energy_needs & WGF_WGRAD_NEEDS_S) && !(wgf_dist_provides(p->dist) & WGF_DIST_SCORE)) {
        *why = "the Wasserstein gradient reads scores and the initial law has none";
        return 0;
    }
    return 1;
}

int wgf_problem_misfit(wgf_problem *p, wgf_eval *ev, const double *zeta, double *g, double *jx,
                       wgf_step_info *info, wgf_error *err)
{
    size_t n = wgf_eval_n(ev), d = wgf_eval_dim(ev);
    int rc = wgf_problem_wgrad(p, ev, wgf_eval_nstages(ev), g, err);
    if (rc != WGF_OK)
        return rc;
    if (!p->metric->velocity) {
        rc = wgf_eval_jvp(ev, zeta, jx, err);
    } else { /* the metric's own field, on ev's samples: prepared there unless the solve was */
        if (p->metric_ev != ev && (rc = wgf_problem_metric_prepare(p, ev, err)) != WGF_OK)
            return rc;
        wgf_error_clear(err);
        rc = p->metric->velocity(p->metric_state, zeta, jx, err);
        rc = wgf_error_forward(err, rc, "metric '%s': velocity", p->metric_plugin->name);
    }
    if (rc != WGF_OK)
        return rc;
    double r2 = 0, g2 = 0;
    for (size_t i = 0; i < n * d; i++) {
        r2 += (g[i] - jx[i]) * (g[i] - jx[i]);
        g2 += g[i] * g[i];
    }
    info->has_misfit = 1;
    info->misfit = sqrt(r2 / (double)n);
    info->misfit_rel = g2 > 0 ? sqrt(r2 / g2) : NAN;
    return WGF_OK;
}

int wgf_problem_wgrad_vjp(wgf_problem *p, wgf_eval *ev, size_t stage, const double *gbar, double *xbar,
                          double *lbar, double *sbar, wgf_error *err)
{
    const wgf_batch *b = wgf_eval_batch(ev, stage);
    if (!b)
        return wgf_error_set(err, WGF_EINVAL, "stage %zu is not kept in this batch", stage);
    if ((p->energy_needs & WGF_WGRAD_NEEDS_S) && !b->s)
        return wgf_error_set(err, WGF_EINVAL,
                             "the Wasserstein gradient reads scores and this batch has none (create "
                             "it with WGF_EVAL_SCORE, or declare WGF_SCHEME_NEEDS_WGRAD)");
    if ((p->energy_needs & WGF_WGRAD_NEEDS_L) && !b->l)
        return wgf_error_set(err, WGF_EINVAL, "the Wasserstein gradient reads log-densities and this "
                             "batch has none (created with WGF_EVAL_NO_L)");
    for (size_t i = 0; i < p->nterms; i++) {
        wgf_energy_term *t = &p->terms[i];
        if (!t->vt->wgrad_vjp)
            return wgf_error_set(err, WGF_EUNSUP, "energy '%s' has no reverse pass of its "
                                 "Wasserstein gradient", t->plugin->name);
        wgf_error_clear(err);
        int rc = t->vt->wgrad_vjp(t->state, b, gbar, xbar, lbar, sbar, err);
        if (rc != WGF_OK)
            return wgf_error_forward(err, rc, "energy '%s'", t->plugin->name);
    }
    return WGF_OK;
}

static int metric_op(void *user, const double *v, double *out, wgf_error *err)
{
    wgf_problem *p = user;
    p->metric_products++;
    wgf_error_clear(err);
    int rc = p->metric->apply(p->metric_state, v, out, err);
    return wgf_error_forward(err, rc, "metric '%s'", p->metric_plugin->name);
}

int wgf_problem_metric_apply(wgf_problem *p, const double *v, double *out, wgf_error *err)
{
    return metric_op(p, v, out, err);
}

double wgf_problem_tikhonov(const wgf_problem *p) { return p->tikhonov; }

int wgf_problem_metric_prepare(wgf_problem *p, wgf_eval *ev, wgf_error *err)
{
    p->metric_ev = NULL;
    p->pc_ready = 0;
    wgf_error_clear(err);
    int rc = p->metric->prepare(p->metric_state, ev, err);
    if (rc != WGF_OK)
        return wgf_error_forward(err, rc, "metric '%s'", p->metric_plugin->name);
    p->metric_ev = ev;
    return WGF_OK;
}

int wgf_problem_natgrad(wgf_problem *p, wgf_eval *ev, const double *rhs, double *zeta,
                        wgf_solve_stats *stats, wgf_error *err)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    int rc = wgf_problem_metric_prepare(p, ev, err);
    return rc != WGF_OK ? rc : wgf_problem_metric_solve(p, rhs, zeta, stats, err);
}

static int pc_reserve(wgf_problem *p, size_t n, wgf_error *err)
{
    if (n <= p->pc_cap)
        return WGF_OK;
    wgf_free(p->pc);
    p->pc_cap = 0;
    p->pc = wgf_alloc_doubles(n);
    if (!p->pc)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for the preconditioner (%zu doubles)", n);
    p->pc_cap = n;
    return WGF_OK;
}

/* One diagonal block B (q x q, shifted by eps) replaced in place by a lower
 * Cholesky factor of an SPD matrix near it. B is positive semidefinite, and
 * singular where the map cannot move its output along a parameter (a planar
 * layer's w and b while its u = 0): a zero pivot's row and column are
 * dropped and its pivot set to the block's largest, and what is still not
 * numerically definite gets 1e-10 of that largest on the diagonal, then
 * only the diagonal. The factor only preconditions: the solve is of M + eps I
 * itself, so none of this changes the solution MINRES converges to (for
 * eps = 0 and a singular M, the one of least norm in the factor's metric). */
static void pc_factor_block(size_t q, double *B, double *L)
{
    double mx = 0.0;
    for (size_t i = 0; i < q; i++)
        if (B[i * q + i] > mx)
            mx = B[i * q + i];
    if (!(mx > 0.0) || !isfinite(mx)) {
        for (size_t i = 0; i < q * q; i++)
            L[i] = i % (q + 1) == 0 ? 1.0 : 0.0;
        return;
    }
    for (size_t i = 0; i < q; i++)
        if (!(B[i * q + i] > 1e-12 * mx)) {
            for (size_t j = 0; j < q; j++)
                B[i * q + j] = B[j * q + i] = 0.0;
            B[i * q + i] = mx;
        }
    wgf_error e;
    for (int attempt = 0; attempt < 2; attempt++) {
        wgf_error_clear(&e);
        if (wgf_cholesky(q, B, L, &e) == WGF_OK)
            return;
        for (size_t i = 0; i < q; i++)
            B[i * q + i] += 1e-10 * mx;
    }
    for (size_t i = 0; i < q * q; i++)
        L[i] = i % (q + 1) == 0 ? sqrt(B[i]) : 0.0;
}

/* The preconditioner for the metric as last prepared (doc/math.md 4.1):
 * block, the Cholesky factors of the metric's diagonal blocks plus eps I;
 * jacobi, the inverse of their diagonal plus eps, or of M's own diagonal
 * probed with unit vectors (P products) when the metric has no blocks.
 * block without blocks runs without a preconditioner (probing the blocks
 * would cost as much as forming M). */
static int pc_build(wgf_problem *p, wgf_error *err)
{
    size_t P = p->nparams, q = 0;
    int rc = WGF_EUNSUP;
    p->pc_size = 0;
    if (p->metric->blocks) {
        wgf_error_clear(err);
        rc = p->metric->blocks(p->metric_state, &q, NULL, err);
        if (rc == WGF_OK && (q == 0 || P % q != 0))
            rc = wgf_error_set(err, WGF_EINVAL, "blocks of %zu parameters do not divide the %zu "
                               "parameters", q, P);
        if (rc != WGF_OK && rc != WGF_EUNSUP)
            return wgf_error_forward(err, rc, "metric '%s': blocks", p->metric_plugin->name);
    }
    const double eps = p->tikhonov;
    if (rc == WGF_OK) {
        /* blocks, then their factors in place of them, one block of scratch beside */
        if ((rc = pc_reserve(p, P * q + q * q, err)) != WGF_OK)
            return rc;
        wgf_error_clear(err);
        rc = p->metric->blocks(p->metric_state, &q, p->pc, err);
        if (rc != WGF_OK)
            return wgf_error_forward(err, rc, "metric '%s': blocks", p->metric_plugin->name);
        if (p->precond == WGF_PC_BLOCK) {
            double *B = p->pc + P * q;
            for (size_t j = 0; j < P / q; j++) {
                double *G = p->pc + j * q * q;
                memcpy(B, G, q * q * sizeof *B);
                for (size_t i = 0; i < q; i++)
                    B[i * q + i] += eps;
                pc_factor_block(q, B, G);
            }
            p->pc_size = q;
            return WGF_OK;
        }
        for (size_t i = 0; i < P; i++)
            p->pc[i] = p->pc[(i / q) * q * q + (i % q) * (q + 1)];
    } else if (p->precond == WGF_PC_JACOBI) {
        if ((rc = pc_reserve(p, 3 * P, err)) != WGF_OK)
            return rc;
        double *e = p->pc + P, *out = p->pc + 2 * P;
        memset(e, 0, P * sizeof *e);
        for (size_t i = 0; i < P; i++) {
            e[i] = 1.0;
            rc = metric_op(p, e, out, err);
            e[i] = 0.0;
            if (rc != WGF_OK)
                return rc;
            p->pc[i] = out[i];
        }
    } else {
        return WGF_OK; /* block without blocks: none */
    }
    /* the diagonal's inverse; a zero entry (a parameter M does not see) gets the largest */
    double mx = 0.0;
    for (size_t i = 0; i < P; i++)
        if (p->pc[i] + eps > mx)
            mx = p->pc[i] + eps;
    for (size_t i = 0; i < P; i++) {
        double dii = p->pc[i] + eps;
        p->pc[i] = dii > 1e-12 * mx && isfinite(dii) ? 1.0 / dii : mx > 0.0 && isfinite(mx) ? 1.0 / mx : 1.0;
    }
    p->pc_size = 1;
    return WGF_OK;
}

/* z = M_pc^{-1} r: forward and back substitution in every block, or the diagonal. */
static int pc_apply(void *user, const double *r, double *z, wgf_error *err)
{
    (void)err;
    const wgf_problem *p = user;
    size_t P = p->nparams, q = p->pc_size;
    if (q == 1) {
        for (size_t i = 0; i < P; i++)
            z[i] = p->pc[i] * r[i];
        return WGF_OK;
    }
    for (size_t j = 0; j < P / q; j++) {
        const double *L = p->pc + j * q * q;
        const double *rb = r + j * q;
        double *zb = z + j * q;
        for (size_t i = 0; i < q; i++) {
            double s = rb[i];
            for (size_t k = 0; k < i; k++)
                s -= L[i * q + k] * zb[k];
            zb[i] = s / L[i * q + i];
        }
        for (size_t i = q; i-- > 0;) {
            double s = zb[i];
            for (size_t k = i + 1; k < q; k++)
                s -= L[k * q + i] * zb[k];
            zb[i] = s / L[i * q + i];
        }
    }
    return WGF_OK;
}

int wgf_problem_metric_solve(wgf_problem *p, const double *rhs, double *zeta, wgf_solve_stats *stats,
                             wgf_error *err)
{
    wgf_solve_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!p->metric_ev)
        return wgf_error_set(err, WGF_EINVAL, "metric '%s' solved before it was prepared",
                             p->metric_plugin->name);
    int rc;
    if (p->metric->solve) {
        wgf_error_clear(err);
        rc = p->metric->solve(p->metric_state, rhs, zeta, stats, err);
        p->metric_products += stats->products;
        return wgf_error_forward(err, rc, "metric '%s'", p->metric_plugin->name);
    }
    unsigned long before = p->metric_products;
    if (p->precond != WGF_PC_NONE && !p->pc_ready) {
        rc = pc_build(p, err);
        if (rc != WGF_OK)
            return wgf_error_prefix(err, "natural gradient: preconditioner");
        p->pc_ready = 1;
    }
    int pc = p->precond != WGF_PC_NONE && p->pc_size > 0;
    rc = wgf_minres_prec(p->nparams, metric_op, p, p->tikhonov, pc ? pc_apply : NULL, p, rhs, zeta,
                         p->tol, p->maxiter, stats, err);
    stats->products = p->metric_products - before;
    if (rc != WGF_OK)
        return wgf_error_prefix(err, "natural gradient (MINRES)");
    return WGF_OK;
}

int wgf_problem_constrain(wgf_problem *p, double *theta, wgf_error *err)
{
    if (p->map_project) {
        wgf_error_clear(err);
        int rc = p->map->project(p->map_state, theta, err);
        if (rc != WGF_OK)
            return wgf_error_forward(err, rc, "map '%s': project", p->map_plugin->name);
    }
    wgf_error_clear(err);
    int rc = p->map->check(p->map_state, theta, err);
    return wgf_error_forward(err, rc, "map '%s'", p->map_plugin->name);
}

int wgf_problem_check(wgf_problem *p, const double *theta, wgf_error *err)
{
    return p->map->check(p->map_state, theta, err);
}

/* ------------------------------------------------------------ observation */

static int monitor_add(wgf_problem *p, wgf_monitor_fn fn, wgf_path_monitor_fn path_fn, void *ctx,
                       void (*destroy)(void *ctx), wgf_error *err)
{
    if (p->nmonitors == p->capmonitors) {
        size_t cap = p->capmonitors ? 2 * p->capmonitors : 8;
        wgf_monitor_entry *m = realloc(p->monitors, cap * sizeof *m);
        if (!m) {
            if (destroy)
                destroy(ctx);
            return wgf_error_set(err, WGF_ENOMEM, "out of memory");
        }
        p->monitors = m;
        p->capmonitors = cap;
    }
    p->monitors[p->nmonitors++] = (wgf_monitor_entry){fn, path_fn, ctx, destroy};
    return WGF_OK;
}

int wgf_problem_monitor_add(wgf_problem *p, wgf_monitor_fn fn, void *ctx, void (*destroy)(void *ctx),
                            wgf_error *err)
{
    return monitor_add(p, fn, NULL, ctx, destroy, err);
}

int wgf_problem_path_monitor_add(wgf_problem *p, wgf_path_monitor_fn fn, void *ctx,
                                 void (*destroy)(void *ctx), wgf_error *err)
{
    return monitor_add(p, NULL, fn, ctx, destroy, err);
}

/* wgf_step_info grew theta and the diagnostics with plugin ABI 2: a scheme
 * built against an older header passes the shorter struct, whose theta is
 * the problem's own. */
static size_t step_info_size(const wgf_problem *p)
{
#if WGF_ABI_VERSION >= 2
    if (p->scheme_plugin && p->scheme_plugin->abi_version < 2)
        return offsetof(wgf_step_info, theta);
#else
    (void)p;
#endif
    return sizeof(wgf_step_info);
}

int wgf_problem_observe(wgf_problem *p, const wgf_step_info *info, wgf_error *err)
{
    wgf_step_info s;
    memset(&s, 0, sizeof s);
    memcpy(&s, info, step_info_size(p));
    if (!s.theta)
        s.theta = p->theta;
    if (!s.has_misfit)
        s.misfit = s.misfit_rel = NAN;
    s.ndiag = 0;
    s.diag_names = NULL;
    s.diag = NULL;
    for (size_t i = 0; i < p->nmonitors; i++) {
        if (!p->monitors[i].fn)
            continue;
        int rc = p->monitors[i].fn(p->monitors[i].ctx, &s, err);
        if (rc != WGF_OK)
            return rc;
    }
    if (p->interrupt && *p->interrupt)
        return wgf_error_set(err, WGF_EINTR, "interrupted at step %lu (t = %g)", info->step, info->t);
    return WGF_OK;
}

int wgf_problem_observe_path(wgf_problem *p, const wgf_path_info *path, wgf_error *err)
{
    if (path->nstages != p->nstages + 1 || !path->t)
        return wgf_error_set(err, WGF_EINVAL,
                             "a path of this map has %zu stages and their times; %zu were reported%s",
                             p->nstages + 1, path->nstages, path->t ? "" : " without times");
    wgf_path_info s = *path;
    if (!s.theta)
        s.theta = p->theta;
    for (size_t i = 0; i < p->nmonitors; i++) {
        if (!p->monitors[i].path_fn)
            continue;
        int rc = p->monitors[i].path_fn(p->monitors[i].ctx, &s, err);
        if (rc != WGF_OK)
            return rc;
    }
    if (p->interrupt && *p->interrupt)
        return wgf_error_set(err, WGF_EINTR, "interrupted at step %lu", path->step);
    return WGF_OK;
}

int wgf_problem_run(wgf_problem *p, wgf_error *err)
{
    return p->scheme->run(p->scheme_state, p, err);
}

int wgf_problem_has_gaussian_push(const wgf_problem *p) { return p->map->gaussian_push != NULL; }

int wgf_problem_gaussian_push(const wgf_problem *p, const double *theta, const double *m0,
                              const double *S0, double *m, double *S, wgf_error *err)
{
    if (!p->map->gaussian_push)
        return wgf_error_set(err, WGF_EUNSUP, "map '%s' has no exact Gaussian push-forward",
                             p->map_plugin->name);
    return p->map->gaussian_push(p->map_state, theta, m0, S0, m, S, err);
}
