/* mpi.c: a run spread over MPI ranks (configure --with-mpi).
 *
 * Rank r of R owns the contiguous range of a batch's blocks [r B / R,
 * (r + 1) B / R) and runs the map's passes (forward, score, jvp, vjp) on
 * those blocks only: their tapes, the costly part, exist on that rank alone.
 * What a pass returns is made whole on every rank by an all-gather: the
 * samples, log-densities and scores of the kept stages (rows of the batch in
 * block order), and the per-block partial sums of a reverse pass, which every
 * rank then adds in block order as the serial run does. So every rank holds
 * the same batch and the same sums, bit for bit, whatever R: energies,
 * metrics, schemes and references run unchanged (and redundantly) on every
 * rank, and a run's results do not depend on R. A plugin's own row-wise work
 * (the energies' pair sums) is shared the same way: each rank computes the
 * rows of its blocks (wgf_mpi_rows) and the rows are gathered
 * (wgf_mpi_rows_gather).
 *
 * Without MPI, or in a process that did not call wgf_mpi_init (the tests,
 * `wgf check`), there is one rank owning every block and nothing here
 * communicates. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

#include "internal.h"

static int mpi_rank = 0, mpi_size = 1;

#ifdef HAVE_MPI
/* Whether an MPI launcher started this process: Open MPI's mpirun, Hydra (MPICH), PMI or PMIx
 * (srun). Without one a run is serial and MPI is not started at all (a singleton start costs
 * time and, with some MPIs, a daemon). */
static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}
#endif

int wgf_mpi_init(int *argc, char ***argv)
{
#ifdef HAVE_MPI
    if (!launched())
        return WGF_OK;
    int provided;
    /* Threads (OpenMP) never call MPI: only the thread that called init does. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return WGF_EIO;
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
#else
    (void)argc;
    (void)argv;
    /* several copies of a serial wgf would each run the whole experiment into the same files */
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n)
        n = getenv("PMI_SIZE");
    if (n && atol(n) > 1)
        return WGF_EUNSUP;
#endif
    return WGF_OK;
}

void wgf_mpi_finalize(void)
{
#ifdef HAVE_MPI
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down)
        MPI_Finalize();
#endif
}

void wgf_mpi_abort(int status)
{
#ifdef HAVE_MPI
    if (mpi_size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
#else
    (void)status;
#endif
}

int wgf_mpi_rank(void) { return mpi_rank; }
int wgf_mpi_writer(void) { return mpi_rank == 0; }
int wgf_mpi_size(void) { return mpi_size; }

static size_t range_start(size_t nblocks, int rank)
{
    return (size_t)rank * nblocks / (size_t)mpi_size;
}

void wgf_mpi_blocks(size_t nblocks, size_t *b0, size_t *b1)
{
    *b0 = range_start(nblocks, mpi_rank);
    *b1 = range_start(nblocks, mpi_rank + 1);
}

/* The blocks of WGF_BLOCK rows of N rows, the last one short. */
static size_t row_blocks(size_t N)
{
    return N / WGF_BLOCK + (N % WGF_BLOCK != 0);
}

void wgf_mpi_rows(size_t N, size_t *n0, size_t *n1)
{
    size_t b0, b1;
    wgf_mpi_blocks(row_blocks(N), &b0, &b1);
    *n0 = b0 * WGF_BLOCK < N ? b0 * WGF_BLOCK : N;
    *n1 = b1 * WGF_BLOCK < N ? b1 * WGF_BLOCK : N;
}

int wgf_mpi_rows_gather(double *rows, size_t N, size_t width, wgf_error *err)
{
    return wgf_mpi_gather(rows, N, width, WGF_BLOCK, row_blocks(N), err);
}

#ifdef HAVE_MPI
/* The rank that owns block b. */
static int block_owner(size_t nblocks, size_t b)
{
    int r = 0;
    while (r + 1 < mpi_size && range_start(nblocks, r + 1) <= b)
        r++;
    return r;
}
#endif

int wgf_mpi_gather(double *buf, size_t nunits, size_t unit, size_t per_block, size_t nblocks, wgf_error *err)
{
    if (mpi_size == 1 || nunits == 0 || unit == 0)
        return WGF_OK;
#ifdef HAVE_MPI
    int *counts = malloc(2 * (size_t)mpi_size * sizeof *counts);
    if (!counts)
        return wgf_error_set(err, WGF_ENOMEM, "out of memory");
    int *displs = counts + mpi_size;
    for (int r = 0; r < mpi_size; r++) {
        size_t u0 = range_start(nblocks, r) * per_block, u1 = range_start(nblocks, r + 1) * per_block;
        u0 = u0 < nunits ? u0 : nunits;
        u1 = u1 < nunits ? u1 : nunits;
        if (u1 > (size_t)INT_MAX) {
            free(counts);
            return wgf_error_set(err, WGF_EINVAL, "a batch of %zu rows is too large to gather over MPI",
                                 nunits);
        }
        counts[r] = (int)(u1 - u0);
        displs[r] = (int)u0;
    }
    /* rows of unit doubles, so that counts stay far from INT_MAX */
    MPI_Datatype row;
    int rc = MPI_Type_contiguous((int)unit, MPI_DOUBLE, &row);
    if (rc == MPI_SUCCESS)
        rc = MPI_Type_commit(&row);
    if (rc == MPI_SUCCESS) {
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, row, MPI_COMM_WORLD);
        MPI_Type_free(&row);
    }
    free(counts);
    if (rc != MPI_SUCCESS)
        return wgf_error_set(err, WGF_EIO, "MPI_Allgatherv failed (MPI error %d)", rc);
    return WGF_OK;
#else
    (void)buf;
    (void)per_block;
    (void)nblocks;
    (void)err;
    return WGF_OK;
#endif
}

int wgf_mpi_first_error(wgf_error *berr, size_t nblocks, wgf_error *err)
{
    size_t first = nblocks;
    size_t b0, b1;
    wgf_mpi_blocks(nblocks, &b0, &b1);
    for (size_t b = b0; b < b1 && first == nblocks; b++)
        if (berr[b].code != WGF_OK)
            first = b;
#ifdef HAVE_MPI
    if (mpi_size > 1) {
        /* every rank learns the first failing block in block order and its owner's message,
         * so that all take the same branch (a rejected step, say) as the serial run */
        unsigned long mine = first, all = nblocks;
        if (MPI_Allreduce(&mine, &all, 1, MPI_UNSIGNED_LONG, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
            return wgf_error_set(err, WGF_EIO, "MPI_Allreduce failed");
        first = all;
        if (first < nblocks &&
            MPI_Bcast(&berr[first], (int)sizeof berr[first], MPI_BYTE, block_owner(nblocks, first),
                      MPI_COMM_WORLD) != MPI_SUCCESS)
            return wgf_error_set(err, WGF_EIO, "MPI_Bcast failed");
    }
#endif
    if (first == nblocks)
        return WGF_OK;
    if (err)
        *err = berr[first];
    return berr[first].code;
}
