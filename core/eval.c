/* eval.c: the map evaluated on a batch of reference samples.
 *
 * The batch is cut into blocks of WGF_BLOCK samples. Each block has its own
 * tape and its own random stream; threads take whole blocks, and every sum
 * over samples is formed per block and then added in block order, so the
 * result does not depend on the number of threads (ARCHITECTURE.md,
 * Randomness). Under MPI each rank runs its own range of blocks [b0, b1)
 * and their results are gathered (mpi.c), so it does not depend on the
 * number of ranks either. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct wgf_eval {
    wgf_problem *p;
    const wgf_map_vt *map;
    void *map_state;
    size_t n, d, P, S, nblocks;
    size_t b0, b1; /* this rank's blocks; their tapes alone are made */
    unsigned flags;
    int have_density;
    int no_l; /* WGF_EVAL_NO_L or wgf_eval_drop_l: no log-densities */
    size_t lanes; /* WGF_EVAL_FORWARD_ONLY: tapes[j] serves blocks b0 + j, b0 + j + lanes, ... */

    double *z;     /* n x d */
    double *logq0; /* n: log lambda(z) (zero without a density) */
    double *s0;    /* n x d: grad log lambda(z), with WGF_EVAL_SCORE */
    double *theta; /* P: parameters of the last forward */
    int forwarded;

    void **tapes;       /* nblocks */
    wgf_batch *stage;   /* S + 1 batches; only stage 0 and S unless WGF_EVAL_STAGES */
    double **ld;        /* S + 1 cumulative log-determinants (n), NULL where not kept */
    double *tbar;       /* nblocks x P: per-block partial sums */
    double *scratch;    /* n x d: jvp results, negated l-cotangents */
    double *scratch_ld; /* (S + 1) x n: negated l-cotangents per stage */
    wgf_error *berr;    /* nblocks: per-block errors */
    /* Per-block stage pointer arrays, so that no call allocates: a metric product is made
     * hundreds of times per step. out: 2 (S + 1) per block (forward's x, ld); in: 3 (S + 1) per
     * block (cotangents xbar, ldbar, sbar); last: 3 (S + 1) for wgf_eval_vjp's last-stage arrays. */
    double **ptr_out;
    const double **ptr_in, **ptr_last;
    /* wgf_eval_vjp_many's workspace, for up to many_k cotangent sets, grown on demand:
     * per-block partial sums (nblocks x k x P), negated l-cotangents (k x n), per-block pointers
     * to the sets (nblocks x 3k) and to their partial sums (nblocks x k). */
    size_t many_k;
    double *many_tbar, *many_ld;
    const double **many_in;
    double **many_out;
    /* wgf_eval_gram_blocks' per-block sums (nblocks x P x size), allocated by its first call */
    size_t gram_size;
    double *gram_buf;
};

static size_t block_len(const wgf_eval *ev, size_t b)
{
    size_t off = b * WGF_BLOCK;
    return ev->n - off < WGF_BLOCK ? ev->n - off : WGF_BLOCK;
}

static int stage_kept(const wgf_eval *ev, size_t k)
{
    return k == 0 || k == ev->S || (ev->flags & WGF_EVAL_STAGES);
}

/* The first failing block's error, in block order (over every rank). */
static int first_error(wgf_eval *ev, wgf_error *err)
{
    return wgf_mpi_first_error(ev->berr, ev->nblocks, err);
}

/* Rows of n x width doubles, each rank having filled its blocks' rows, made whole. */
static int gather_rows(wgf_eval *ev, double *buf, size_t width, wgf_error *err)
{
    return wgf_mpi_gather(buf, ev->n, width, WGF_BLOCK, ev->nblocks, err);
}

/* Per-block partial sums, per doubles each, made whole. */
static int gather_partials(wgf_eval *ev, double *tbar, size_t per, wgf_error *err)
{
    return wgf_mpi_gather(tbar, ev->nblocks, per, 1, ev->nblocks, err);
}

/* A map's status for block b: a failure the map did not describe in the
 * block's record is recorded all the same (a refusal without a message). */
