/*
 * collectives.c - every MPI-3.1 collective on MPI_COMM_WORLD, verified.
 *
 * Why: Open MPI's coll components (tuned, basic, libnbc) are built purely on
 * point-to-point traffic, so each algorithm is a different message pattern
 * over the BTL (trees, rings, pairwise exchange, recursive doubling,
 * segmented pipelines for large counts).  Running each collective with a
 * small count and a >= 1 MiB-per-block count, blocking and nonblocking, with
 * rotating roots, exercises all of those patterns; every output element is
 * checked against a value computed independently from (rank, index, pass).
 *
 * Covered: Barrier Bcast Gather Gatherv Scatter Scatterv Allgather
 * Allgatherv Alltoall Alltoallv Alltoallw Reduce Allreduce (also IN_PLACE
 * and MAX) Reduce_scatter Reduce_scatter_block Scan Exscan Reduce_local,
 * the I-variant of each, several nonblocking collectives in flight at once,
 * and Neighbor_{allgather,allgatherv,alltoall,alltoallv,alltoallw} plus
 * their I-variants on a 2-D cartesian communicator.
 *
 * Options:
 *   --small N   ints per block in the small pass (default 3)
 *   --large N   ints per block in the large pass (default 262144 = 1 MiB)
 *   --iters N   repeat the whole set N times (default 1)
 */
#include "common.h"
#include <time.h>

#define POISON (-1) /* never produced by val(): values are 0..32767 */

static int g_rank, g_n, g_nb, g_salt;
static long g_c;
static const char *g_what = "";

/* Value of element i contributed by "a" (a rank, or a rank/peer combo). */
static int val(long a, long i)
{
    return (int)(mix64(((uint64_t)(unsigned)g_salt << 48) ^ ((uint64_t)a << 32) ^ (uint64_t)i) & 0x7fff);
}

static void expect(long i, int got, int want)
{
    if (got != want)
        fail("%s%s count=%ld idx=%ld got=%d want=%d", g_nb ? "I" : "", g_what, g_c, i, got, want);
}

static int *ialloc(long n)
{
    int *p = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    for (long i = 0; i < n; i++)
        p[i] = POISON;
    return p;
}

/* Blocking call, or its nonblocking twin followed by MPI_Wait. */
#define COLL(B, I, ...)                                                        \
    do {                                                                       \
        if (g_nb) {                                                            \
            MPI_Request rq_;                                                   \
            CHECK_MPI(I(__VA_ARGS__, &rq_));                                   \
            CHECK_MPI(MPI_Wait(&rq_, MPI_STATUS_IGNORE));                      \
        } else {                                                               \
            CHECK_MPI(B(__VA_ARGS__));                                         \
        }                                                                      \
    } while (0)

static const MPI_Comm W = MPI_COMM_WORLD;

/* Variable counts and gapped displacements shared by the *v tests: block j
 * has c + j%3 ints and is preceded by a gap of j ints that must stay POISON. */
static int vcount(int j) { return (int)g_c + j % 3; }
static void vlayout(int *cnt, int *dsp, long *total)
{
    long off = 0;
    for (int j = 0; j < g_n; j++) {
        off += j; /* gap */
        cnt[j] = vcount(j);
        dsp[j] = (int)off;
        off += cnt[j];
    }
    *total = off;
}
static void check_vlayout(const int *buf, const int *cnt, const int *dsp, long total, long (*src)(int j))
{
    long k = 0;
    for (int j = 0; j < g_n; j++) {
        for (; k < dsp[j]; k++)
            expect(k, buf[k], POISON);
        for (long i = 0; i < cnt[j]; i++, k++)
            expect(k, buf[k], val(src(j), i));
    }
    for (; k < total; k++)
        expect(k, buf[k], POISON);
}
static long ident(int j) { return j; }
static long pair_to_me(int j) { return (long)j * 1024 + g_rank; } /* block j->me */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Barrier: one "late" rank sleeps before entering; nobody may leave before
 * it entered.  Checked with the host's monotonic clock, so only between
 * ranks on the same host (multi-host runs just check that it completes). */
