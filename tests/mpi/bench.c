/*
 * bench.c - NetPIPE-style latency / bandwidth sweep between ranks 0 and 1.
 *
 * Why: gives comparable numbers for the dicom BTL vs tcp/vader at every
 * power-of-two size, so protocol thresholds (eager limit, rendezvous,
 * pipelining) show up as steps in the curves.
 *   latency   = half round-trip time of a blocking ping-pong, median of
 *               --reps repetitions; iterations per repetition are
 *               calibrated (doubling runs) so the latency part of each
 *               size costs about half of --time-budget-ms
 *   bandwidth = rank 0 posts a window of --window Isends back to back, rank
 *               1 has the same number of Irecvs posted (separate buffers);
 *               repeated, then one zero-byte ack from rank 1 ends the clock.
 *               MB/s = 1e6 bytes/s of payload.  Reported as 0 for size 0.
 * The last received data of each size is checked against a pattern, so a
 * fast-but-wrong transport cannot produce a clean run.
 * Ranks >= 2 idle in a sleeping MPI_Ibarrier loop so they do not steal CPU.
 *
 * Output: one line per size {"size":N,"lat_us":X,"bw_MBps":Y}, then RESULT ok.
 * Options:
 *   --max-size B          largest size (default 16M)
 *   --time-budget-ms N    target time per size (default 300)
 *   --reps N              latency repetitions for the median (default 5)
 *   --window N            Isends in flight in the bandwidth test (default 16)
 */
#include "common.h"
#include <time.h>

#define T_DATA 1
#define T_CTL 2
#define T_ACK 3

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long clampl(double v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : (long)v; }

static int rank, peer, sz, K;
static unsigned char *sbuf, *lbuf, **wbuf;
static MPI_Request *rq;

