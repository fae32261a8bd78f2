/* jko.c: implicit (proximal) steps, the JKO scheme in parameter space (MATH.md 5):
 *
 *     theta_{k+1} = argmin_theta Phi(theta),  Phi = F(theta) + D(theta, theta_k) / (2h),
 *
 *   proximal = metric: D = (theta - theta_k)^T M (theta - theta_k), M the [metric] frozen at
 *                      theta_k (its eval and tape stay put while trials run on a second
 *                      evaluation of the same samples): the semi-implicit scheme;
 *   proximal = map:    D = E_n |T_theta(z_n) - T_theta_k(z_n)|^2 on the step's samples, the
 *                      map-space JKO; to first order the implicit Euler step of the G-hat flow.
 * Both add eps |theta - theta_k|^2, eps the [metric] tikhonov (default 0), so that the step is
 * the implicit counterpart of Euler's (M + eps I) zeta = grad F. It matters: a planar flow at
 * the identity (u = 0) has a singular G-hat (w and b do not move the samples), and there the
 * metric proximal problem without eps has no minimiser in those directions.
 *
 * The inner problem is solved by liblbfgs (m pairs, More-Thuente line search) from theta_k,
 * with the samples fixed during one solve so that Phi is deterministic. L-BFGS works on y,
 * theta = theta_k + c y, with c = h |g|^3 / (g^T M g), g = grad F(theta_k) (M = G-hat for the
 * map proximal): liblbfgs' first trial moves y by 1 along -g, which is then the Cauchy step of
 * the proximal model F + g.dtheta + dtheta^T M dtheta / (2h), the size of an explicit step,
 * whatever the scale of theta.
 *
 * Stopping: |grad Phi| <= epsilon |grad F(theta_k)| (grad Phi = grad F at theta_k), tested in
 * liblbfgs' progress callback; history.csv's iterations column holds the L-BFGS iterations of
 * the step and its residual column the final |grad Phi| / |grad F(theta_k)|.
 *
 * Non-admissible trials. A trial theta that the map refuses (wgf_problem_check: planar
 * invertibility) or where the energy is not finite must make the line search back off. liblbfgs
 * 1.10's More-Thuente search cannot take +inf (its cubic interpolation turns it into a NaN step)
 * nor a huge finite value (the interpolated step collapses onto the current point): both end the
 * search with LBFGSERR_ROUNDING_ERROR at the start point. So a refused trial at step length a
 * along s from the line search's base point (f0, g0: the last iterate, kept by the progress
 * callback) returns the value and slope of the parabola through (0, f0, g0.s) whose minimum is
 * at a/4: f = f0 + |g0.s| a, slope 3 |g0.s|. It lies above f0, so the trial is never accepted,
 * and the search's interpolation, exact on a parabola, proposes a quarter of the step.
 *
 * Projected trials, held bounds. Trials are constrained like every update (projected when the
 * map projects, checked otherwise). A bound theta_k sits on that -grad F leaves through
 * (invertibility = project, delta = 0) would still stop the solve: the projected path along -g
 * can rise while g says it falls, and the search ends at its start. So such bounds are held as
 * equalities for the step (active_bounds: normals and projection directions from forward
 * differences of the projection at theta_k), trials are put on them (onto_held) and the gradient
 * is the projected problem's, with the normals at the trial (held_at, hold); doc/math.md 5.2.
 *
 * Ends of the inner solve: converged (the test above); the iteration cap reached (the step is
 * taken, not converged, as a MINRES solve that misses its tolerance); a "no progress" end of the
 * line search (rounding, width, step bounds, too many trials, not a descent direction to
 * rounding) is benign after a decrease (an accepted iterate, or an admissible trial below
 * Phi(theta_k) by more than rounding), or when |grad F(theta_k)| is already at rounding level
 * (<= 1e-10 max(1, |F|)): the step is taken, reported not converged. The step is the lowest
 * admissible point seen: a minimiser on the boundary of the admissible set has no point where
 * More-Thuente's curvature condition holds, so its search ends without accepting the lower
 * trials it found next to the boundary. Any other end, or a no-progress end without a
 * decrease, stops the run (exit 3) naming the step. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lbfgs.h>

#include <wgf/dist.h>
#include <wgf/plugin.h>
#include <wgf/problem.h>

enum { JKO_METRIC, JKO_MAP };

typedef struct {
    double h, t_end, epsilon;
    unsigned long steps;
    int fixed, proximal;
    int misfit; /* 0 off, 1 on, -1 auto */
    int m, max_iterations, max_linesearch;
} jko;