static void t_barrier(void)
{
    g_what = "barrier";
    int late = g_salt % g_n;
    MPI_Barrier(W);
    double t_enter = 0;
    if (g_rank == late) {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        t_enter = mono_now();
    }
    if (g_nb) {
        MPI_Request rq;
        CHECK_MPI(MPI_Ibarrier(W, &rq));
        CHECK_MPI(MPI_Wait(&rq, MPI_STATUS_IGNORE));
    } else {
        CHECK_MPI(MPI_Barrier(W));
    }
    double t_exit = mono_now();
    char host[MPI_MAX_PROCESSOR_NAME] = {0}, lhost[MPI_MAX_PROCESSOR_NAME] = {0};
    int len;
    MPI_Get_processor_name(host, &len);
    memcpy(lhost, host, sizeof host);
    MPI_Bcast(lhost, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, late, W);
    MPI_Bcast(&t_enter, 1, MPI_DOUBLE, late, W);
    if (strcmp(host, lhost) == 0 && t_exit < t_enter)
        fail("%sbarrier: rank left %.6fs before rank %d entered", g_nb ? "I" : "", t_enter - t_exit, late);
}

static void t_bcast(void)
{
    g_what = "bcast";
    int root = g_salt % g_n, *b = ialloc(g_c);
    if (g_rank == root)
        for (long i = 0; i < g_c; i++)
            b[i] = val(root, i);
    COLL(MPI_Bcast, MPI_Ibcast, b, (int)g_c, MPI_INT, root, W);
    for (long i = 0; i < g_c; i++)
        expect(i, b[i], val(root, i));
    free(b);
}

static void t_gather(int all)
{
    g_what = all ? "allgather" : "gather";
    int root = (g_salt + 1) % g_n, *s = ialloc(g_c), *r = ialloc(g_c * g_n);
    for (long i = 0; i < g_c; i++)
        s[i] = val(g_rank, i);
    if (all)
        COLL(MPI_Allgather, MPI_Iallgather, s, (int)g_c, MPI_INT, r, (int)g_c, MPI_INT, W);
    else
        COLL(MPI_Gather, MPI_Igather, s, (int)g_c, MPI_INT, r, (int)g_c, MPI_INT, root, W);
    if (all || g_rank == root)
        for (int j = 0; j < g_n; j++)
            for (long i = 0; i < g_c; i++)
                expect(j * g_c + i, r[j * g_c + i], val(j, i));
    free(s);
    free(r);
}

static void t_gatherv(int all)
{
    g_what = all ? "allgatherv" : "gatherv";
    int root = (g_salt + 2) % g_n;
    int *cnt = ialloc(g_n), *dsp = ialloc(g_n);
    long total;
    vlayout(cnt, dsp, &total);
    int *s = ialloc(cnt[g_rank]), *r = ialloc(total);
    for (long i = 0; i < cnt[g_rank]; i++)
        s[i] = val(g_rank, i);
    if (all)
        COLL(MPI_Allgatherv, MPI_Iallgatherv, s, cnt[g_rank], MPI_INT, r, cnt, dsp, MPI_INT, W);
    else
        COLL(MPI_Gatherv, MPI_Igatherv, s, cnt[g_rank], MPI_INT, r, cnt, dsp, MPI_INT, root, W);
    if (all || g_rank == root)
        check_vlayout(r, cnt, dsp, total, ident);
    free(s);
    free(r);
    free(cnt);
    free(dsp);
}

static void t_scatter(void)
{
    g_what = "scatter";
    int root = (g_salt + 3) % g_n, *s = ialloc(g_c * g_n), *r = ialloc(g_c);
    if (g_rank == root)
        for (int j = 0; j < g_n; j++)
            for (long i = 0; i < g_c; i++)
                s[j * g_c + i] = val(j, i);
    COLL(MPI_Scatter, MPI_Iscatter, s, (int)g_c, MPI_INT, r, (int)g_c, MPI_INT, root, W);
    for (long i = 0; i < g_c; i++)
        expect(i, r[i], val(g_rank, i));
    free(s);
    free(r);
}

