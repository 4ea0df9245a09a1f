/*
 * pingpong.c - verified ping-pong at every message size from 0 B to 16 MiB.
 *
 * Why: the BTL has separate code paths for tiny (inline/eager), medium
 * (send-in-place / copy-in-copy-out) and large (rendezvous, fragmented or
 * RDMA) messages.  Sweeping powers of two plus odd sizes (3, 1000, 65537,
 * 1 MiB+7 ...) crosses every threshold and every alignment edge, and the
 * per-(size, iteration, rank) pattern catches stale, shifted, truncated or
 * cross-wired data on every single receive, in both directions.
 *
 * Pairing: by default a round-robin tournament (n-1 or n rounds) so every
 * pair of ranks is exercised - each pair may take a different transport path
 * (e.g. connection setup order).  --neighbors only pairs r with r^1 (plus
 * n-1 with 0 when n is odd): one or two rounds, for quick runs.
 *
 * Options:
 *   --max-size BYTES     largest size (default 16M)
 *   --iters N            iterations for sizes <= 64 KiB (default 10);
 *                        larger sizes run fewer (>= 2) to bound runtime
 *   --neighbors          neighbour pairs only instead of all pairs
 *   --self-test-corrupt  rank 0 flips one byte of one outgoing message
 *                        after filling it; the run MUST then fail
 */
#include "common.h"

static const uint64_t odd_sizes[] = {3, 7, 1000, 4097, 65537, (1u << 20) + 7};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Partner of `rank` in round `k` of a circle-method round robin over m
 * (even) slots; slots >= n are byes.  Returns -1 for a bye. */
static int rr_partner(int rank, int k, int n)
{
    int m = n + (n & 1), mm = m - 1, p;
    if (rank == m - 1) {
        for (p = 0; p < mm; p++)
            if ((k - p + mm) % mm == p)
                break;
    } else {
        p = (k - rank + mm) % mm;
        if (p == rank)
            p = m - 1;
    }
    return p < n ? p : -1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--max-size", "--iters", NULL};
    static const char *const fopts[] = {"--neighbors", "--self-test-corrupt", NULL};
    opt_check_known(argc, argv, vopts, fopts);
    require_ranks(2);

    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);

    uint64_t max_size = 16u << 20;
    int iters = 10;
    const char *v;
    if ((v = opt_value(argc, argv, "--max-size")))
        max_size = parse_size(v);
    if ((v = opt_value(argc, argv, "--iters")))
        iters = atoi(v);
    if (iters < 1)
        fail("--iters must be >= 1");
    int all_pairs = !opt_flag(argc, argv, "--neighbors");
    int corrupt = opt_flag(argc, argv, "--self-test-corrupt");

    /* Size list: 0, powers of two, odd sizes, all <= max_size, sorted. */
    uint64_t sizes[64];
    int nsizes = 0;
    sizes[nsizes++] = 0;
    for (uint64_t s = 1; s <= max_size; s <<= 1)
        sizes[nsizes++] = s;
    for (size_t i = 0; i < sizeof odd_sizes / sizeof odd_sizes[0]; i++)
        if (odd_sizes[i] <= max_size)
            sizes[nsizes++] = odd_sizes[i];
    qsort(sizes, (size_t)nsizes, sizeof sizes[0], cmp_u64);
    /* Corrupt a mid-sized message (or the largest, if max is tiny). */
    uint64_t corrupt_size = max_size >= 1000 ? 1000 : sizes[nsizes - 1];
    if (corrupt && corrupt_size == 0)
        fail("--self-test-corrupt needs --max-size >= 1");

    unsigned char *sbuf = xmalloc(max_size), *rbuf = xmalloc(max_size);

    /* Build the list of rounds: partner per round for this rank. */
    int nrounds, partners[16];
    if (n > 16 && all_pairs)
        fail("all-pairs mode supports at most 16 ranks; use --neighbors");
    if (all_pairs) {
        nrounds = n + (n & 1) - 1;
        for (int k = 0; k < nrounds; k++)
            partners[k] = rr_partner(rank, k, n);
    } else {
        nrounds = (n & 1) ? 2 : 1;
        partners[0] = (rank ^ 1) < n ? (rank ^ 1) : -1;
        if (n & 1) /* odd: the leftover rank n-1 plays rank 0 */
            partners[1] = rank == n - 1 ? 0 : rank == 0 ? n - 1 : -1;
    }

    uint64_t msgs = 0, bytes = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();

    for (int k = 0; k < nrounds; k++) {
        int peer = partners[k];
        if (peer < 0)
            continue;
        int initiator = rank < peer; /* lower rank sends first */
        for (int si = 0; si < nsizes; si++) {
            size_t size = (size_t)sizes[si];
            int it_n = iters;
            if (size > 65536) { /* keep big sizes cheap: >= 2 iterations */
                it_n = (int)((uint64_t)iters * 65536 / size);
                if (it_n < 2)
                    it_n = 2;
            }
            for (int it = 0; it < it_n; it++) {
                int tag = si; /* tag per size: a stray message of another size can't match */
                for (int leg = 0; leg < 2; leg++) {
                    int sending = (leg == 0) == initiator;
                    if (sending) {
                        pattern_fill(sbuf, size, seed4(size, (uint64_t)it, (uint64_t)rank, (uint64_t)k));
                        if (corrupt && rank == 0 && size == corrupt_size && it == 0 && leg == 0)
                            sbuf[size / 2] ^= 0x01; /* simulate one flipped bit on the wire */
                        CHECK_MPI(MPI_Send(sbuf, (int)size, MPI_BYTE, peer, tag, MPI_COMM_WORLD));
                    } else {
                        MPI_Status st;
                        /* Poison depends on the iteration so a receive that
                         * writes nothing can't pass by leaving old data. */
                        if (size)
                            memset(rbuf, 0xA5 ^ (it & 0xff), size);
                        CHECK_MPI(MPI_Recv(rbuf, (int)size, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &st));
                        int cnt;
                        MPI_Get_count(&st, MPI_BYTE, &cnt);
                        if ((size_t)cnt != size || st.MPI_SOURCE != peer || st.MPI_TAG != tag)
                            fail("status mismatch size=%zu got count=%d src=%d tag=%d", size, cnt,
                                 st.MPI_SOURCE, st.MPI_TAG);
                        size_t bad = pattern_check(rbuf, size, seed4(size, (uint64_t)it, (uint64_t)peer, (uint64_t)k));
                        if (bad != (size_t)-1)
                            fail("data mismatch from rank %d size=%zu iter=%d offset=%zu", peer, size, it, bad);
                        msgs++;
                        bytes += size;
                    }
                }
            }
        }
    }

    double secs = MPI_Wtime() - t0;
    uint64_t tot[2] = {msgs, bytes}, sum[2];
    MPI_Reduce(tot, sum, 2, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    double maxsecs;
    MPI_Reduce(&secs, &maxsecs, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("RESULT ok ranks=%d rounds=%d sizes=%d max_size=%llu msgs=%llu bytes=%llu secs=%.3f\n", n,
               nrounds, nsizes, (unsigned long long)max_size, (unsigned long long)sum[0],
               (unsigned long long)sum[1], maxsecs);
    free(sbuf);
    free(rbuf);
    MPI_Finalize();
    return 0;
}