/* One inner solve: what the objective needs and what the callbacks record. */
typedef struct {
    wgf_problem *p;
    const jko *j;
    wgf_eval *evk;         /* theta_k on the step's samples (the metric's, when prepared) */
    wgf_eval *evt;         /* trial parameters, the same samples */
    size_t P, N, d, S;
    const double *theta_k; /* P */
    const double *xk;      /* N x d: T_theta_k(z) (map proximal) */
    double Fk;             /* F(theta_k) */
    double f0;             /* Phi at the start: F(theta_k), or Phi at theta_k put on its held bounds */
    int snap;              /* evaluate the start in full (held bounds) */
    const double *gk;      /* grad F(theta_k) */
    double scale;          /* theta = theta_k + scale y: L-BFGS works on y */
    double eps;            /* the [metric] Tikhonov term: D + eps |theta - theta_k|^2 */
    double *th, *dth, *mv, *xbar; /* P, P, P, N x d */
    double *th2, *th3, *th4, *gk0; /* P: projected copies; grad F(theta_k) along the held bounds */
    double *jrow, *nrm, *qv; /* P x P: J - I at theta_k; the nn held bounds' unit normals and
                              * (outward) directions of projection */
    double *ncur, *qcur;     /* the same at the current trial */
    size_t *hrow, *hcol;     /* the row and column of J - I each held bound's came from */
    size_t nn;
    /* the line search's base point: the last iterate (in y) */
    double *xbase, *gbase, fbase;
    /* the lowest admissible trial seen (in y), which a line search that ends without meeting
     * its curvature condition (a minimiser on the admissible set's boundary) may not return */
    double *ybest, *gbest, fbest;
    double g0norm;
    unsigned iterations;
    unsigned long refused, products;
    int converged;
    int hard;              /* a failure that is not a refusal: stop */
    wgf_error herr;
} jko_solve;

static int jko_create(const wgf_section *sec, const wgf_problem_info *info, void **state, wgf_error *err)
{
    (void)info;
    jko *j = calloc(1, sizeof *j);
    if (!j)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    j->h = wgf_section_double(sec, "step");
    j->t_end = wgf_section_double(sec, "t_end");
    j->fixed = strcmp(wgf_section_string(sec, "samples"), "fixed") == 0;
    const char *mf = wgf_section_string(sec, "misfit");
    j->misfit = strcmp(mf, "on") == 0 ? 1 : strcmp(mf, "off") == 0 ? 0 : -1;
    j->proximal = strcmp(wgf_section_string(sec, "proximal"), "map") == 0 ? JKO_MAP : JKO_METRIC;
    j->epsilon = wgf_section_double(sec, "epsilon");
    j->m = (int)wgf_section_int(sec, "m");
    j->max_iterations = (int)wgf_section_int(sec, "max_iterations");
    j->max_linesearch = (int)wgf_section_int(sec, "max_linesearch");
    double k = j->t_end / j->h;
    j->steps = (unsigned long)llround(k);
    if (j->steps == 0 || fabs(k - (double)j->steps) > 1e-9 * fmax(1.0, k)) {
        free(j);
        return wgf_section_error(sec, "t_end", err,
                                 "t_end / step = %g is not a positive whole number of steps", k);
    }
    *state = j;
    return WGF_OK;
}

static void jko_destroy(void *state) { free(state); }

static double dot(size_t n, const double *a, const double *b)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* The refused trial's surrogate (see the top of the file): the parabola through the base point
 * with its minimum at a quarter of the step. */
static double refuse(jko_solve *c, const double *x, double *g, double step)
{
    c->refused++;
    double dg0 = 0, ss = 0;
    for (size_t i = 0; i < c->P; i++) {
        double s = step > 0 ? (x[i] - c->xbase[i]) / step : 0;
        dg0 += c->gbase[i] * s;
        ss += s * s;
        g[i] = s;
    }
    if (!(ss > 0) || !(dg0 < 0) || !isfinite(dg0)) {
        /* not a line-search trial (cannot happen from lbfgs): a value above the base point */
        for (size_t i = 0; i < c->P; i++)
            g[i] = -c->gbase[i];
        return c->fbase + 1.0 + fabs(c->fbase);
    }
    double slope = 3.0 * fabs(dg0) / ss;
    for (size_t i = 0; i < c->P; i++)
        g[i] *= slope;
    return c->fbase + fabs(dg0) * step;
}

/* J - I of the projection at base (on its projecting side, see active_bounds) into c->jrow. */
static void jacobian(jko_solve *c, const double *base)
{
    size_t P = c->P;
    wgf_error e = {0};
    memset(c->jrow, 0, P * P * sizeof *c->jrow);
    for (size_t j = 0; j < P; j++) {
        for (int side = 1; side >= -1; side -= 2) {
            double h = side * sqrt(DBL_EPSILON) * fmax(1.0, fabs(base[j]));
            memcpy(c->th2, base, P * sizeof *c->th2);
            c->th2[j] += h;
            if (wgf_problem_constrain(c->p, c->th2, &e) != WGF_OK)
                break; /* past a bound the map does not project: nothing to hold */
            int moved = c->th2[j] != base[j] + h;
            for (size_t i = 0; i < P && !moved; i++)
                moved = i != j && c->th2[i] != base[i];
            if (!moved)
                continue;
            for (size_t i = 0; i < P; i++)
                c->jrow[i * P + j] = (c->th2[i] - base[i]) / h - (i == j);
            break;
        }
    }
}