static int block_rc(wgf_eval *ev, size_t b, int rc)
{
    if (rc != WGF_OK && (ev->berr[b].code != rc || !ev->berr[b].msg[0]))
        wgf_error_forward(&ev->berr[b], rc, "map");
    return rc;
}

static void clear_errors(wgf_eval *ev)
{
    for (size_t b = 0; b < ev->nblocks; b++)
        wgf_error_clear(&ev->berr[b]);
}

void wgf_eval_free(wgf_eval *ev)
{
    if (!ev)
        return;
    if (ev->tapes) {
        for (size_t b = 0; b < ev->nblocks; b++)
            if (ev->tapes[b])
                ev->map->tape_destroy(ev->map_state, ev->tapes[b]);
        free(ev->tapes);
    }
    if (ev->stage) {
        for (size_t k = 0; k <= ev->S; k++) {
            if (k > 0) { /* stage 0's x and s are z and s0 */
                wgf_free(ev->stage[k].x);
                wgf_free(ev->stage[k].s);
            }
            wgf_free(ev->stage[k].l);
        }
        free(ev->stage);
    }
    if (ev->ld) {
        for (size_t k = 0; k <= ev->S; k++)
            wgf_free(ev->ld[k]);
        free(ev->ld);
    }
    wgf_free(ev->z);
    wgf_free(ev->logq0);
    wgf_free(ev->s0);
    wgf_free(ev->theta);
    wgf_free(ev->tbar);
    wgf_free(ev->scratch);
    wgf_free(ev->scratch_ld);
    free(ev->berr);
    free(ev->ptr_out);
    free(ev->ptr_in);
    free(ev->ptr_last);
    wgf_free(ev->many_tbar);
    wgf_free(ev->many_ld);
    free(ev->many_in);
    free(ev->many_out);
    wgf_free(ev->gram_buf);
    free(ev);
}

