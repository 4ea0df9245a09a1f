/*
 * abort.c - MPI_Abort must tear down the whole job, including ranks that are
 * blocked inside the BTL waiting for data that will never arrive.
 *
 * Why: a BTL that spins in its progress loop without noticing that the
 * runtime is killing the job (or that a peer vanished) turns an abort into a
 * hang.  After a barrier, rank 1 prints "RESULT abort-sent" and calls
 * MPI_Abort(MPI_COMM_WORLD, 7) while every other rank sits in a blocking
 * MPI_Recv.  Success is judged by the caller: mpirun must exit non-zero
 * (normally 7) within a few seconds, and no rank may print "RESULT ok".
 *
 * Options: --delay-ms N  how long rank 1 waits after the barrier so the
 *                        others are surely blocked in MPI_Recv (default 200)
 */
#include "common.h"
#include <time.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--delay-ms", NULL};
    opt_check_known(argc, argv, vopts, NULL);
    require_ranks(2);
    int rank, buf = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    long delay_ms = 200;
    const char *v;
    if ((v = opt_value(argc, argv, "--delay-ms")))
        delay_ms = atol(v);

    MPI_Barrier(MPI_COMM_WORLD); /* everyone is up and connected */
    if (rank == 1) {
        struct timespec d = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
        printf("RESULT abort-sent rank=1 code=7\n");
        fflush(stdout); /* must reach mpirun before we are killed */
        MPI_Abort(MPI_COMM_WORLD, 7);
    } else {
        /* Nobody ever sends this: the only way out is the abort. */
        MPI_Recv(&buf, 1, MPI_INT, MPI_ANY_SOURCE, 123, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    /* Reaching here means the abort did not stop us. */
    printf("RESULT fail rank=%d returned from blocking receive without abort\n", rank);
    fflush(stdout);
    MPI_Finalize();
    return FAIL_EXIT_CODE;
}