/* Active bounds at theta_k (invertibility = project; see the top of the file). The normals of the
 * bounds theta_k sits on are the rows of J - I, J the Jacobian of the projection on its projecting
 * side, by forward differences (one projection of O(P) per parameter, no energy evaluation): the
 * projection moves a parameter for one bound only (planar: u_k along w_k), so each nonzero row is
 * parallel to one bound's normal, and bounds on disjoint parameters have orthogonal normals.
 * Gram-Schmidt keeps one unit normal per bound. A bound is held (its normal kept in c->nrm) when
 * -grad F(theta_k) points out of it: a short move along its normal part is projected. */
static void active_bounds(jko_solve *c)
{
    size_t P = c->P;
    wgf_error e = {0};
    c->nn = 0;
    jacobian(c, c->theta_k);
    for (size_t i = 0; i < P; i++) {
        double *n = c->nrm + c->nn * P;
        memcpy(n, c->jrow + i * P, P * sizeof *n);
        double n0 = sqrt(dot(P, n, n));
        if (!(n0 > 0) || !isfinite(n0))
            continue;
        for (size_t l = 0; l < c->nn; l++) {
            double a = dot(P, n, c->nrm + l * P);
            for (size_t q = 0; q < P; q++)
                n[q] -= a * c->nrm[l * P + q];
        }
        double n1 = sqrt(dot(P, n, n));
        if (!(n1 > 1e-6 * n0)) /* another row of a bound already kept */
            continue;
        for (size_t q = 0; q < P; q++)
            n[q] /= n1;
        /* held when -grad F leaves through it */
        double gn = dot(P, c->gk, n), xm = 1;
        for (size_t q = 0; q < P; q++)
            xm = fmax(xm, fabs(c->theta_k[q]));
        double t = -copysign(1e-6 * xm, gn);
        for (size_t q = 0; q < P; q++)
            c->th2[q] = c->theta_k[q] + t * n[q];
        memcpy(c->th, c->th2, P * sizeof *c->th);
        if (gn == 0 || wgf_problem_constrain(c->p, c->th2, &e) != WGF_OK ||
            memcmp(c->th, c->th2, P * sizeof *c->th) == 0)
            continue;
        /* the projection's direction for this bound: the column of J - I at the parameter
         * where the normal is largest (every column of the bound's rows is along it), oriented
         * outwards (against the projection's move) */
        size_t jm = 0;
        for (size_t q = 0; q < P; q++)
            if (fabs(n[q]) > fabs(n[jm]))
                jm = q;
        double *qv = c->qv + c->nn * P, qq = 0, mv = 0;
        for (size_t q = 0; q < P; q++) {
            qv[q] = c->jrow[q * P + jm];
            qq += qv[q] * qv[q];
            mv += qv[q] * (c->th2[q] - c->th[q]);
        }
        double qn = dot(P, qv, n);
        if (!(qq > 0) || !(fabs(qn) > 1e-6 * sqrt(qq)))
            continue;
        for (size_t q = 0; q < P; q++)
            qv[q] *= (mv > 0 ? -1.0 : 1.0) / sqrt(qq);
        c->hrow[c->nn] = i;
        c->hcol[c->nn] = jm;
        c->nn++;
    }
}

/* A held bound is an equality: theta is moved outwards along the projection's direction and
 * projected back, which lands on the bound whatever the distance when the move is along the
 * direction the projection takes at theta (planar: u_k along the current w_k). That direction
 * is theta_k's q moved out and projected back (q moves u_k only, so w_k stays theta's). */
static void onto_held(const jko_solve *c, double *th)
{
    size_t P = c->P;
    wgf_error e = {0};
    double dt = 0;
    for (size_t q = 0; q < P; q++)
        dt = fmax(dt, fabs(th[q] - c->theta_k[q]));
    /* the other bounds first, so that a projection below is the held bound's */
    if (c->nn > 0 && wgf_problem_constrain(c->p, th, &e) != WGF_OK)
        return;
    for (size_t l = 0; l < c->nn; l++) {
        const double *n = c->nrm + l * P, *qv = c->qv + l * P;
        double T = (1e-3 + 10 * dt * sqrt((double)P)) / fabs(dot(P, n, qv)), qq = 0;
        for (size_t q = 0; q < P; q++)
            c->th3[q] = th[q] + T * qv[q];
        memcpy(c->th4, c->th3, P * sizeof *th);
        if (wgf_problem_constrain(c->p, c->th4, &e) != WGF_OK)
            continue;
        for (size_t q = 0; q < P; q++) {
            c->th4[q] -= c->th3[q]; /* inwards, along the current direction */
            qq += c->th4[q] * c->th4[q];
        }
        if (!(qq > 0))
            continue;
        /* out along it as far as along q, with a margin, doubled until projected */
        double rn = fabs(dot(P, n, c->th4)) / sqrt(qq), a = 2 * T * fabs(dot(P, n, qv)) / fmax(rn, 1e-12);
        for (int tries = 0; tries < 30; tries++, a *= 2) {
            for (size_t q = 0; q < P; q++)
                c->th3[q] = th[q] - a * c->th4[q] / sqrt(qq);
            memcpy(c->th2, c->th3, P * sizeof *th);
            if (wgf_problem_constrain(c->p, c->th2, &e) != WGF_OK)
                break;
            if (memcmp(c->th2, c->th3, P * sizeof *th) != 0) {
                memcpy(th, c->th2, P * sizeof *th);
                break;
            }
        }
    }
}