wgf_eval *wgf_eval_create(wgf_problem *p, size_t n, unsigned flags, wgf_error *err)
{
    if (n == 0) {
        wgf_error_set(err, WGF_EINVAL, "a batch needs at least one sample");
        return NULL;
    }
    wgf_eval *ev = calloc(1, sizeof *ev);
    if (!ev)
        goto nomem;
    ev->p = p;
    ev->map = p->map;
    ev->map_state = p->map_state;
    ev->n = n;
    ev->d = p->info.dim;
    ev->P = p->nparams;
    ev->S = p->nstages;
    /* What the configuration needs is on whatever the caller asked for: an energy that reads s
     * has a score path in its gradient (MATH.md 2), and a scheme that takes the Wasserstein
     * gradient of one that reads s gets it on every batch it makes. */
    if (!(flags & WGF_EVAL_AS_ASKED) &&
        ((p->energy_needs & WGF_NEEDS_S) ||
         ((p->scheme_needs & WGF_SCHEME_NEEDS_WGRAD) && (p->energy_needs & WGF_WGRAD_NEEDS_S))))
        flags |= WGF_EVAL_SCORE;
    ev->flags = flags & ~(WGF_EVAL_AS_ASKED | WGF_EVAL_FORWARD_ONLY | WGF_EVAL_NO_L);
    ev->no_l = (flags & WGF_EVAL_NO_L) != 0;
    ev->nblocks = (n + WGF_BLOCK - 1) / WGF_BLOCK;
    wgf_mpi_blocks(ev->nblocks, &ev->b0, &ev->b1);
    unsigned provides = wgf_dist_provides(p->dist);
    ev->have_density = (provides & WGF_DIST_DENSITY) != 0;
    if ((flags & WGF_EVAL_SCORE) && !(provides & WGF_DIST_SCORE)) {
        wgf_error_set(err, WGF_EINVAL, "the initial law (%s) has no score, which this run needs",
                      wgf_dist_type(p->dist));
        free(ev);
        return NULL;
    }
    size_t nd = n * ev->d;
    ev->z = wgf_alloc_doubles(nd);
    ev->logq0 = wgf_alloc_doubles(n);
    ev->s0 = (flags & WGF_EVAL_SCORE) ? wgf_alloc_doubles(nd) : NULL;
    ev->theta = wgf_alloc_doubles(ev->P);
    ev->tbar = wgf_alloc_doubles(ev->nblocks * ev->P);
    ev->scratch = wgf_alloc_doubles(nd);
    ev->scratch_ld = wgf_alloc_doubles((ev->S + 1) * n);
    ev->berr = calloc(ev->nblocks, sizeof *ev->berr);
    ev->tapes = calloc(ev->nblocks, sizeof *ev->tapes);
    ev->stage = calloc(ev->S + 1, sizeof *ev->stage);
    ev->ld = calloc(ev->S + 1, sizeof *ev->ld);
    ev->ptr_out = calloc(ev->nblocks * 2 * (ev->S + 1), sizeof *ev->ptr_out);
    ev->ptr_in = calloc(ev->nblocks * 3 * (ev->S + 1), sizeof *ev->ptr_in);
    ev->ptr_last = calloc(3 * (ev->S + 1), sizeof *ev->ptr_last);
    if (!ev->z || !ev->logq0 || (!ev->s0 && (flags & WGF_EVAL_SCORE)) || !ev->theta || !ev->tbar ||
        !ev->scratch || !ev->scratch_ld || !ev->berr || !ev->tapes || !ev->stage || !ev->ld ||
        !ev->ptr_out || !ev->ptr_in || !ev->ptr_last)
        goto nomem;
    if ((flags & WGF_EVAL_FORWARD_ONLY) && ev->b1 > ev->b0) {
        size_t lanes = 1;
#ifdef _OPENMP
        lanes = (size_t)omp_get_max_threads();
#endif
        ev->lanes = lanes < ev->b1 - ev->b0 ? lanes : ev->b1 - ev->b0;
        for (size_t j = 0; j < ev->lanes; j++)
            if (!(ev->tapes[j] = ev->map->tape_create(ev->map_state, block_len(ev, ev->b0))))
                goto nomem;
    } else {
        for (size_t b = ev->b0; b < ev->b1; b++)
            if (!(ev->tapes[b] = ev->map->tape_create(ev->map_state, block_len(ev, b))))
                goto nomem;
    }
    for (size_t k = 0; k <= ev->S; k++) {
        wgf_batch *bt = &ev->stage[k];
        bt->n = n;
        bt->d = ev->d;
        if (!stage_kept(ev, k))
            continue;
        bt->x = k == 0 ? ev->z : wgf_alloc_doubles(nd);
        if (!bt->x)
            goto nomem;
        if (!ev->no_l && (!(bt->l = wgf_alloc_doubles(n)) || !(ev->ld[k] = wgf_alloc_doubles(n))))
            goto nomem;
        if (flags & WGF_EVAL_SCORE) {
            bt->s = k == 0 ? NULL : wgf_alloc_doubles(nd);
            if (k > 0 && !bt->s)
                goto nomem;
        }
    }
    if (flags & WGF_EVAL_SCORE)
        ev->stage[0].s = ev->s0;
    return ev;
nomem:
    wgf_eval_free(ev);
    wgf_error_set(err, WGF_ENOMEM, "out of memory for a batch of %zu samples", n);
    return NULL;
}

/* log lambda and its score at the current z. */
static int reference_terms(wgf_eval *ev, wgf_error *err)
{
    int rc = WGF_OK;
    if (!ev->no_l) {
        if (ev->have_density)
            rc = wgf_dist_log_density(ev->p->dist, ev->n, ev->z, ev->logq0, err);
        else
            memset(ev->logq0, 0, ev->n * sizeof(double));
    }
    if (rc == WGF_OK && (ev->flags & WGF_EVAL_SCORE))
        rc = wgf_dist_score(ev->p->dist, ev->n, ev->z, ev->s0, err);
    ev->forwarded = 0;
    return rc;
}

