/*
 * datatypes.c - non-contiguous derived datatypes over the wire, verified.
 *
 * Why: for non-contiguous data the PML/BTL pack and unpack through the
 * convertor, possibly fragment by fragment and resuming mid-element; a BTL
 * that gets fragment offsets or in-place send/receive (iovec) handling wrong
 * will scramble or misplace elements, or write into the gaps between them.
 * Each case sends with one type and receives with another of the same type
 * signature (and also reverses roles, and uses the same type on both
 * sides).  For every case the expected memory position of each element is
 * computed independently here (not via MPI_Pack), every element is checked,
 * and every byte that is NOT part of the receive type must keep its poison.
 *
 * Cases: vector, hvector, indexed (blocks in reverse memory order),
 * indexed_block, subarray (C order vs Fortran order), resized, nested
 * vector-of-resized, struct of ints, >1 MiB vector and subarray, and a C
 * struct with padding gaps (padded <-> packed layouts).
 *
 * Ranks form a ring: each sends to rank+1 and receives from rank-1.
 * Options: --scale N  multiply the large cases' sizes (default 1)
 */
#include "common.h"
#include <stddef.h>

static int rank, n, prev, next;
static long nchecked;

/* ---------- int-based layouts: type + where each element lands ---------- */
typedef struct {
    MPI_Datatype type;
    int count;
    long nelem, cap, nints; /* nints: buffer length (max position + slack) */
    long *pos;              /* pos[j]: int index of j-th element (type-map order) */
} layout;

static layout mk(MPI_Datatype t, int count)
{
    layout L = {t, count, 0, 0, 0, NULL};
    if (t != MPI_INT)
        CHECK_MPI(MPI_Type_commit(&L.type));
    return L;
}

static void push(layout *L, long p)
{
    if (L->nelem == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 256;
        L->pos = realloc(L->pos, sizeof(long) * (size_t)L->cap);
        if (!L->pos)
            fail("realloc");
    }
    L->pos[L->nelem++] = p;
    if (p + 1 > L->nints)
        L->nints = p + 1;
}

/* Sanity-check our model of the type against MPI's idea of its size. */
static void finish(layout *L, const char *what)
{
    int sz;
    MPI_Type_size(L->type, &sz);
    if ((long)sz * L->count != L->nelem * (long)sizeof(int))
        fail("%s: model has %ld ints, MPI type size says %ld bytes", what, L->nelem, (long)sz * L->count);
    L->nints += 5; /* slack after the last element: must stay untouched */
}

static int ival(int src, long j, int cs) { return (int)(mix64(seed4(7, (uint64_t)src, (uint64_t)j, (uint64_t)cs)) & 0x7fffffff); }

/* Send with S from my buffer to next, receive with R from prev; verify. */
static void xfer_ints(const char *what, int cs, const layout *S, const layout *R, int nonblocking)
{
    if (S->nelem != R->nelem)
        fail("%s: internal error, signatures differ", what);
    int *sb = xmalloc(sizeof(int) * (size_t)S->nints), *rb = xmalloc(sizeof(int) * (size_t)R->nints);
    for (long i = 0; i < S->nints; i++)
        sb[i] = -2; /* junk in the gaps: must not be sent */
    for (long i = 0; i < R->nints; i++)
        rb[i] = -1;
    for (long j = 0; j < S->nelem; j++)
        sb[S->pos[j]] = ival(rank, j, cs);
    MPI_Status st;
    if (nonblocking) {
        MPI_Request rq[2];
        MPI_Status sts[2];
        CHECK_MPI(MPI_Irecv(rb, R->count, R->type, prev, cs, MPI_COMM_WORLD, &rq[0]));
        CHECK_MPI(MPI_Isend(sb, S->count, S->type, next, cs, MPI_COMM_WORLD, &rq[1]));
        CHECK_MPI(MPI_Waitall(2, rq, sts));
        st = sts[0];
    } else {
        CHECK_MPI(MPI_Sendrecv(sb, S->count, S->type, next, cs, rb, R->count, R->type, prev, cs, MPI_COMM_WORLD,
                               &st));
    }
    int cnt, el;
    MPI_Get_count(&st, R->type, &cnt);
    MPI_Get_elements(&st, R->type, &el);
    if (cnt != R->count || el != R->nelem)
        fail("%s: count=%d elements=%d, want %d/%ld", what, cnt, el, R->count, R->nelem);
    char *mark = calloc((size_t)R->nints, 1);
    if (!mark)
        fail("calloc");
    for (long j = 0; j < R->nelem; j++) {
        long p = R->pos[j];
        mark[p] = 1;
        if (rb[p] != ival(prev, j, cs))
            fail("%s: element %ld at int %ld = %d, want %d", what, j, p, rb[p], ival(prev, j, cs));
    }
    for (long i = 0; i < R->nints; i++)
        if (!mark[i] && rb[i] != -1)
            fail("%s: gap int %ld overwritten with %d", what, i, rb[i]);
    nchecked += R->nelem;
    free(mark);
    free(sb);
    free(rb);
}