/* The held bounds' normals and directions at a trial on them (th, projected), into c->ncur and
 * c->qcur: the rows and columns of J - I there that gave theta_k's (both turn with w_k). */
static void held_at(jko_solve *c, const double *th)
{
    size_t P = c->P;
    jacobian(c, th);
    for (size_t l = 0; l < c->nn; l++) {
        double *n = c->ncur + l * P, *qv = c->qcur + l * P, n2 = 0, qq = 0;
        for (size_t q = 0; q < P; q++) {
            n[q] = c->jrow[c->hrow[l] * P + q];
            qv[q] = c->jrow[q * P + c->hcol[l]];
            n2 += n[q] * n[q];
            qq += qv[q] * qv[q];
        }
        if (!(n2 > 0) || !(qq > 0) || !isfinite(n2 + qq)) { /* not on it: theta_k's */
            memcpy(n, c->nrm + l * P, P * sizeof *n);
            memcpy(qv, c->qv + l * P, P * sizeof *qv);
            continue;
        }
        for (size_t q = 0; q < P; q++) {
            n[q] /= sqrt(n2);
            qv[q] /= sqrt(qq);
        }
    }
}

/* The gradient of Phi(Proj(theta)) with the held bounds as equalities, from grad Phi g (P):
 * J^T g with J = I - q n^T / (n.q) per bound (nrm, qvs: theta_k's, or the trial's). */
static void hold(const jko_solve *c, const double *nrm, const double *qvs, double *g)
{
    for (size_t l = 0; l < c->nn; l++) {
        const double *n = nrm + l * c->P, *qv = qvs + l * c->P;
        double a = dot(c->P, g, qv) / dot(c->P, n, qv);
        for (size_t q = 0; q < c->P; q++)
            g[q] -= a * n[q];
    }
}

/* Phi and its gradient at a trial theta; a refused trial gets the surrogate. */
static lbfgsfloatval_t jko_evaluate(void *inst, const lbfgsfloatval_t *x, lbfgsfloatval_t *g, const int n,
                                    const lbfgsfloatval_t step)
{
    (void)n;
    jko_solve *c = inst;
    size_t P = c->P;
    int at_k = step == 0 && !c->snap; /* lbfgs' first call is at y = 0, theta_k, where D = 0 */
    for (size_t i = 0; i < P && at_k; i++)
        at_k = x[i] == 0;
    if (at_k) {
        for (size_t i = 0; i < P; i++)
            g[i] = c->scale * c->gk0[i];
        return c->f0;
    }
    if (c->hard)
        return refuse(c, x, g, step);
    for (size_t i = 0; i < P; i++)
        c->th[i] = c->theta_k[i] + c->scale * x[i];
    onto_held(c, c->th);
    wgf_error e = {0};
    double F;
    /* projected like every update (invertibility = project), else checked */
    int rc = wgf_problem_constrain(c->p, c->th, &e);
    for (size_t i = 0; i < P; i++)
        c->dth[i] = c->th[i] - c->theta_k[i];
    if (rc == WGF_OK)
        rc = wgf_eval_forward(c->evt, c->th, &e);
    if (rc == WGF_OK)
        rc = wgf_problem_energy(c->p, c->evt, &F, g, &e);
    if (rc == WGF_ENUMERIC) /* not admissible, or the energy cannot be evaluated there */
        return refuse(c, x, g, step);
    double D = 0;
    if (rc == WGF_OK && c->eps > 0) {
        for (size_t i = 0; i < P; i++) {
            D += c->eps * c->dth[i] * c->dth[i];
            g[i] += c->eps * c->dth[i] / c->j->h;
        }
    }
    if (rc == WGF_OK && c->j->proximal == JKO_METRIC) {
        rc = wgf_problem_metric_apply(c->p, c->dth, c->mv, &e);
        c->products++;
        if (rc == WGF_OK) {
            D += dot(P, c->dth, c->mv);
            for (size_t i = 0; i < P; i++)
                g[i] += c->mv[i] / c->j->h;
        }
    } else if (rc == WGF_OK) {
        /* grad D/(2h) = (1/(N h)) sum_n J_n^T (x_n - x_n^k) */
        const double *xt = wgf_eval_batch(c->evt, c->S)->x;
        double Dm = 0;
        for (size_t i = 0; i < c->N * c->d; i++) {
            double r = xt[i] - c->xk[i];
            Dm += r * r;
            c->xbar[i] = r / ((double)c->N * c->j->h);
        }
        D += Dm / (double)c->N;
        rc = wgf_eval_vjp(c->evt, c->xbar, NULL, NULL, c->mv, &e);
        if (rc == WGF_OK)
            for (size_t i = 0; i < P; i++)
                g[i] += c->mv[i];
    }
    if (rc != WGF_OK) {
        c->hard = 1;
        c->herr = e;
        return refuse(c, x, g, step);
    }
    double phi = F + D / (2.0 * c->j->h);
    int finite = isfinite(phi);
    for (size_t i = 0; i < P; i++) {
        g[i] *= c->scale;
        finite = finite && isfinite(g[i]);
    }
    if (!finite)
        return refuse(c, x, g, step);
    if (c->nn > 0) {
        held_at(c, c->th);
        hold(c, c->ncur, c->qcur, g);
    }
    if (phi < c->fbest) {
        c->fbest = phi;
        memcpy(c->ybest, x, P * sizeof *x);
        memcpy(c->gbest, g, P * sizeof *g);
    }
    return phi;
}