static void t_scatterv(void)
{
    g_what = "scatterv";
    int root = (g_salt + 4) % g_n;
    int *cnt = ialloc(g_n), *dsp = ialloc(g_n);
    long total;
    vlayout(cnt, dsp, &total);
    int *s = ialloc(total), *r = ialloc(cnt[g_rank] + 1); /* +1: must stay POISON */
    if (g_rank == root)
        for (int j = 0; j < g_n; j++)
            for (long i = 0; i < cnt[j]; i++)
                s[dsp[j] + i] = val(j, i);
    COLL(MPI_Scatterv, MPI_Iscatterv, s, cnt, dsp, MPI_INT, r, cnt[g_rank], MPI_INT, root, W);
    for (long i = 0; i < cnt[g_rank]; i++)
        expect(i, r[i], val(g_rank, i));
    expect(cnt[g_rank], r[cnt[g_rank]], POISON);
    free(s);
    free(r);
    free(cnt);
    free(dsp);
}

static void t_alltoall(void)
{
    g_what = "alltoall";
    int *s = ialloc(g_c * g_n), *r = ialloc(g_c * g_n);
    for (int j = 0; j < g_n; j++)
        for (long i = 0; i < g_c; i++)
            s[j * g_c + i] = val((long)g_rank * 1024 + j, i);
    COLL(MPI_Alltoall, MPI_Ialltoall, s, (int)g_c, MPI_INT, r, (int)g_c, MPI_INT, W);
    for (int j = 0; j < g_n; j++)
        for (long i = 0; i < g_c; i++)
            expect(j * g_c + i, r[j * g_c + i], val((long)j * 1024 + g_rank, i));
    free(s);
    free(r);
}

/* Alltoallv / Alltoallw: count between i and j is c + (i+j)%3 (symmetric,
 * so both sides agree), blocks separated by gaps. */
static void t_alltoallv(int w)
{
    g_what = w ? "alltoallw" : "alltoallv";
    int *cnt = ialloc(g_n), *dsp = ialloc(g_n), *bdsp = ialloc(g_n);
    MPI_Datatype *types = xmalloc(sizeof(MPI_Datatype) * (size_t)g_n);
    long off = 0;
    for (int j = 0; j < g_n; j++) {
        off += 1 + j % 2;
        cnt[j] = (int)g_c + (g_rank + j) % 3;
        dsp[j] = (int)off;
        bdsp[j] = (int)(off * (long)sizeof(int));
        types[j] = MPI_INT;
        off += cnt[j];
    }
    int *s = ialloc(off), *r = ialloc(off);
    for (int j = 0; j < g_n; j++)
        for (long i = 0; i < cnt[j]; i++)
            s[dsp[j] + i] = val((long)g_rank * 1024 + j, i);
    if (w)
        COLL(MPI_Alltoallw, MPI_Ialltoallw, s, cnt, bdsp, types, r, cnt, bdsp, types, W);
    else
        COLL(MPI_Alltoallv, MPI_Ialltoallv, s, cnt, dsp, MPI_INT, r, cnt, dsp, MPI_INT, W);
    check_vlayout(r, cnt, dsp, off, pair_to_me);
    free(s);
    free(r);
    free(cnt);
    free(dsp);
    free(bdsp);
    free(types);
}

/* Sum (or max) over ranks lo..hi-1 of val(q, i). */
static int red(long i, int lo, int hi, int is_max)
{
    int acc = 0;
    for (int q = lo; q < hi; q++) {
        int v = val(q, i);
        acc = is_max ? (v > acc ? v : acc) : acc + v;
    }
    return acc;
}

