/*
 * rma: one-sided communication (MPI_Win_create, Put, Get, Accumulate,
 * Fetch_and_op) under both synchronisation modes, every result verified.
 *
 *   active target:  MPI_Win_fence epochs
 *   passive target: MPI_Win_lock / MPI_Win_unlock (exclusive and shared)
 *
 * Over a send-only BTL such as dicom, Open MPI 5 runs osc/rdma through its
 * AM-RDMA emulation (btl_base_am_rdma), so every Put/Get/Accumulate becomes
 * active messages; Open MPI 4.1 needs osc/pt2pt for that (--mca osc pt2pt).
 * Sizes cross the eager limit (--count ints per block, default 256 Ki = 1 MiB).
 *
 * Options: --count N (ints per block, default 262144), --iters N (default 2)
 */
#include "common.h"

static int rank, size;

static int expect(int owner, int block, int iter, size_t i)
{
    return (int) (mix64(seed4((uint64_t) owner, (uint64_t) block, (uint64_t) iter, i)) & 0x7fffffff);
}

static void fill(int *buf, size_t n, int owner, int block, int iter)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = expect(owner, block, iter, i);
}

static void verify(const int *buf, size_t n, int owner, int block, int iter, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != expect(owner, block, iter, i))
            fail("%s: element %zu is %d, expected %d (from rank %d, iter %d)", what, i, buf[i],
                 expect(owner, block, iter, i), owner, iter);
}