int wgf_eval_draw(wgf_eval *ev, unsigned family, unsigned long step, wgf_error *err)
{
    clear_errors(ev);
    const wgf_dist *dist = ev->p->dist;
    unsigned long seed = ev->p->info.seed;
    long b0 = (long)ev->b0, b1 = (long)ev->b1;
#pragma omp parallel for schedule(static)
    for (long b = b0; b < b1; b++) {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        if (!r) {
            wgf_error_set(&ev->berr[b], WGF_ENOMEM, "out of memory for a random stream");
            continue;
        }
        wgf_rng_set(r, seed, family, step, (unsigned long)b);
        size_t off = (size_t)b * WGF_BLOCK;
        wgf_dist_sample(dist, r, block_len(ev, (size_t)b), ev->z + off * ev->d, &ev->berr[b]);
        gsl_rng_free(r);
    }
    int rc = first_error(ev, err);
    if (rc == WGF_OK)
        rc = gather_rows(ev, ev->z, ev->d, err);
    return rc != WGF_OK ? rc : reference_terms(ev, err);
}

int wgf_eval_set_z(wgf_eval *ev, const double *z, wgf_error *err)
{
    memcpy(ev->z, z, ev->n * ev->d * sizeof(double));
    return reference_terms(ev, err);
}

void wgf_eval_drop_l(wgf_eval *ev)
{
    for (size_t k = 0; k <= ev->S; k++) {
        wgf_free(ev->stage[k].l);
        ev->stage[k].l = NULL;
        wgf_free(ev->ld[k]);
        ev->ld[k] = NULL;
    }
    ev->no_l = 1;
    ev->forwarded = 0;
}

/* The map (and the scores) on block b, on the given tape; l from ld. */
static void forward_block(wgf_eval *ev, size_t b, void *tape)
{
    size_t S = ev->S, d = ev->d, off = b * WGF_BLOCK, m = block_len(ev, b);
    double **xs = ev->ptr_out + b * 2 * (S + 1);
    double **lds = ev->no_l ? NULL : xs + S + 1;
    for (size_t k = 0; k <= S; k++) {
        int keep = stage_kept(ev, k) && k > 0;
        xs[k] = keep ? ev->stage[k].x + off * d : NULL;
        if (lds)
            lds[k] = keep ? ev->ld[k] + off : NULL;
    }
    int rc = block_rc(ev, b, ev->map->forward(ev->map_state, ev->theta, m, ev->z + off * d, tape, xs, lds,
                                              &ev->berr[b]));
    if (rc == WGF_OK && (ev->flags & WGF_EVAL_SCORE)) {
        for (size_t k = 0; k <= S; k++)
            xs[k] = (stage_kept(ev, k) && k > 0) ? ev->stage[k].s + off * d : NULL;
        rc = block_rc(ev, b, ev->map->score(ev->map_state, ev->theta, m, tape, ev->s0 + off * d, xs,
                                            &ev->berr[b]));
    }
    if (rc == WGF_OK && !ev->no_l) {
        /* l = log lambda(z) - ld (MATH.md 1); stage 0 is lambda itself. */
        for (size_t k = 0; k <= S; k++) {
            if (!stage_kept(ev, k))
                continue;
            double *l = ev->stage[k].l + off;
            const double *lq = ev->logq0 + off, *ld = ev->ld[k] + off;
            for (size_t i = 0; i < m; i++)
                l[i] = k == 0 ? lq[i] : lq[i] - ld[i];
        }
    }
}