/* After each accepted iterate: the new base point, and the relative gradient test. */
static int jko_progress(void *inst, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g,
                        const lbfgsfloatval_t fx, const lbfgsfloatval_t xnorm,
                        const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step, int n, int k, int ls)
{
    (void)xnorm, (void)step, (void)n, (void)k, (void)ls;
    jko_solve *c = inst;
    memcpy(c->xbase, x, c->P * sizeof *x);
    memcpy(c->gbase, g, c->P * sizeof *g);
    c->fbase = fx;
    c->iterations++;
    if (c->hard)
        return 1;
    if (gnorm <= c->j->epsilon * c->g0norm) {
        c->converged = 1;
        return 1;
    }
    return 0;
}

static const char *lbfgs_reason(int rc)
{
    switch (rc) {
    case LBFGSERR_ROUNDING_ERROR: return "rounding errors prevent progress";
    case LBFGSERR_MINIMUMSTEP: return "the line search step reached its minimum";
    case LBFGSERR_MAXIMUMSTEP: return "the line search step reached its maximum";
    case LBFGSERR_MAXIMUMLINESEARCH: return "the line search used all its trials";
    case LBFGSERR_WIDTHTOOSMALL: return "the line search interval became too small";
    case LBFGSERR_INCREASEGRADIENT: return "the search direction is not a descent direction";
    case LBFGSERR_MAXIMUMITERATION: return "the iteration cap was reached";
    case LBFGSERR_OUTOFMEMORY: return "out of memory";
    case LBFGSERR_OUTOFINTERVAL: return "a line search trial left its interval";
    case LBFGSERR_INCORRECT_TMINMAX: return "the line search interval is inconsistent";
    case LBFGSERR_LOGICERROR: return "logic error";
    default: return "an invalid setting or an unknown error";
    }
}

static int no_progress(int rc)
{
    return rc == LBFGSERR_ROUNDING_ERROR || rc == LBFGSERR_MINIMUMSTEP || rc == LBFGSERR_MAXIMUMSTEP ||
           rc == LBFGSERR_MAXIMUMLINESEARCH || rc == LBFGSERR_WIDTHTOOSMALL ||
           rc == LBFGSERR_INCREASEGRADIENT;
}