int main(int argc, char **argv)
{
    static const char *const with_value[] = {"--count", "--iters", NULL};
    const char *v;
    size_t count = 262144;
    int iters = 2;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    opt_check_known(argc, argv, with_value, NULL);
    if ((v = opt_value(argc, argv, "--count")))
        count = (size_t) parse_size(v);
    if ((v = opt_value(argc, argv, "--iters")))
        iters = atoi(v);
    require_ranks(2);

    const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    /* Window layout (ints): [0,count) put target, [count,2count) get source,
     * [2count, 2count+count) accumulate target, then one fetch-and-op counter. */
    const size_t win_ints = 3 * count + 1;
    int *base = xmalloc(win_ints * sizeof(int));
    int *local = xmalloc(count * sizeof(int));
    memset(base, 0, win_ints * sizeof(int));
    MPI_Win win;
    CHECK_MPI(MPI_Win_create(base, (MPI_Aint) (win_ints * sizeof(int)), sizeof(int), MPI_INFO_NULL,
                             MPI_COMM_WORLD, &win));
    const size_t sizes[] = {1, 17, 4097, count};
    long long moved = 0;

    for (int iter = 0; iter < iters; iter++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const size_t n = sizes[s] < count ? sizes[s] : count;
            const int blk = (int) s;

            /* --- active target: fence --- */
            fill(local, n, rank, blk, iter);
            fill(base + count, n, rank, blk + 100, iter); /* get source, local store before the epoch */
            CHECK_MPI(MPI_Win_fence(0, win));
            CHECK_MPI(MPI_Put(local, (int) n, MPI_INT, next, 0, (int) n, MPI_INT, win));
            CHECK_MPI(MPI_Win_fence(0, win));
            verify(base, n, prev, blk, iter, "Put (fence)");

            int *got = xmalloc(n * sizeof(int));
            CHECK_MPI(MPI_Get(got, (int) n, MPI_INT, next, (MPI_Aint) count, (int) n, MPI_INT, win));
            CHECK_MPI(MPI_Win_fence(0, win));
            verify(got, n, next, blk + 100, iter, "Get (fence)");

            /* every rank adds (rank+1)*pattern into rank 0's accumulate block */
            for (size_t i = 0; i < n; i++)
                local[i] = (rank + 1) * (int) (i % 1000);
            if (rank == 0)
                memset(base + 2 * count, 0, n * sizeof(int));
            CHECK_MPI(MPI_Win_fence(0, win));
            CHECK_MPI(MPI_Accumulate(local, (int) n, MPI_INT, 0, (MPI_Aint) (2 * count), (int) n, MPI_INT,
                                     MPI_SUM, win));
            CHECK_MPI(MPI_Win_fence(0, win));
            if (rank == 0) {
                const int tri = size * (size + 1) / 2;
                for (size_t i = 0; i < n; i++)
                    if (base[2 * count + i] != tri * (int) (i % 1000))
                        fail("Accumulate (fence): element %zu is %d, expected %d", i, base[2 * count + i],
                             tri * (int) (i % 1000));
            }

            /* --- passive target: lock/unlock --- */
            fill(local, n, rank, blk + 200, iter);
            CHECK_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, next, 0, win));
            CHECK_MPI(MPI_Put(local, (int) n, MPI_INT, next, 0, (int) n, MPI_INT, win));
            CHECK_MPI(MPI_Win_unlock(next, win));
            CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
            CHECK_MPI(MPI_Win_lock(MPI_LOCK_SHARED, rank, 0, win));
            verify(base, n, prev, blk + 200, iter, "Put (lock)");
            CHECK_MPI(MPI_Win_unlock(rank, win));

            CHECK_MPI(MPI_Win_lock(MPI_LOCK_SHARED, next, 0, win));
            CHECK_MPI(MPI_Get(got, (int) n, MPI_INT, next, 0, (int) n, MPI_INT, win));
            CHECK_MPI(MPI_Win_unlock(next, win));
            /* next's put block holds what rank (next-1) = this rank put there */
            verify(got, n, rank, blk + 200, iter, "Get (lock)");
            free(got);

            CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
            if (rank == 0) {
                CHECK_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win));
                memset(base + 2 * count, 0, n * sizeof(int));
                CHECK_MPI(MPI_Win_unlock(0, win));
            }
            CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
            for (size_t i = 0; i < n; i++)
                local[i] = (rank + 1) * (int) (i % 977);
            CHECK_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
            CHECK_MPI(MPI_Accumulate(local, (int) n, MPI_INT, 0, (MPI_Aint) (2 * count), (int) n, MPI_INT,
                                     MPI_SUM, win));
            CHECK_MPI(MPI_Win_unlock(0, win));
            CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
            if (rank == 0) {
                const int tri = size * (size + 1) / 2;
                CHECK_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
                for (size_t i = 0; i < n; i++)
                    if (base[2 * count + i] != tri * (int) (i % 977))
                        fail("Accumulate (lock): element %zu is %d, expected %d", i, base[2 * count + i],
                             tri * (int) (i % 977));
                CHECK_MPI(MPI_Win_unlock(0, win));
            }
            moved += (long long) n * 5 * (long long) sizeof(int);
        }

        /* Fetch_and_op: every rank takes 50 tickets from rank 0's counter; all distinct. */
        const int tickets = 50;
        int *mine = xmalloc(tickets * sizeof(int));
        const int one = 1;
        CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
        if (rank == 0) {
            CHECK_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win));
            base[3 * count] = 0;
            CHECK_MPI(MPI_Win_unlock(0, win));
        }
        CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
        for (int k = 0; k < tickets; k++) {
            CHECK_MPI(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
            CHECK_MPI(MPI_Fetch_and_op(&one, &mine[k], MPI_INT, 0, (MPI_Aint) (3 * count), MPI_SUM, win));
            CHECK_MPI(MPI_Win_unlock(0, win));
        }
        int *all = xmalloc((size_t) tickets * (size_t) size * sizeof(int));
        CHECK_MPI(MPI_Gather(mine, tickets, MPI_INT, all, tickets, MPI_INT, 0, MPI_COMM_WORLD));
        if (rank == 0) {
            const int total = tickets * size;
            char *seen = xmalloc((size_t) total);
            memset(seen, 0, (size_t) total);
            for (int k = 0; k < total; k++) {
                if (all[k] < 0 || all[k] >= total || seen[all[k]])
                    fail("Fetch_and_op: ticket %d duplicated or out of range", all[k]);
                seen[all[k]] = 1;
            }
            free(seen);
        }
        free(all);
        free(mine);
    }

    CHECK_MPI(MPI_Win_free(&win));
    free(local);
    free(base);
    if (rank == 0)
        printf("RESULT ok ranks=%d count=%zu iters=%d bytes_per_rank=%lld\n", size, count, iters, moved);
    MPI_Finalize();
    return 0;
}