static void t_reduce(int all, int in_place, int is_max)
{
    g_what = all ? (in_place ? "allreduce(IN_PLACE)" : is_max ? "allreduce(MAX)" : "allreduce")
                 : "reduce";
    int root = (g_salt + 5) % g_n, *s = ialloc(g_c), *r = ialloc(g_c);
    MPI_Op op = is_max ? MPI_MAX : MPI_SUM;
    for (long i = 0; i < g_c; i++)
        (in_place ? r : s)[i] = val(g_rank, i);
    if (all)
        COLL(MPI_Allreduce, MPI_Iallreduce, in_place ? MPI_IN_PLACE : s, r, (int)g_c, MPI_INT, op, W);
    else
        COLL(MPI_Reduce, MPI_Ireduce, s, r, (int)g_c, MPI_INT, op, root, W);
    if (all || g_rank == root)
        for (long i = 0; i < g_c; i++)
            expect(i, r[i], red(i, 0, g_n, is_max));
    free(s);
    free(r);
}

static void t_reduce_scatter(int block)
{
    g_what = block ? "reduce_scatter_block" : "reduce_scatter";
    int *cnt = ialloc(g_n);
    long total = 0, my_off = 0;
    for (int j = 0; j < g_n; j++) {
        cnt[j] = block ? (int)g_c : vcount(j);
        if (j < g_rank)
            my_off += cnt[j];
        total += cnt[j];
    }
    int *s = ialloc(total), *r = ialloc(cnt[g_rank] + 1);
    for (long k = 0; k < total; k++)
        s[k] = val(g_rank, k);
    if (block)
        COLL(MPI_Reduce_scatter_block, MPI_Ireduce_scatter_block, s, r, (int)g_c, MPI_INT, MPI_SUM, W);
    else
        COLL(MPI_Reduce_scatter, MPI_Ireduce_scatter, s, r, cnt, MPI_INT, MPI_SUM, W);
    for (long i = 0; i < cnt[g_rank]; i++)
        expect(i, r[i], red(my_off + i, 0, g_n, 0));
    expect(cnt[g_rank], r[cnt[g_rank]], POISON);
    free(s);
    free(r);
    free(cnt);
}

static void t_scan(int ex)
{
    g_what = ex ? "exscan" : "scan";
    int *s = ialloc(g_c), *r = ialloc(g_c);
    for (long i = 0; i < g_c; i++)
        s[i] = val(g_rank, i);
    if (ex)
        COLL(MPI_Exscan, MPI_Iexscan, s, r, (int)g_c, MPI_INT, MPI_SUM, W);
    else
        COLL(MPI_Scan, MPI_Iscan, s, r, (int)g_c, MPI_INT, MPI_SUM, W);
    if (!ex || g_rank > 0) /* Exscan leaves rank 0's buffer undefined */
        for (long i = 0; i < g_c; i++)
            expect(i, r[i], red(i, 0, ex ? g_rank : g_rank + 1, 0));
    free(s);
    free(r);
}

/* Purely local, but it is part of the collective chapter. */
static void t_reduce_local(void)
{
    g_what = "reduce_local";
    int *a = ialloc(g_c), *b = ialloc(g_c);
    for (long i = 0; i < g_c; i++) {
        a[i] = val(0, i);
        b[i] = val(1, i);
    }
    CHECK_MPI(MPI_Reduce_local(a, b, (int)g_c, MPI_INT, MPI_SUM));
    for (long i = 0; i < g_c; i++)
        expect(i, b[i], val(0, i) + val(1, i));
    free(a);
    free(b);
}

/* Several nonblocking collectives in flight at once: libnbc must keep their
 * messages apart (distinct internal tags) even when they interleave. */