int wgf_eval_forward(wgf_eval *ev, const double *theta, wgf_error *err)
{
    size_t S = ev->S, d = ev->d;
    memcpy(ev->theta, theta, ev->P * sizeof(double));
    clear_errors(ev);
    long b0 = (long)ev->b0, b1 = (long)ev->b1, lanes = (long)ev->lanes;
    if (lanes > 0) {
        /* a tape per lane, block after block: a block's results do not depend on what the
         * tape held before (a tape is reused from step to step all the same) */
#pragma omp parallel for schedule(static)
        for (long j = 0; j < lanes; j++)
            for (long bl = b0 + j; bl < b1; bl += lanes)
                forward_block(ev, (size_t)bl, ev->tapes[j]);
    } else {
#pragma omp parallel for schedule(static)
        for (long bl = b0; bl < b1; bl++)
            forward_block(ev, (size_t)bl, ev->tapes[bl]);
    }
    int rc = first_error(ev, err);
    for (size_t k = 0; k <= S && rc == WGF_OK; k++) {
        if (!stage_kept(ev, k))
            continue;
        if (!ev->no_l)
            rc = gather_rows(ev, ev->stage[k].l, 1, err);
        if (rc == WGF_OK && k > 0)
            rc = gather_rows(ev, ev->stage[k].x, d, err);
        if (rc == WGF_OK && k > 0 && !ev->no_l)
            rc = gather_rows(ev, ev->ld[k], 1, err);
        if (rc == WGF_OK && k > 0 && (ev->flags & WGF_EVAL_SCORE))
            rc = gather_rows(ev, ev->stage[k].s, d, err);
    }
    ev->forwarded = rc == WGF_OK;
    return rc;
}

size_t wgf_eval_n(const wgf_eval *ev) { return ev->n; }
size_t wgf_eval_dim(const wgf_eval *ev) { return ev->d; }
size_t wgf_eval_nparams(const wgf_eval *ev) { return ev->P; }
size_t wgf_eval_nstages(const wgf_eval *ev) { return ev->S; }
const double *wgf_eval_theta(const wgf_eval *ev) { return ev->theta; }
const double *wgf_eval_z(const wgf_eval *ev) { return ev->z; }
double *wgf_eval_scratch_logq0(wgf_eval *ev) { return ev->logq0; }

const wgf_batch *wgf_eval_batch(const wgf_eval *ev, size_t stage)
{
    if (stage > ev->S || !stage_kept(ev, stage))
        return NULL;
    return &ev->stage[stage];
}

/* Derivatives read each block's own tape, which a forward-only batch does not keep. */
static int no_tapes(wgf_error *err)
{
    return wgf_error_set(err, WGF_EINVAL, "derivatives of a forward-only batch (it keeps no tape per block)");
}

/* A batch without log-densities (WGF_EVAL_NO_L) has no tape of them to differentiate. */
static int no_log_densities(wgf_error *err)
{
    return wgf_error_set(err, WGF_EINVAL, "log-density cotangents on a batch without log-densities (WGF_EVAL_NO_L)");
}

/* Add the per-block partial sums in block order, every rank's gathered first. */
static int reduce_blocks(wgf_eval *ev, double *out, double scale, wgf_error *err)
{
    size_t P = ev->P;
    int rc = gather_partials(ev, ev->tbar, P, err);
    if (rc != WGF_OK)
        return rc;
    memcpy(out, ev->tbar, P * sizeof(double));
    for (size_t b = 1; b < ev->nblocks; b++) {
        const double *t = ev->tbar + b * P;
        for (size_t j = 0; j < P; j++)
            out[j] += t[j];
    }
    if (scale != 1.0)
        for (size_t j = 0; j < P; j++)
            out[j] *= scale;
    return WGF_OK;
}

int wgf_eval_jvp(wgf_eval *ev, const double *v, double *jx, wgf_error *err)
{
    if (ev->lanes)
        return no_tapes(err);
    clear_errors(ev);
    long b0 = (long)ev->b0, b1 = (long)ev->b1;
#pragma omp parallel for schedule(static)
    for (long bl = b0; bl < b1; bl++) {
        size_t b = (size_t)bl, off = b * WGF_BLOCK;
        block_rc(ev, b, ev->map->jvp(ev->map_state, ev->theta, block_len(ev, b), ev->tapes[b], v,
                                     jx + off * ev->d, NULL, &ev->berr[b]));
    }
    int rc = first_error(ev, err);
    return rc != WGF_OK ? rc : gather_rows(ev, jx, ev->d, err);
}