static long scale = 1;

/* Build case `c`: fills S (send) and R (receive) layouts; returns name. */
static const char *build(int c, layout *S, layout *R)
{
    MPI_Datatype t, t2;
    switch (c) {
    case 0: { /* vector -> contiguous */
        MPI_Type_vector(50, 3, 7, MPI_INT, &t);
        *S = mk(t, 2);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 50; i++)
                for (int b = 0; b < 3; b++)
                    push(S, k * (49 * 7 + 3) + i * 7 + b); /* vector extent = (count-1)*stride+blocklen */
        *R = mk(MPI_INT, 300);
        for (int j = 0; j < 300; j++)
            push(R, j);
        return "vector->contiguous";
    }
    case 1: { /* vector -> hvector with a different stride */
        MPI_Type_vector(50, 3, 7, MPI_INT, &t);
        *S = mk(t, 2);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 50; i++)
                for (int b = 0; b < 3; b++)
                    push(S, k * (49 * 7 + 3) + i * 7 + b);
        MPI_Type_create_hvector(100, 3, 5 * sizeof(int), MPI_INT, &t2);
        *R = mk(t2, 1);
        for (int i = 0; i < 100; i++)
            for (int b = 0; b < 3; b++)
                push(R, i * 5 + b);
        return "vector->hvector";
    }
    case 2: { /* indexed, blocks in reverse memory order -> indexed_block */
        int bl[40], dp[40], ub = 0;
        for (int k = 0; k < 40; k++) {
            bl[k] = 1 + k % 4;
            dp[k] = (39 - k) * 6;
            if (dp[k] + bl[k] > ub)
                ub = dp[k] + bl[k];
        }
        MPI_Type_indexed(40, bl, dp, MPI_INT, &t);
        *S = mk(t, 3);
        for (int r = 0; r < 3; r++)
            for (int k = 0; k < 40; k++)
                for (int b = 0; b < bl[k]; b++)
                    push(S, (long)r * ub + dp[k] + b);
        int d2[75], ub2 = 0;
        for (int j = 0; j < 75; j++) {
            d2[j] = 3 * j + j % 2;
            if (d2[j] + 2 > ub2)
                ub2 = d2[j] + 2;
        }
        MPI_Type_create_indexed_block(75, 2, d2, MPI_INT, &t2);
        *R = mk(t2, 2);
        for (int r = 0; r < 2; r++)
            for (int j = 0; j < 75; j++)
                for (int b = 0; b < 2; b++)
                    push(R, (long)r * ub2 + d2[j] + b);
        return "indexed->indexed_block";
    }
    case 3: { /* 3-D subarray, C order -> Fortran-order subarray of another array */
        int sz[3] = {6, 7, 8}, sub[3] = {3, 4, 5}, st[3] = {1, 2, 3};
        MPI_Type_create_subarray(3, sz, sub, st, MPI_ORDER_C, MPI_INT, &t);
        *S = mk(t, 2);
        for (int k = 0; k < 2; k++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 4; b++)
                    for (int e = 0; e < 5; e++) /* last dim fastest */
                        push(S, k * 336 + ((1 + a) * 7 + (2 + b)) * 8 + (3 + e));
        int fz[3] = {7, 4, 5}, fsub[3] = {5, 4, 3}, fst[3] = {1, 0, 2};
        MPI_Type_create_subarray(3, fz, fsub, fst, MPI_ORDER_FORTRAN, MPI_INT, &t2);
        *R = mk(t2, 2);
        for (int k = 0; k < 2; k++)
            for (int i2 = 0; i2 < 3; i2++)
                for (int i1 = 0; i1 < 4; i1++)
                    for (int i0 = 0; i0 < 5; i0++) /* first dim fastest */
                        push(R, k * 140 + (1 + i0) + 7 * ((0 + i1) + 4 * (2 + i2)));
        return "subarray(C)->subarray(Fortran)";
    }
    case 4: { /* resized: pairs every 5 ints -> single ints every 3 */
        MPI_Type_contiguous(2, MPI_INT, &t2);
        MPI_Type_create_resized(t2, 0, 5 * sizeof(int), &t);
        MPI_Type_free(&t2);
        *S = mk(t, 60);
        for (int i = 0; i < 60; i++)
            for (int b = 0; b < 2; b++)
                push(S, i * 5 + b);
        MPI_Type_create_resized(MPI_INT, 0, 3 * sizeof(int), &t2);
        *R = mk(t2, 120);
        for (int j = 0; j < 120; j++)
            push(R, j * 3);
        return "resized->resized";
    }
    case 5: { /* nested: vector of a resized int -> struct of two int blocks */
        MPI_Datatype r2;
        MPI_Type_create_resized(MPI_INT, 0, 2 * sizeof(int), &r2);
        MPI_Type_vector(40, 2, 3, r2, &t);
        MPI_Type_free(&r2);
        *S = mk(t, 1);
        for (int i = 0; i < 40; i++)
            for (int b = 0; b < 2; b++)
                push(S, (i * 3 + b) * 2);
        int bl[2] = {30, 1};
        MPI_Aint dp[2] = {0, 50 * sizeof(int)};
        MPI_Datatype c50, ty[2] = {MPI_INT, MPI_DATATYPE_NULL};
        MPI_Type_contiguous(50, MPI_INT, &c50);
        ty[1] = c50;
        MPI_Type_create_struct(2, bl, dp, ty, &t2);
        MPI_Type_free(&c50);
        *R = mk(t2, 1);
        for (int j = 0; j < 30; j++)
            push(R, j);
        for (int j = 0; j < 50; j++)
            push(R, 50 + j);
        return "vector(resized)->struct(int blocks)";
    }
    case 6: { /* large vector (>1 MiB payload) -> contiguous */
        long cnt = 150000 * scale;
        MPI_Type_vector((int)cnt, 2, 3, MPI_INT, &t);
        *S = mk(t, 1);
        for (long i = 0; i < cnt; i++)
            for (int b = 0; b < 2; b++)
                push(S, i * 3 + b);
        *R = mk(MPI_INT, (int)(2 * cnt));
        for (long j = 0; j < 2 * cnt; j++)
            push(R, j);
        return "large vector->contiguous";
    }
    default: { /* large 2-D subarray -> vector in a differently shaped array */
        int rows = (int)(512 * scale);
        int sz[2] = {rows + 288, 700}, sub[2] = {rows, 600}, st[2] = {100, 50};
        MPI_Type_create_subarray(2, sz, sub, st, MPI_ORDER_C, MPI_INT, &t);
        *S = mk(t, 1);
        for (long a = 0; a < rows; a++)
            for (long b = 0; b < 600; b++)
                push(S, (100 + a) * 700 + 50 + b);
        MPI_Type_vector(rows, 600, 650, MPI_INT, &t2);
        *R = mk(t2, 1);
        for (long a = 0; a < rows; a++)
            for (long b = 0; b < 600; b++)
                push(R, a * 650 + b);
        return "large subarray->vector";
    }
    }
}
#define NCASES 8