static void t_overlap(void)
{
    g_what = "overlap(ibcast+iallreduce+ialltoall+ibarrier)";
    int root = (g_salt + 6) % g_n;
    int *b = ialloc(g_c), *s = ialloc(g_c), *r = ialloc(g_c);
    int *as = ialloc(g_c * g_n), *ar = ialloc(g_c * g_n);
    for (long i = 0; i < g_c; i++) {
        if (g_rank == root)
            b[i] = val(root + 100, i);
        s[i] = val(g_rank, i);
    }
    for (int j = 0; j < g_n; j++)
        for (long i = 0; i < g_c; i++)
            as[j * g_c + i] = val((long)g_rank * 1024 + j, i);
    MPI_Request rq[4];
    CHECK_MPI(MPI_Ibcast(b, (int)g_c, MPI_INT, root, W, &rq[0]));
    CHECK_MPI(MPI_Iallreduce(s, r, (int)g_c, MPI_INT, MPI_SUM, W, &rq[1]));
    CHECK_MPI(MPI_Ialltoall(as, (int)g_c, MPI_INT, ar, (int)g_c, MPI_INT, W, &rq[2]));
    CHECK_MPI(MPI_Ibarrier(W, &rq[3]));
    CHECK_MPI(MPI_Waitall(4, rq, MPI_STATUSES_IGNORE));
    for (long i = 0; i < g_c; i++) {
        expect(i, b[i], val(root + 100, i));
        expect(i, r[i], red(i, 0, g_n, 0));
    }
    for (int j = 0; j < g_n; j++)
        for (long i = 0; i < g_c; i++)
            expect(j * g_c + i, ar[j * g_c + i], val((long)j * 1024 + g_rank, i));
    free(b);
    free(s);
    free(r);
    free(as);
    free(ar);
}

/* Neighborhood collectives on a 2-D cartesian grid.  Dimensions of size >= 3
 * are periodic (wrap-around); smaller ones are not, so no rank is ever its
 * own neighbour twice (which would make block matching ambiguous) and edge
 * ranks get MPI_PROC_NULL neighbours whose blocks must stay untouched. */
static MPI_Comm g_cart;
static int g_nbr[4]; /* order defined by MPI: dim0 -1, dim0 +1, dim1 -1, dim1 +1 */

static void make_cart(void)
{
    int dims[2] = {0, 0}, periods[2];
    MPI_Dims_create(g_n, 2, dims);
    for (int d = 0; d < 2; d++)
        periods[d] = dims[d] >= 3;
    CHECK_MPI(MPI_Cart_create(W, 2, dims, periods, 0, &g_cart));
    for (int d = 0; d < 2; d++)
        MPI_Cart_shift(g_cart, d, 1, &g_nbr[2 * d], &g_nbr[2 * d + 1]);
}

/* Block j that neighbour g_nbr[j] sent to me is its block j^1 (the opposite
 * direction along the same dimension). */
static long nbr_block_val_src(int j) { return (long)g_nbr[j] * 16 + (j ^ 1); }