int wgf_eval_path_vjp(wgf_eval *ev, const double *const *xbar, const double *const *lbar,
                      const double *const *sbar, double *thetabar, wgf_error *err)
{
    if (ev->lanes)
        return no_tapes(err);
    size_t S = ev->S, d = ev->d, P = ev->P;
    if ((sbar && !(ev->flags & WGF_EVAL_SCORE))) {
        for (size_t k = 0; k <= S; k++)
            if (sbar[k])
                return wgf_error_set(err, WGF_EINVAL, "score cotangents need a batch with scores");
    }
    /* The map takes cotangents of log-determinants: ld = log lambda - l. */
    for (size_t k = 0; lbar && k <= S; k++) {
        if (lbar[k] && ev->no_l)
            return no_log_densities(err);
        if (lbar[k])
            for (size_t i = 0; i < ev->n; i++)
                ev->scratch_ld[k * ev->n + i] = -lbar[k][i];
    }
    clear_errors(ev);
    long b0 = (long)ev->b0, b1 = (long)ev->b1;
#pragma omp parallel for schedule(static)
    for (long bl = b0; bl < b1; bl++) {
        size_t b = (size_t)bl, off = b * WGF_BLOCK;
        double *tb = ev->tbar + b * P;
        memset(tb, 0, P * sizeof(double));
        const double **ptr = ev->ptr_in + b * 3 * (S + 1);
        const double **xb = ptr, **lb = ptr + S + 1, **sb = ptr + 2 * (S + 1);
        for (size_t k = 0; k <= S; k++) {
            xb[k] = xbar && xbar[k] ? xbar[k] + off * d : NULL;
            lb[k] = lbar && lbar[k] ? ev->scratch_ld + k * ev->n + off : NULL;
            sb[k] = sbar && sbar[k] ? sbar[k] + off * d : NULL;
        }
        block_rc(ev, b, ev->map->path_vjp(ev->map_state, ev->theta, block_len(ev, b), ev->tapes[b],
                                          xb, lb, sbar ? sb : NULL, tb, &ev->berr[b]));
    }
    int rc = first_error(ev, err);
    return rc != WGF_OK ? rc : reduce_blocks(ev, thetabar, 1.0, err);
}

int wgf_eval_vjp(wgf_eval *ev, const double *xbar, const double *lbar, const double *sbar,
                 double *thetabar, wgf_error *err)
{
    size_t S = ev->S;
    const double **ptr = ev->ptr_last; /* all NULL but the last stage's entries */
    ptr[S] = xbar;
    ptr[(S + 1) + S] = lbar;
    ptr[2 * (S + 1) + S] = sbar;
    return wgf_eval_path_vjp(ev, ptr, ptr + S + 1, sbar ? ptr + 2 * (S + 1) : NULL, thetabar, err);
}

int wgf_eval_gram(wgf_eval *ev, const double *v, double *out, wgf_error *err)
{
    if (ev->lanes)
        return no_tapes(err);
    size_t S = ev->S, d = ev->d, P = ev->P;
    clear_errors(ev);
    long b0 = (long)ev->b0, b1 = (long)ev->b1;
#pragma omp parallel for schedule(static)
    for (long bl = b0; bl < b1; bl++) {
        size_t b = (size_t)bl, off = b * WGF_BLOCK, m = block_len(ev, b);
        double *tb = ev->tbar + b * P, *jx = ev->scratch + off * d;
        memset(tb, 0, P * sizeof(double));
        const double **xb = ev->ptr_in + b * 3 * (S + 1);
        for (size_t k = 0; k <= S; k++)
            xb[k] = NULL;
        /* J^T (J v) on the block's tape while it is hot in cache. */
        int rc = block_rc(ev, b, ev->map->jvp(ev->map_state, ev->theta, m, ev->tapes[b], v, jx, NULL,
                                              &ev->berr[b]));
        if (rc == WGF_OK) {
            xb[S] = jx;
            block_rc(ev, b, ev->map->path_vjp(ev->map_state, ev->theta, m, ev->tapes[b], xb, NULL, NULL,
                                              tb, &ev->berr[b]));
        }
    }
    int rc = first_error(ev, err);
    return rc != WGF_OK ? rc : reduce_blocks(ev, out, 1.0 / (double)ev->n, err);
}

