/*
 * threads.c - MPI_THREAD_MULTIPLE: several threads per rank exchange
 * verified messages with the partner rank at the same time.
 *
 * Why: with threads, the PML's receive callback takes its own locks while
 * other threads send through the BTL; a transport that calls back with its
 * own lock held deadlocks here.  Sizes cross the eager limit, so both the
 * eager and the rendezvous paths run concurrently.
 * Options: --threads N (default 4), --iters N (default 200).
 */
#include "common.h"
#include <pthread.h>

#define MAX_SIZE 200000

static int rank, peer, iters = 200;

static void *exchange(void *arg)
{
    int t = (int)(intptr_t)arg;
    unsigned char *sb = xmalloc(MAX_SIZE), *rb = xmalloc(MAX_SIZE);
    for (int i = 0; i < iters; i++) {
        size_t n = ((size_t)i * 7919u + (size_t)t * 31u) % MAX_SIZE;
        pattern_fill(sb, n, seed4((uint64_t)rank, (uint64_t)t, (uint64_t)i, n));
        CHECK_MPI(MPI_Sendrecv(sb, (int)n, MPI_BYTE, peer, t, rb, (int)n, MPI_BYTE, peer, t,
                               MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        size_t bad = pattern_check(rb, n, seed4((uint64_t)peer, (uint64_t)t, (uint64_t)i, n));
        if (bad != (size_t)-1)
            fail("thread %d iteration %d: %zu bytes from rank %d differ at offset %zu", t, i, n,
                 peer, bad);
    }
    free(sb);
    free(rb);
    return NULL;
}

int main(int argc, char **argv)
{
    int provided, size, nthreads = 4;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    static const char *const with_value[] = {"--threads", "--iters", NULL};
    opt_check_known(argc, argv, with_value, NULL);
    if (opt_value(argc, argv, "--threads"))
        nthreads = atoi(opt_value(argc, argv, "--threads"));
    if (opt_value(argc, argv, "--iters"))
        iters = atoi(opt_value(argc, argv, "--iters"));
    if (nthreads < 1 || nthreads > 64 || iters < 1)
        fail("--threads must be 1..64 and --iters positive");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (provided < MPI_THREAD_MULTIPLE)
        fail("MPI_THREAD_MULTIPLE not provided (got %d)", provided);
    if (size % 2)
        fail("needs an even number of ranks, got %d", size);
    peer = rank ^ 1;
    pthread_t th[64];
    double t0 = MPI_Wtime();
    for (int t = 0; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, exchange, (void *)(intptr_t)t))
            fail("pthread_create failed");
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 0)
        printf("RESULT ok ranks=%d threads=%d iters=%d secs=%.3f\n", size, nthreads, iters,
               MPI_Wtime() - t0);
    MPI_Finalize();
    return 0;
}