static void t_neighbor(int kind)
{
    static const char *names[] = {"neighbor_allgather", "neighbor_allgatherv", "neighbor_alltoall",
                                  "neighbor_alltoallv", "neighbor_alltoallw"};
    g_what = names[kind];
    int cnt[4], dsp[4];
    MPI_Aint bdsp[4]; /* neighbor_alltoallw takes MPI_Aint byte displacements */
    MPI_Datatype types[4] = {MPI_INT, MPI_INT, MPI_INT, MPI_INT};
    long off = 0;
    for (int j = 0; j < 4; j++) {
        off += 1 + j; /* gap before each block */
        if (kind == 1) /* allgatherv: neighbour j sends c + (its rank)%3 */
            cnt[j] = g_nbr[j] == MPI_PROC_NULL ? (int)g_c : (int)g_c + g_nbr[j] % 3;
        else if (kind >= 3) /* v/w: count depends on the dimension only */
            cnt[j] = (int)g_c + j / 2;
        else
            cnt[j] = (int)g_c;
        dsp[j] = (int)off;
        bdsp[j] = off * (MPI_Aint)sizeof(int);
        off += cnt[j];
    }
    int scount = kind == 1 ? (int)g_c + g_rank % 3 : (int)g_c;
    int *s = ialloc(off), *r = ialloc(off);
    if (kind <= 1) {
        for (long i = 0; i < scount; i++)
            s[i] = val(g_rank, i);
    } else {
        for (int j = 0; j < 4; j++)
            for (long i = 0; i < cnt[j]; i++)
                s[(kind == 2 ? j * g_c : dsp[j]) + i] = val((long)g_rank * 16 + j, i);
    }
    switch (kind) {
    case 0:
        COLL(MPI_Neighbor_allgather, MPI_Ineighbor_allgather, s, (int)g_c, MPI_INT, r, (int)g_c, MPI_INT,
             g_cart);
        break;
    case 1:
        COLL(MPI_Neighbor_allgatherv, MPI_Ineighbor_allgatherv, s, scount, MPI_INT, r, cnt, dsp, MPI_INT,
             g_cart);
        break;
    case 2:
        COLL(MPI_Neighbor_alltoall, MPI_Ineighbor_alltoall, s, (int)g_c, MPI_INT, r, (int)g_c, MPI_INT,
             g_cart);
        break;
    case 3:
        COLL(MPI_Neighbor_alltoallv, MPI_Ineighbor_alltoallv, s, cnt, dsp, MPI_INT, r, cnt, dsp, MPI_INT,
             g_cart);
        break;
    default:
        COLL(MPI_Neighbor_alltoallw, MPI_Ineighbor_alltoallw, s, cnt, bdsp, types, r, cnt, bdsp, types,
             g_cart);
        break;
    }
    /* allgather/alltoall have contiguous blocks (no gaps) at j*c. */
    for (int j = 0; j < 4; j++) {
        long base = (kind == 0 || kind == 2) ? j * g_c : dsp[j];
        for (long i = 0; i < cnt[j]; i++) {
            int want = POISON;
            if (g_nbr[j] != MPI_PROC_NULL)
                want = kind <= 1 ? val(g_nbr[j], i) : val(nbr_block_val_src(j), i);
            expect(base + i, r[base + i], want);
        }
    }
    if (kind == 1 || kind >= 3) /* gaps untouched */
        for (int j = 0; j < 4; j++)
            for (long k = (j ? dsp[j - 1] + cnt[j - 1] : 0); k < dsp[j]; k++)
                expect(k, r[k], POISON);
    free(s);
    free(r);
}

static void run_all(void)
{
    t_barrier();
    t_bcast();
    t_gather(0);
    t_gatherv(0);
    t_scatter();
    t_scatterv();
    t_gather(1);
    t_gatherv(1);
    t_alltoall();
    t_alltoallv(0);
    t_alltoallv(1);
    t_reduce(0, 0, 0);
    t_reduce(1, 0, 0);
    t_reduce(1, 1, 0);
    t_reduce(1, 0, 1);
    t_reduce_scatter(0);
    t_reduce_scatter(1);
    t_scan(0);
    t_scan(1);
    if (!g_nb)
        t_reduce_local();
    else
        t_overlap();
    for (int k = 0; k < 5; k++)
        t_neighbor(k);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--small", "--large", "--iters", NULL};
    opt_check_known(argc, argv, vopts, NULL);
    require_ranks(2);
    MPI_Comm_rank(W, &g_rank);
    MPI_Comm_size(W, &g_n);
    long small = 3, large = 262144;
    int iters = 1;
    const char *v;
    if ((v = opt_value(argc, argv, "--small")))
        small = atol(v);
    if ((v = opt_value(argc, argv, "--large")))
        large = atol(v);
    if ((v = opt_value(argc, argv, "--iters")))
        iters = atoi(v);
    if (small < 1 || large < 1 || iters < 1)
        fail("counts and iters must be >= 1");
    make_cart();

    double t0 = MPI_Wtime();
    int passes = 0;
    for (int it = 0; it < iters; it++)
        for (int big = 0; big < 2; big++)
            for (g_nb = 0; g_nb < 2; g_nb++) {
                g_c = big ? large : small;
                g_salt = passes++; /* new values and new roots every pass */
                run_all();
            }
    MPI_Barrier(W);
    double secs = MPI_Wtime() - t0;
    if (g_rank == 0)
        printf("RESULT ok ranks=%d passes=%d small=%ld large=%ld secs=%.3f\n", g_n, passes, small, large, secs);
    MPI_Comm_free(&g_cart);
    MPI_Finalize();
    return 0;
}