/* One inner solve from theta_k into x (P). Fills stats; WGF_ENUMERIC when it fails. */
static int jko_inner(jko_solve *c, lbfgsfloatval_t *x, wgf_solve_stats *stats, wgf_error *err)
{
    const jko *j = c->j;
    size_t P = c->P;
    c->iterations = 0;
    c->refused = c->products = 0;
    c->converged = c->hard = 0;
    memset(stats, 0, sizeof *stats);
    memset(x, 0, P * sizeof *x);
    double gg = dot(P, c->gk, c->gk);
    if (gg == 0) { /* theta_k is the minimiser */
        memcpy(x, c->theta_k, P * sizeof *x);
        stats->converged = 1;
        return WGF_OK;
    }
    /* Scale: L-BFGS' first trial moves its variable by 1 along the gradient. Make that the
     * length of the Cauchy step of the proximal term's quadratic model, h |g|^3 / (g^T M g)
     * (M = G-hat for the map proximal), so the first trial is the size of an explicit step. */
    double gmg = NAN;
    int rc = c->j->proximal == JKO_METRIC ? wgf_problem_metric_apply(c->p, c->gk, c->mv, err)
                                         : wgf_eval_gram(c->evk, c->gk, c->mv, err);
    if (rc != WGF_OK)
        return rc;
    c->products += c->j->proximal == JKO_METRIC;
    gmg = dot(P, c->gk, c->mv) + c->eps * gg;
    c->scale = gmg > 0 && isfinite(gmg) ? j->h * gg * sqrt(gg) / gmg : 1.0;
    if (!(c->scale > 0) || !isfinite(c->scale))
        c->scale = 1.0;
    c->nn = 0;
    if (c->jrow)
        active_bounds(c);
    memcpy(c->gk0, c->gk, P * sizeof *x);
    hold(c, c->nrm, c->qv, c->gk0);
    c->f0 = c->Fk;
    if (c->nn > 0) {
        /* a layer held from just inside its bound starts on it: Phi and its gradient there, so
         * that the start of the projected problem is continuous with its trials */
        c->snap = 1;
        double f0 = jko_evaluate(c, x, c->gbase, (int)P, 0);
        c->snap = 0;
        if (c->hard || c->refused) {
            if (err && c->hard)
                *err = c->herr;
            return c->hard && c->herr.code ? c->herr.code
                                           : wgf_error_set(err, WGF_ENUMERIC,
                                                           "jko: theta_k put on its bounds is refused");
        }
        c->f0 = f0;
        for (size_t i = 0; i < P; i++)
            c->gk0[i] = c->gbase[i] / c->scale;
    }
    gg = dot(P, c->gk0, c->gk0);
    if (gg == 0) { /* theta_k is the minimiser on the bound */
        memcpy(x, c->theta_k, P * sizeof *x);
        stats->converged = 1;
        return WGF_OK;
    }
    memset(c->xbase, 0, P * sizeof *x);
    for (size_t i = 0; i < P; i++)
        c->gbase[i] = c->scale * c->gk0[i];
    c->fbase = c->fbest = c->f0;
    memcpy(c->ybest, c->xbase, P * sizeof *x);
    memcpy(c->gbest, c->gbase, P * sizeof *x);
    c->g0norm = c->scale * sqrt(gg);
    lbfgs_parameter_t par;
    lbfgs_parameter_init(&par);
    par.m = j->m;
    par.epsilon = 0; /* the relative test is jko_progress' */
    par.max_iterations = j->max_iterations;
    par.max_linesearch = j->max_linesearch;
    par.linesearch = LBFGS_LINESEARCH_MORETHUENTE;
    lbfgsfloatval_t fx = c->f0;
    rc = lbfgs((int)P, x, &fx, jko_evaluate, jko_progress, c, &par);
    /* On any end x holds the last iterate, the progress callback's base point; a lower
     * admissible trial of a line search that then failed replaces it. */
    const double *y = x, *gy = c->gbase;
    if (c->fbest < c->fbase) {
        y = c->ybest;
        gy = c->gbest;
    }
    for (size_t i = 0; i < P; i++)
        x[i] = c->theta_k[i] + c->scale * y[i];
    /* the point Phi was evaluated at: y's projection (theta_k, on its held bounds, to rounding) */
    if (!c->hard)
        onto_held(c, x);
    int crc = c->hard ? WGF_OK : wgf_problem_constrain(c->p, x, err);
    if (crc != WGF_OK)
        return crc;
    stats->iterations = c->iterations;
    stats->residual = sqrt(dot(c->P, gy, gy)) / c->g0norm;
    stats->products = c->products;
    stats->converged = c->converged;
    if (c->hard) {
        if (err)
            *err = c->herr;
        return c->herr.code ? c->herr.code : WGF_ENUMERIC;
    }
    if (c->converged || rc == LBFGS_SUCCESS || rc == LBFGS_ALREADY_MINIMIZED) {
        stats->converged = 1;
        return WGF_OK;
    }
    if (rc == LBFGSERR_MAXIMUMITERATION)
        return WGF_OK;
    /* a decrease beyond the rounding of Phi (a trial at liblbfgs' minimum step 1e-20 "decreases") */
    int decreased = c->iterations > 0 || c->f0 - c->fbest > 16 * DBL_EPSILON * fmax(1.0, fabs(c->f0));
    int rounding_level = c->g0norm / c->scale <= 1e-10 * fmax(1.0, fabs(c->Fk));
    if (no_progress(rc) && (decreased || rounding_level))
        return WGF_OK;
    if (rc == LBFGSERR_OUTOFMEMORY)
        return wgf_error_set(err, WGF_ENOMEM, "inner L-BFGS: out of memory");
    return wgf_error_set(err, WGF_ENUMERIC,
                         "inner L-BFGS failed (liblbfgs status %d: %s) after %u iterations, "
                         "|grad Phi| / |grad F| = %.3g, %lu trials refused (not admissible or "
                         "energy not finite); try a smaller step, or invertibility = reparam",
                         rc, lbfgs_reason(rc), c->iterations, stats->residual, c->refused);
}