/* Room in the workspace for k cotangent sets. */
static int many_reserve(wgf_eval *ev, size_t k, wgf_error *err)
{
    if (k <= ev->many_k)
        return WGF_OK;
    wgf_free(ev->many_tbar);
    wgf_free(ev->many_ld);
    free(ev->many_in);
    free(ev->many_out);
    ev->many_k = 0;
    size_t nb = ev->nblocks;
    int fits = k <= ((size_t)-1) / 8 / (nb * (ev->P + ev->n + 3));
    ev->many_tbar = fits ? wgf_alloc_doubles(nb * k * ev->P) : NULL;
    ev->many_ld = fits ? wgf_alloc_doubles(k * ev->n) : NULL;
    ev->many_in = fits ? calloc(nb * 3 * k, sizeof *ev->many_in) : NULL;
    ev->many_out = fits ? calloc(nb * k, sizeof *ev->many_out) : NULL;
    if (!ev->many_tbar || !ev->many_ld || !ev->many_in || !ev->many_out)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory for %zu cotangent sets", k);
    ev->many_k = k;
    return WGF_OK;
}

/* Block b's k partial sums, from the map's vjp_many in one pass, or from k path_vjp calls. */
static void vjp_many_block(wgf_eval *ev, size_t b, size_t k, const double *const *xbar,
                           const double *const *lbar, const double *const *sbar)
{
    size_t S = ev->S, d = ev->d, P = ev->P, n = ev->n, off = b * WGF_BLOCK, m = block_len(ev, b);
    double *tb = ev->many_tbar + b * k * P;
    memset(tb, 0, k * P * sizeof(double));
#define SET_X(j) (xbar && xbar[j] ? xbar[j] + off * d : NULL)
#define SET_L(j) (lbar && lbar[j] ? ev->many_ld + (j) * n + off : NULL)
#define SET_S(j) (sbar && sbar[j] ? sbar[j] + off * d : NULL)
    if (ev->map->vjp_many) {
        const double **xb = ev->many_in + b * 3 * k, **lb = xb + k, **sb = lb + k;
        double **out = ev->many_out + b * k;
        for (size_t j = 0; j < k; j++) {
            xb[j] = SET_X(j);
            lb[j] = SET_L(j);
            sb[j] = SET_S(j);
            out[j] = tb + j * P;
        }
        block_rc(ev, b, ev->map->vjp_many(ev->map_state, ev->theta, m, ev->tapes[b], k, xb, lb,
                                          sbar ? sb : NULL, out, &ev->berr[b]));
        return;
    }
    const double **ptr = ev->ptr_in + b * 3 * (S + 1);
    for (size_t i = 0; i < 3 * (S + 1); i++)
        ptr[i] = NULL;
    for (size_t j = 0; j < k && ev->berr[b].code == WGF_OK; j++) {
        ptr[S] = SET_X(j);
        ptr[(S + 1) + S] = SET_L(j);
        ptr[2 * (S + 1) + S] = SET_S(j);
        block_rc(ev, b, ev->map->path_vjp(ev->map_state, ev->theta, m, ev->tapes[b], ptr, ptr + S + 1,
                                          ptr[2 * (S + 1) + S] ? ptr + 2 * (S + 1) : NULL, tb + j * P,
                                          &ev->berr[b]));
    }
#undef SET_X
#undef SET_L
#undef SET_S
}

