/*
 * outstanding.c - >= 10,000 nonblocking requests in flight per rank.
 *
 * Why: a BTL has finite send descriptors, fragment pools, receive rings and
 * credits.  When thousands of requests are posted before any completes it
 * must queue/throttle rather than drop, deadlock, or reuse a fragment that
 * is still in use.  Two orderings are tested because they stress different
 * queues:
 *   A. all Irecvs posted, barrier, then all Isends  (expected-receive path:
 *      every rank has all its receives outstanding before any data moves)
 *   B. all Isends posted, barrier, then all Irecvs  (unexpected-message
 *      path: thousands of messages buffered before a receive exists)
 * No request is tested or waited on until all are posted; then one Waitall.
 * Each message carries (src, index) and a per-message pattern; statuses are
 * checked for source, tag and count.
 *
 * Options:
 *   --requests N  total Isend+Irecv posted per rank per phase (default 10000)
 *   --size B      maximum message size in bytes (default 64; sizes vary 8..B)
 */
#include "common.h"

static int rank, n;
static long m; /* messages per (sender, receiver) pair */
static size_t maxsz;

static size_t msz(int phase, int s, int d, long k)
{
    return 8 + (size_t)(mix64(seed4((uint64_t)phase, (uint64_t)s, (uint64_t)d, (uint64_t)k)) % (maxsz - 7));
}
static uint64_t mseed(int phase, int s, int d, long k) { return seed4((uint64_t)phase + 100, (uint64_t)s, (uint64_t)d, (uint64_t)k); }
static int mtag(long k) { return (int)(k & 0x7fff); } /* MPI guarantees tags up to 32767 */

/* Peer index p (0..n-2) -> rank, skipping ourselves. */
static int peer_rank(int p) { return p < rank ? p : p + 1; }

static void post_sends(int phase, unsigned char *sbuf, MPI_Request *rq)
{
    /* Interleave peers so every connection has many messages queued at once. */
    for (long k = 0; k < m; k++)
        for (int p = 0; p < n - 1; p++) {
            int d = peer_rank(p);
            unsigned char *b = sbuf + ((size_t)p * (size_t)m + (size_t)k) * maxsz;
            size_t len = msz(phase, rank, d, k);
            int32_t h[2] = {rank, (int32_t)k};
            memcpy(b, h, 8);
            pattern_fill(b + 8, len - 8, mseed(phase, rank, d, k));
            CHECK_MPI(MPI_Isend(b, (int)len, MPI_BYTE, d, mtag(k), MPI_COMM_WORLD, &rq[p * m + k]));
        }
}

static void post_recvs(unsigned char *rbuf, MPI_Request *rq)
{
    for (long k = 0; k < m; k++)
        for (int p = 0; p < n - 1; p++) {
            unsigned char *b = rbuf + ((size_t)p * (size_t)m + (size_t)k) * maxsz;
            memset(b, 0xEE, maxsz);
            CHECK_MPI(MPI_Irecv(b, (int)maxsz, MPI_BYTE, peer_rank(p), mtag(k), MPI_COMM_WORLD, &rq[p * m + k]));
        }
}

static void verify(int phase, unsigned char *rbuf, MPI_Status *st)
{
    for (int p = 0; p < n - 1; p++)
        for (long k = 0; k < m; k++) {
            int s = peer_rank(p), cnt;
            unsigned char *b = rbuf + ((size_t)p * (size_t)m + (size_t)k) * maxsz;
            MPI_Status *x = &st[p * m + k];
            size_t len = msz(phase, s, rank, k);
            MPI_Get_count(x, MPI_BYTE, &cnt);
            int32_t h[2];
            memcpy(h, b, 8);
            if (x->MPI_SOURCE != s || x->MPI_TAG != mtag(k) || (size_t)cnt != len)
                fail("phase %c: recv from %d #%ld: status src=%d tag=%d count=%d, want %d/%d/%zu", 'A' + phase,
                     s, k, x->MPI_SOURCE, x->MPI_TAG, cnt, s, mtag(k), len);
            if (h[0] != s || h[1] != (int32_t)k)
                fail("phase %c: recv from %d #%ld carries header src=%d idx=%d (misrouted or reordered)",
                     'A' + phase, s, k, h[0], h[1]);
            size_t bad = pattern_check(b + 8, len - 8, mseed(phase, s, rank, k));
            if (bad != (size_t)-1)
                fail("phase %c: recv from %d #%ld payload mismatch at byte %zu", 'A' + phase, s, k, bad + 8);
            for (size_t i = len; i < maxsz; i++)
                if (b[i] != 0xEE)
                    fail("phase %c: recv from %d #%ld wrote past its length (byte %zu)", 'A' + phase, s, k, i);
        }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--requests", "--size", NULL};
    opt_check_known(argc, argv, vopts, NULL);
    require_ranks(2);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    long total = 10000;
    maxsz = 64;
    const char *v;
    if ((v = opt_value(argc, argv, "--requests")))
        total = atol(v);
    if ((v = opt_value(argc, argv, "--size")))
        maxsz = (size_t)parse_size(v);
    if (total < 2 || maxsz < 8)
        fail("--requests must be >= 2 and --size >= 8");
    /* Round up so each rank has at least `total` requests outstanding. */
    long half = (total + 1) / 2;
    m = (half + (n - 2)) / (n - 1);
    long nreq = 2 * m * (n - 1); /* per rank, per phase */

    unsigned char *sbuf = xmalloc((size_t)m * (size_t)(n - 1) * maxsz);
    unsigned char *rbuf = xmalloc((size_t)m * (size_t)(n - 1) * maxsz);
    MPI_Request *rq = xmalloc(sizeof(MPI_Request) * (size_t)nreq);
    MPI_Status *st = xmalloc(sizeof(MPI_Status) * (size_t)nreq);
    MPI_Request *sreq = rq, *rreq = rq + m * (n - 1); /* statuses: sends first, then recvs */

    double t0 = MPI_Wtime();
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 0) { /* A: receives first */
            post_recvs(rbuf, rreq);
            MPI_Barrier(MPI_COMM_WORLD);
            post_sends(phase, sbuf, sreq);
        } else { /* B: sends first -> unexpected messages */
            post_sends(phase, sbuf, sreq);
            MPI_Barrier(MPI_COMM_WORLD);
            post_recvs(rbuf, rreq);
        }
        CHECK_MPI(MPI_Waitall((int)nreq, rq, st));
        verify(phase, rbuf, st + m * (n - 1));
        MPI_Barrier(MPI_COMM_WORLD);
    }
    double secs = MPI_Wtime() - t0;

    if (rank == 0)
        printf("RESULT ok ranks=%d outstanding_per_rank=%ld msgs_per_pair=%ld max_size=%zu secs=%.3f\n", n, nreq,
               m, maxsz, secs);
    free(sbuf);
    free(rbuf);
    free(rq);
    free(st);
    MPI_Finalize();
    return 0;
}