static int jko_run(void *state, wgf_problem *p, wgf_error *err)
{
    jko *j = state;
    size_t P = wgf_problem_nparams(p), N = wgf_problem_get_info(p)->samples;
    size_t d = wgf_problem_get_info(p)->dim;
    double *theta = wgf_problem_theta(p);
    unsigned long k0 = wgf_problem_start_step(p);
    if (P > (size_t)INT_MAX)
        return wgf_error_set(err, WGF_EINVAL, "jko: %zu parameters are more than liblbfgs takes", P);
    const char *why = NULL;
    int misfit = j->misfit != 0 && wgf_problem_misfit_possible(p, &why);
    if (j->misfit == 1 && !misfit)
        return wgf_section_error(wgf_problem_section(p, "scheme"), "misfit", err,
                                 "on, but %s (auto or off)", why);
    unsigned flags = misfit && (wgf_problem_energy_needs(p) & WGF_WGRAD_NEEDS_S) ? WGF_EVAL_SCORE : 0;
    jko_solve c = {.p = p, .j = j, .P = P, .N = N, .d = d, .S = wgf_problem_nstages(p),
                   .theta_k = theta, .eps = wgf_problem_tikhonov(p)};
    double *work = calloc(13 * P, sizeof(double));
    /* for the bounds to hold (P x P five times; beyond 1024 parameters none are held) */
    double *jrow = P <= 1024 ? calloc(5 * P * P, sizeof(double)) : NULL;
    size_t *hidx = jrow ? calloc(2 * P, sizeof *hidx) : NULL;
    double *g = misfit && N <= SIZE_MAX / (2 * d) ? calloc(2 * N * d, sizeof(double)) : NULL;
    double *xbar = j->proximal == JKO_MAP ? calloc(N * d, sizeof(double)) : NULL;
    lbfgsfloatval_t *x = lbfgs_malloc((int)P);
    wgf_eval *evk = wgf_eval_create(p, N, flags, err);
    wgf_eval *evt = evk ? wgf_eval_create(p, N, 0, err) : NULL;
    int rc = WGF_OK;
    if (!work || !x || !evk || !evt || (j->proximal == JKO_MAP && !xbar) || (misfit && !g))
        rc = err && err->code ? err->code : wgf_error_set(err, WGF_ENOMEM, "out of memory");
    double *gk = work;
    if (rc == WGF_OK) {
        c.gk = gk;
        c.dth = work + P;
        c.mv = work + 2 * P;
        c.xbase = work + 3 * P;
        c.gbase = work + 4 * P;
        c.th = work + 5 * P;
        c.ybest = work + 6 * P;
        c.gbest = work + 7 * P;
        c.th2 = work + 9 * P;
        c.gk0 = work + 10 * P;
        c.th3 = work + 11 * P;
        c.th4 = work + 12 * P;
        c.jrow = jrow;
        c.nrm = jrow ? jrow + P * P : NULL;
        c.qv = jrow ? jrow + 2 * P * P : NULL;
        c.ncur = jrow ? jrow + 3 * P * P : NULL;
        c.qcur = jrow ? jrow + 4 * P * P : NULL;
        c.hrow = hidx;
        c.hcol = hidx ? hidx + P : NULL;
        if (!hidx)
            c.jrow = NULL;
        c.xbar = xbar;
        c.evt = evt;
        c.evk = evk;
        /* a resumed run starts at k0 > 0 with theta_k0, constrained already */
        rc = k0 > 0 ? WGF_OK : wgf_problem_constrain(p, theta, err);
    }
    if (rc == WGF_OK)
        rc = wgf_eval_draw(evk, WGF_STREAM_TRAIN, 0, err);
    for (unsigned long k = k0; rc == WGF_OK; k++) {
        double t = (double)k * j->h, F;
        if (k > 0 && !j->fixed && (rc = wgf_eval_draw(evk, WGF_STREAM_TRAIN, k, err)) != WGF_OK)
            break;
        if ((rc = wgf_eval_forward(evk, theta, err)) != WGF_OK)
            break;
        wgf_step_info info = {.step = k, .t = t, .dissipation = NAN, .step_norm = NAN};
        if (k == j->steps) {
            if ((rc = wgf_problem_energy(p, evk, &F, NULL, err)) == WGF_OK) {
                info.energy = F;
                rc = wgf_problem_observe(p, &info, err);
            }
            break;
        }
        if ((rc = wgf_problem_energy(p, evk, &F, gk, err)) != WGF_OK)
            break;
        if ((k == k0 || !j->fixed) && (rc = wgf_eval_set_z(evt, wgf_eval_z(evk), err)) != WGF_OK)
            break;
        if (j->proximal == JKO_METRIC && (rc = wgf_problem_metric_prepare(p, evk, err)) != WGF_OK)
            break;
        c.Fk = F;
        c.xk = wgf_eval_batch(evk, c.S)->x;
        if ((rc = jko_inner(&c, x, &info.solve, err)) != WGF_OK) {
            wgf_error_prefix(err, "step %lu (t = %g)", k + 1, t + j->h);
            break;
        }
        double dis = 0, nd = 0;
        for (size_t i = 0; i < P; i++) {
            dis += gk[i] * (theta[i] - x[i]);
            nd += (x[i] - theta[i]) * (x[i] - theta[i]);
        }
        info.energy = F;
        info.dissipation = dis / j->h;
        info.step_norm = sqrt(nd);
        if (misfit) {
            double *zeta = work + 8 * P;
            for (size_t i = 0; i < P; i++)
                zeta[i] = (theta[i] - x[i]) / j->h;
            if ((rc = wgf_problem_misfit(p, evk, zeta, g, g + N * d, &info, err)) != WGF_OK)
                break;
        }
        /* Report the state at t_k with the solve that leaves it. */
        if ((rc = wgf_problem_observe(p, &info, err)) != WGF_OK)
            break;
        memcpy(theta, x, P * sizeof *theta);
        if ((rc = wgf_problem_constrain(p, theta, err)) != WGF_OK) {
            wgf_error_prefix(err, "step %lu (t = %g)", k + 1, t + j->h);
            break;
        }
    }
    if (rc == WGF_ENUMERIC && err)
        wgf_error_prefix(err, "jko");
    wgf_eval_free(evt);
    wgf_eval_free(evk);
    if (x)
        lbfgs_free(x);
    free(xbar);
    free(work);
    free(jrow);
    free(hidx);
    free(g);
    return rc;
}