int wgf_eval_vjp_many(wgf_eval *ev, size_t k, const double *const *xbar, const double *const *lbar,
                      const double *const *sbar, double *const *thetabar, wgf_error *err)
{
    if (ev->lanes)
        return no_tapes(err);
    size_t n = ev->n, P = ev->P;
    if (k == 0)
        return WGF_OK;
    if (sbar && !(ev->flags & WGF_EVAL_SCORE))
        for (size_t j = 0; j < k; j++)
            if (sbar[j])
                return wgf_error_set(err, WGF_EINVAL, "score cotangents need a batch with scores");
    if (lbar && ev->no_l)
        for (size_t j = 0; j < k; j++)
            if (lbar[j])
                return no_log_densities(err);
    int rc = many_reserve(ev, k, err);
    if (rc != WGF_OK)
        return rc;
    /* The map takes cotangents of log-determinants: ld = log lambda - l. */
    if (lbar)
        for (size_t j = 0; j < k; j++)
            if (lbar[j])
                for (size_t i = 0; i < n; i++)
                    ev->many_ld[j * n + i] = -lbar[j][i];
    clear_errors(ev);
    long b0 = (long)ev->b0, b1 = (long)ev->b1;
#pragma omp parallel for schedule(static)
    for (long bl = b0; bl < b1; bl++)
        vjp_many_block(ev, (size_t)bl, k, xbar, lbar, sbar);
    rc = first_error(ev, err);
    if (rc == WGF_OK)
        rc = gather_partials(ev, ev->many_tbar, k * P, err);
    if (rc != WGF_OK)
        return rc;
    /* block partial sums in block order, as reduce_blocks */
    for (size_t j = 0; j < k; j++) {
        double *out = thetabar[j];
        memcpy(out, ev->many_tbar + j * P, P * sizeof(double));
        for (size_t b = 1; b < ev->nblocks; b++) {
            const double *t = ev->many_tbar + (b * k + j) * P;
            for (size_t i = 0; i < P; i++)
                out[i] += t[i];
        }
    }
    return WGF_OK;
}

int wgf_eval_gram_blocks(wgf_eval *ev, size_t *size, double *G, wgf_error *err)
{
    if (ev->lanes)
        return no_tapes(err);
    size_t P = ev->P, q = 0;
    if (!ev->map->gram_blocks)
        return wgf_error_set(err, WGF_EUNSUP, "the map has no Gram blocks (gram_blocks)");
    wgf_error_clear(err);
    int rc = ev->map->gram_blocks(ev->map_state, ev->theta, 0, NULL, &q, NULL, err);
    if (rc != WGF_OK)
        return wgf_error_forward(err, rc, "map: gram_blocks");
    if (q == 0 || P % q != 0)
        return wgf_error_set(err, WGF_EINVAL,
                             "map: gram_blocks: blocks of %zu parameters do not divide the %zu "
                             "parameters",
                             q, P);
    *size = q;
    if (!G)
        return WGF_OK;
    if (ev->gram_size != q) {
        wgf_free(ev->gram_buf);
        ev->gram_size = 0;
        ev->gram_buf = wgf_alloc_doubles(ev->nblocks * P * q);
        if (!ev->gram_buf)
            return wgf_error_set(err, WGF_ENOMEM, "out of memory for the Gram blocks");
        ev->gram_size = q;
    }
    clear_errors(ev);
    long b0 = (long)ev->b0, b1 = (long)ev->b1;
#pragma omp parallel for schedule(static)
    for (long bl = b0; bl < b1; bl++) {
        size_t b = (size_t)bl, qb = q;
        double *gb = ev->gram_buf + b * P * q;
        memset(gb, 0, P * q * sizeof(double));
        block_rc(ev, b, ev->map->gram_blocks(ev->map_state, ev->theta, block_len(ev, b), ev->tapes[b],
                                             &qb, gb, &ev->berr[b]));
    }
    rc = first_error(ev, err);
    if (rc == WGF_OK) /* each rank's blocks made whole (MPI) */
        rc = gather_partials(ev, ev->gram_buf, P * q, err);
    if (rc != WGF_OK)
        return rc;
    /* block partial sums in block order, as reduce_blocks */
    double scale = 1.0 / (double)ev->n;
    memcpy(G, ev->gram_buf, P * q * sizeof(double));
    for (size_t b = 1; b < ev->nblocks; b++) {
        const double *t = ev->gram_buf + b * P * q;
        for (size_t i = 0; i < P * q; i++)
            G[i] += t[i];
    }
    for (size_t i = 0; i < P * q; i++)
        G[i] *= scale;
    return WGF_OK;
}