/* ---------- C struct with padding vs. the same fields packed ---------- */
struct rec {
    char c;   /* followed by 7 bytes of padding */
    double d;
    int i[3];
    short s;  /* followed by 2 bytes of padding */
};
/* Field offsets for the padded (real C struct) and packed (23-byte) layouts. */
static const MPI_Aint off_padded[4] = {offsetof(struct rec, c), offsetof(struct rec, d), offsetof(struct rec, i),
                                       offsetof(struct rec, s)};
static const MPI_Aint off_packed[4] = {0, 1, 9, 21};
static const MPI_Aint ext_padded = sizeof(struct rec), ext_packed = 23;

static MPI_Datatype rec_type(const MPI_Aint *off, MPI_Aint ext)
{
    int bl[4] = {1, 1, 3, 1};
    MPI_Datatype ty[4] = {MPI_CHAR, MPI_DOUBLE, MPI_INT, MPI_SHORT}, t, r;
    MPI_Type_create_struct(4, bl, off, ty, &t);
    MPI_Type_create_resized(t, 0, ext, &r); /* extent = exactly one record */
    MPI_Type_free(&t);
    MPI_Type_commit(&r);
    return r;
}

/* Write (or check) record k's fields at buf + k*ext using offsets `off`. */
static int rec_io(unsigned char *buf, long k, const MPI_Aint *off, MPI_Aint ext, int src, int cs, int write)
{
    uint64_t h = mix64(seed4(8, (uint64_t)src, (uint64_t)k, (uint64_t)cs));
    char c = (char)(h & 0x7f);
    double d = (double)(h % 1000003) + 0.25;
    int iv[3] = {(int)(h >> 8), (int)(h >> 16) ^ 5, (int)(h >> 24) ^ 9};
    short s = (short)(h >> 40);
    unsigned char *p = buf + k * ext;
    if (write) {
        memcpy(p + off[0], &c, 1);
        memcpy(p + off[1], &d, 8);
        memcpy(p + off[2], iv, 12);
        memcpy(p + off[3], &s, 2);
        return 1;
    }
    return memcmp(p + off[0], &c, 1) == 0 && memcmp(p + off[1], &d, 8) == 0 && memcmp(p + off[2], iv, 12) == 0 &&
           memcmp(p + off[3], &s, 2) == 0;
}