/* Resumable: every inner solve starts afresh from theta_k (L-BFGS keeps no
 * memory across steps), so between steps the state is theta and k. */
static unsigned jko_needs(void *state)
{
    (void)state;
    return WGF_SCHEME_RESUMABLE;
}

static const wgf_scheme_vt jko_vt = {
    .create = jko_create,
    .destroy = jko_destroy,
    .run = jko_run,
    .needs = jko_needs,
};

static const wgf_param jko_params[] = {
    {"step", WGF_PARAM_DOUBLE, "0.05", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL, "time step h"},
    {"t_end", WGF_PARAM_DOUBLE, "1", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "final time (a whole number of steps)"},
    {"samples", WGF_PARAM_CHOICE, "fresh", 0, 0, 0, "fresh|fixed",
     "fresh training samples every step, or one fixed batch (always fixed within a step)"},
    {"proximal", WGF_PARAM_CHOICE, "metric", 0, 0, 0, "metric|map",
     "D(theta, theta_k): metric = (theta-theta_k)^T M(theta_k) (theta-theta_k) with the [metric] "
     "frozen at theta_k; map = E|T_theta(z) - T_theta_k(z)|^2 on the step's samples; both plus "
     "eps |theta-theta_k|^2, eps = [metric] tikhonov"},
    {"epsilon", WGF_PARAM_DOUBLE, "1e-6", WGF_P_MIN | WGF_P_MIN_OPEN, 0, 0, NULL,
     "inner tolerance: stop when |grad Phi| <= epsilon |grad F(theta_k)|; history.csv's residual "
     "column is this ratio at the end of the step, its iterations column the L-BFGS iterations"},
    {"m", WGF_PARAM_INT, "6", WGF_P_MIN | WGF_P_MAX, 1, 1000, NULL,
     "L-BFGS memory: correction pairs kept"},
    {"max_iterations", WGF_PARAM_INT, "200", WGF_P_MIN | WGF_P_MAX, 1, INT_MAX, NULL,
     "inner iteration cap; a step that reaches it is taken and reported not converged"},
    {"max_linesearch", WGF_PARAM_INT, "40", WGF_P_MIN | WGF_P_MAX, 1, INT_MAX, NULL,
     "trials per More-Thuente line search (refused, non-admissible trials included)"},
    {"misfit", WGF_PARAM_CHOICE, "auto", 0, 0, 0, "auto|on|off",
     "the velocity misfit r / sqrt(E|g|^2) per step in history.csv, zeta = (theta_k - theta_{k+1}) / h "
     "at theta_k (one jvp and one Wasserstein gradient a step); auto: on when the energy has a "
     "Wasserstein gradient"},
    {"lambda", WGF_PARAM_DOUBLE, NULL, 0, 0, 0, NULL,
     "convexity modulus of the energy, when known: history.csv's bound column B(t) on W2"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL}};

static const wgf_plugin jko_plugin = {
    .abi_version = WGF_ABI_VERSION,
    .kind = WGF_SCHEME,
    .name = "jko",
    .summary = "implicit JKO steps argmin F(theta) + D(theta, theta_k)/(2h), inner L-BFGS (liblbfgs)",
    .params = jko_params,
    .vtable = &jko_vt,
};

WGF_EXPORT const wgf_plugin *wgf_plugin_entry(unsigned index);
const wgf_plugin *wgf_plugin_entry(unsigned index) { return index == 0 ? &jko_plugin : NULL; }