/* `iters` blocking round trips; returns elapsed seconds. */
static double pingpong(long iters)
{
    double t = MPI_Wtime();
    for (long i = 0; i < iters; i++) {
        if (rank == 0) {
            MPI_Send(sbuf, sz, MPI_BYTE, peer, T_DATA, MPI_COMM_WORLD);
            MPI_Recv(lbuf, sz, MPI_BYTE, peer, T_DATA, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(lbuf, sz, MPI_BYTE, peer, T_DATA, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(sbuf, sz, MPI_BYTE, peer, T_DATA, MPI_COMM_WORLD);
        }
    }
    return MPI_Wtime() - t;
}

/* `windows` windows of K messages 0->1, then one zero-byte ack 1->0. */
static double stream(long windows)
{
    double t = MPI_Wtime();
    for (long w = 0; w < windows; w++) {
        for (int k = 0; k < K; k++) {
            if (rank == 0) /* MPI-3 allows concurrent sends from one buffer */
                MPI_Isend(sbuf, sz, MPI_BYTE, peer, T_DATA, MPI_COMM_WORLD, &rq[k]);
            else
                MPI_Irecv(wbuf[k], sz, MPI_BYTE, peer, T_DATA, MPI_COMM_WORLD, &rq[k]);
        }
        MPI_Waitall(K, rq, MPI_STATUSES_IGNORE);
    }
    if (rank == 0)
        MPI_Recv(NULL, 0, MPI_BYTE, peer, T_ACK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    else
        MPI_Send(NULL, 0, MPI_BYTE, peer, T_ACK, MPI_COMM_WORLD);
    return MPI_Wtime() - t;
}

/* Pick a repeat count so one run of `fn` lasts about `target` seconds.
 * Doubles the count until a run takes >= target/8 (a single cold run would
 * badly overestimate the cost of tiny messages), then extrapolates.  Rank 0
 * decides and tells rank 1 after every round so both loop identically. */
static long calibrate(double (*fn)(long), double target)
{
    for (long c = 1;;) {
        double el = fn(c);
        long next = 0; /* > 0: run again with this count, < 0: final = -next */
        if (rank == 0) {
            if (el >= target / 8 || c >= 1000000)
                next = -clampl(target / (el / (double)c), 1, 100000000);
            else
                next = 2 * c;
            MPI_Send(&next, 1, MPI_LONG, peer, T_CTL, MPI_COMM_WORLD);
        } else {
            MPI_Recv(&next, 1, MPI_LONG, peer, T_CTL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
        if (next < 0)
            return -next;
        c = next;
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--max-size", "--time-budget-ms", "--reps", "--window", NULL};
    opt_check_known(argc, argv, vopts, NULL);
    require_ranks(2);
    int n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    uint64_t max_size = 16u << 20;
    double budget = 0.300;
    int reps = 5;
    K = 16;
    const char *v;
    if ((v = opt_value(argc, argv, "--max-size")))
        max_size = parse_size(v);
    if ((v = opt_value(argc, argv, "--time-budget-ms")))
        budget = atof(v) / 1000.0;
    if ((v = opt_value(argc, argv, "--reps")))
        reps = atoi(v);
    if ((v = opt_value(argc, argv, "--window")))
        K = atoi(v);
    if (reps < 1 || reps > 101 || K < 1 || budget <= 0 || max_size > (1u << 30))
        fail("bad options: need 1<=reps<=101, window>=1, budget>0, max-size<=1G");

    double t_start = MPI_Wtime();
    if (rank >= 2) { /* idle politely: don't compete for the CPUs */
        MPI_Request rq;
        int done = 0;
        MPI_Ibarrier(MPI_COMM_WORLD, &rq);
        while (!done) {
            struct timespec d = {0, 5 * 1000 * 1000};
            nanosleep(&d, NULL);
            MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        }
        MPI_Finalize();
        return 0;
    }

    peer = 1 - rank;
    int nsizes = 0;
    sbuf = xmalloc(max_size);
    lbuf = xmalloc(max_size);
    /* Rank 1 needs one receive buffer per in-flight Irecv (MPI forbids
     * overlapping concurrent receives); rank 0 may send one buffer K times. */
    wbuf = xmalloc(sizeof(unsigned char *) * (size_t)K);
    for (int k = 0; k < K; k++)
        wbuf[k] = rank == 1 ? xmalloc(max_size) : NULL;
    rq = xmalloc(sizeof(MPI_Request) * (size_t)K);
    double *lat = xmalloc(sizeof(double) * (size_t)reps);

    for (uint64_t size = 0; size <= max_size; size = size ? size * 2 : 1) {
        sz = (int)size;
        nsizes++;
        pattern_fill(sbuf, size, seed4(3, size, (uint64_t)rank, 0));

        /* --- latency: median over reps, each ~budget/2/reps long --- */
        long iters = calibrate(pingpong, budget / 2 / reps);
        if (sz)
            memset(lbuf, 0xEE, size); /* stale data must not pass the check */
        for (int r = 0; r < reps; r++)
            lat[r] = pingpong(iters) / (double)iters / 2;
        size_t bad = pattern_check(lbuf, size, seed4(3, size, (uint64_t)peer, 0));
        if (bad != (size_t)-1)
            fail("latency size=%d: data from rank %d wrong at byte %zu", sz, peer, bad);
        qsort(lat, (size_t)reps, sizeof(double), cmp_dbl);

        /* --- bandwidth: K messages in flight, ack at the end --- */
        long windows = calibrate(stream, budget / 2);
        /* Rank 1 poisons its buffers, then says "ready" so the memset is
         * not inside rank 0's clock. */
        if (rank == 1) {
            for (int k = 0; k < K && sz; k++)
                memset(wbuf[k], 0xEE, size);
            MPI_Send(NULL, 0, MPI_BYTE, peer, T_CTL, MPI_COMM_WORLD);
        } else {
            MPI_Recv(NULL, 0, MPI_BYTE, peer, T_CTL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
        double el = stream(windows);
        double bw = size ? (double)size * K * (double)windows / el / 1e6 : 0.0;
        if (rank == 1)
            for (int k = 0; k < K; k++) {
                bad = pattern_check(wbuf[k], size, seed4(3, size, 0, 0));
                if (bad != (size_t)-1)
                    fail("bandwidth size=%d: window buffer %d wrong at byte %zu", sz, k, bad);
            }
        if (rank == 0) {
            printf("{\"size\":%llu,\"lat_us\":%.3f,\"bw_MBps\":%.1f}\n", (unsigned long long)size,
                   lat[reps / 2] * 1e6, bw);
            fflush(stdout);
        }
    }
    /* Rank 1 may have failed a check after rank 0 printed: sync before "ok". */
    MPI_Request brq;
    MPI_Ibarrier(MPI_COMM_WORLD, &brq);
    MPI_Wait(&brq, MPI_STATUS_IGNORE);
    if (rank == 0)
        printf("RESULT ok sizes=%d max_size=%llu budget_ms=%.0f window=%d secs=%.2f\n", nsizes,
               (unsigned long long)max_size, budget * 1000, K, MPI_Wtime() - t_start);
    for (int k = 0; k < K; k++)
        free(wbuf[k]);
    free(wbuf);
    free(rq);
    free(lat);
    free(sbuf);
    free(lbuf);
    MPI_Finalize();
    return 0;
}