static void xfer_struct(const char *what, int cs, long N, int s_packed, int r_packed)
{
    const MPI_Aint *so = s_packed ? off_packed : off_padded, *ro = r_packed ? off_packed : off_padded;
    MPI_Aint se = s_packed ? ext_packed : ext_padded, re = r_packed ? ext_packed : ext_padded;
    MPI_Datatype st_ = rec_type(so, se), rt = rec_type(ro, re);
    unsigned char *sb = xmalloc((size_t)(N * se)), *rb = xmalloc((size_t)(N * re) + 16);
    memset(sb, 0x5C, (size_t)(N * se)); /* padding junk must not travel */
    memset(rb, 0xEE, (size_t)(N * re) + 16);
    for (long k = 0; k < N; k++)
        rec_io(sb, k, so, se, rank, cs, 1);
    MPI_Status st;
    CHECK_MPI(MPI_Sendrecv(sb, (int)N, st_, next, cs, rb, (int)N, rt, prev, cs, MPI_COMM_WORLD, &st));
    int cnt, el;
    MPI_Get_count(&st, rt, &cnt);
    MPI_Get_elements(&st, rt, &el);
    if (cnt != N || el != N * 6)
        fail("%s: count=%d elements=%d want %ld/%ld", what, cnt, el, N, N * 6);
    for (long k = 0; k < N; k++)
        if (!rec_io(rb, k, ro, re, prev, cs, 0))
            fail("%s: record %ld fields wrong", what, k);
    /* Padding bytes (and the 16 bytes after the array) must be untouched. */
    static const int fsz[4] = {1, 8, 12, 2};
    for (long b = 0; b < N * re + 16; b++) {
        long k = b / re, o = b % re;
        int in_field = 0;
        for (int f = 0; f < 4 && k < N; f++)
            if (o >= ro[f] && o < ro[f] + fsz[f])
                in_field = 1;
        if (!in_field && rb[b] != 0xEE)
            fail("%s: padding byte %ld (record %ld offset %ld) overwritten", what, b, k, o);
    }
    nchecked += N * 6;
    MPI_Type_free(&st_);
    MPI_Type_free(&rt);
    free(sb);
    free(rb);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--scale", NULL};
    opt_check_known(argc, argv, vopts, NULL);
    require_ranks(2);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    next = (rank + 1) % n;
    prev = (rank + n - 1) % n;
    const char *v;
    if ((v = opt_value(argc, argv, "--scale")))
        scale = atol(v);
    if (scale < 1)
        fail("--scale must be >= 1");

    double t0 = MPI_Wtime();
    int ncases = 0, cs = 0;
    for (int c = 0; c < NCASES; c++) {
        layout S, R;
        const char *name = build(c, &S, &R);
        char what[128];
        finish(&S, name);
        finish(&R, name);
        /* send-type -> recv-type, the reverse, and the same type on both ends */
        snprintf(what, sizeof what, "%s", name);
        xfer_ints(what, cs++, &S, &R, 0);
        snprintf(what, sizeof what, "%s (reversed)", name);
        xfer_ints(what, cs++, &R, &S, 1);
        snprintf(what, sizeof what, "%s (send type both ends)", name);
        xfer_ints(what, cs++, &S, &S, 0);
        snprintf(what, sizeof what, "%s (recv type both ends)", name);
        xfer_ints(what, cs++, &R, &R, 1);
        ncases += 4;
        if (S.type != MPI_INT)
            MPI_Type_free(&S.type);
        if (R.type != MPI_INT)
            MPI_Type_free(&R.type);
        free(S.pos);
        free(R.pos);
    }
    long nrec[2] = {500, 40000 * scale}; /* 40000 * 32 B = 1.25 MiB */
    for (int big = 0; big < 2; big++) {
        xfer_struct("struct padded->padded", cs++, nrec[big], 0, 0);
        xfer_struct("struct padded->packed", cs++, nrec[big], 0, 1);
        xfer_struct("struct packed->padded", cs++, nrec[big], 1, 0);
        ncases += 3;
    }
    double secs = MPI_Wtime() - t0;
    long total;
    MPI_Reduce(&nchecked, &total, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("RESULT ok ranks=%d cases=%d elements_checked=%ld secs=%.3f\n", n, ncases, total, secs);
    MPI_Finalize();
    return 0;
}
