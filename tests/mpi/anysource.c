/*
 * anysource.c - wildcard receives (MPI_ANY_SOURCE / MPI_ANY_TAG) and probes.
 *
 * Why: wildcard matching is where a transport that reorders fragments or
 * delivers a rendezvous message before an earlier eager one breaks MPI's
 * non-overtaking rule (MPI-3.1 s3.5): two messages from the same sender that
 * both match a receive must be matched in the order they were sent.  The
 * program checks, for every received message, the status fields
 * (MPI_SOURCE, MPI_TAG, count) against a self-describing header, the payload
 * pattern, and that no earlier, still-unreceived message from that sender
 * would also have matched (i.e. nothing overtook).
 *
 * Every rank sends --msgs messages to every rank (itself included, so the
 * self BTL is in the mix), mostly small with every 10th up to 128 KiB so
 * eager and rendezvous protocols interleave.  Three phases:
 *   1. receive everything with (ANY_SOURCE, ANY_TAG)
 *   2. ANY_SOURCE with a specific tag, tags taken in reverse order
 *      (forces matching out of the unexpected queue, per tag)
 *   3. specific source (highest first) with ANY_TAG
 * Each receive rotates over: Recv, Probe+Recv, Iprobe-loop+Recv,
 * Irecv+Wait, Mprobe+Mrecv (probe statuses are checked against the recv).
 *
 * Options: --msgs N  messages per (sender, receiver) pair and phase (default 300)
 */
#include "common.h"

#define HDR 16
#define MAXLEN (HDR + 128 * 1024 + 7)

static int rank, n, M;

struct hdr { int32_t src, seq, tag, len; };

static uint64_t mseed(int phase, int s, int d, int k) { return seed4((uint64_t)phase, (uint64_t)s, (uint64_t)d, (uint64_t)k); }

static int msg_len(int phase, int s, int d, int k)
{
    uint64_t h = mix64(mseed(phase, s, d, k) ^ 0x1e1);
    if (k % 10 == 9) /* large: rendezvous path */
        return HDR + (int)(h % (128 * 1024 + 8));
    return HDR + (int)(h % 200);
}

static int msg_tag(int phase, int s, int d, int k)
{
    switch (phase) {
    case 1: return (k * 7 + s) % 5;
    case 2: return 10 + k % 3;
    default: return 20 + (int)(mix64(mseed(phase, s, d, k)) % 4);
    }
}

/* Receive one message matching (src, tag) using method m; returns count. */
static int recv_one(int m, int src, int tag, unsigned char *buf, MPI_Status *st)
{
    MPI_Status pst;
    int pcount = -1, flag = 0;
    MPI_Request rq;
    MPI_Message msg;
    switch (m) {
    case 0:
        CHECK_MPI(MPI_Recv(buf, MAXLEN, MPI_BYTE, src, tag, MPI_COMM_WORLD, st));
        break;
    case 1:
    case 2:
        if (m == 1)
            CHECK_MPI(MPI_Probe(src, tag, MPI_COMM_WORLD, &pst));
        else
            while (!flag)
                CHECK_MPI(MPI_Iprobe(src, tag, MPI_COMM_WORLD, &flag, &pst));
        MPI_Get_count(&pst, MPI_BYTE, &pcount);
        /* Receiving with the probed source/tag must give the probed message
         * (single-threaded), so the exact count is enough buffer. */
        CHECK_MPI(MPI_Recv(buf, pcount, MPI_BYTE, pst.MPI_SOURCE, pst.MPI_TAG, MPI_COMM_WORLD, st));
        break;
    case 3:
        CHECK_MPI(MPI_Irecv(buf, MAXLEN, MPI_BYTE, src, tag, MPI_COMM_WORLD, &rq));
        CHECK_MPI(MPI_Wait(&rq, st));
        break;
    default:
        CHECK_MPI(MPI_Mprobe(src, tag, MPI_COMM_WORLD, &msg, &pst));
        MPI_Get_count(&pst, MPI_BYTE, &pcount);
        CHECK_MPI(MPI_Mrecv(buf, pcount, MPI_BYTE, &msg, st));
        break;
    }
    int count;
    MPI_Get_count(st, MPI_BYTE, &count);
    if (m != 0 && m != 3 &&
        (pst.MPI_SOURCE != st->MPI_SOURCE || pst.MPI_TAG != st->MPI_TAG || pcount != count))
        fail("method %d: probe said src=%d tag=%d count=%d, recv got src=%d tag=%d count=%d", m,
             pst.MPI_SOURCE, pst.MPI_TAG, pcount, st->MPI_SOURCE, st->MPI_TAG, count);
    return count;
}

/* got[s*M + k]: message k from sender s already received in this phase.
 * first[s]: lowest k from s not yet received (speeds up the overtaking scan). */
static unsigned char *got;
static int *first;

static void check_msg(int phase, int sel_src, int sel_tag, const unsigned char *buf, int count,
                      const MPI_Status *st)
{
    struct hdr h;
    if (count < HDR)
        fail("phase %d: short message count=%d from src=%d", phase, count, st->MPI_SOURCE);
    memcpy(&h, buf, HDR);
    int s = st->MPI_SOURCE;
    if (s < 0 || s >= n || h.src != s)
        fail("phase %d: status source %d but header says %d", phase, s, h.src);
    if (sel_src != MPI_ANY_SOURCE && s != sel_src)
        fail("phase %d: asked for source %d, got %d", phase, sel_src, s);
    if (h.seq < 0 || h.seq >= M)
        fail("phase %d: bad seq %d from %d", phase, h.seq, s);
    int want_tag = msg_tag(phase, s, rank, h.seq), want_len = msg_len(phase, s, rank, h.seq);
    if (st->MPI_TAG != want_tag || h.tag != want_tag || (sel_tag != MPI_ANY_TAG && sel_tag != want_tag))
        fail("phase %d: src=%d seq=%d status tag %d header tag %d want %d (asked %d)", phase, s, h.seq,
             st->MPI_TAG, h.tag, want_tag, sel_tag);
    if (count != want_len || h.len != want_len)
        fail("phase %d: src=%d seq=%d count=%d header len=%d want %d", phase, s, h.seq, count, h.len,
             want_len);
    if (got[s * M + h.seq])
        fail("phase %d: src=%d seq=%d received twice", phase, s, h.seq);
    /* Non-overtaking: no earlier unreceived message from s may match too. */
    for (int k = first[s]; k < h.seq; k++)
        if (!got[s * M + k] && (sel_tag == MPI_ANY_TAG || msg_tag(phase, s, rank, k) == sel_tag))
            fail("phase %d: src=%d seq=%d overtook seq=%d (tag sel %d)", phase, s, h.seq, k, sel_tag);
    got[s * M + h.seq] = 1;
    while (first[s] < M && got[s * M + first[s]])
        first[s]++;
    size_t bad = pattern_check(buf + HDR, (size_t)(count - HDR), mseed(phase, s, rank, h.seq));
    if (bad != (size_t)-1)
        fail("phase %d: src=%d seq=%d payload mismatch at byte %zu", phase, s, h.seq, bad + HDR);
}

static long nrecv_total;

static void run_phase(int phase, unsigned char *rbuf)
{
    unsigned char **sbufs = xmalloc(sizeof(unsigned char *) * (size_t)n * (size_t)M);
    MPI_Request *rq = xmalloc(sizeof(MPI_Request) * (size_t)n * (size_t)M);
    memset(got, 0, (size_t)n * (size_t)M);
    memset(first, 0, sizeof(int) * (size_t)n);
    /* Post all sends up front (to everyone, self included), in seq order. */
    for (int k = 0; k < M; k++)
        for (int d = 0; d < n; d++) {
            struct hdr h = {rank, k, msg_tag(phase, rank, d, k), msg_len(phase, rank, d, k)};
            unsigned char *b = sbufs[d * M + k] = xmalloc((size_t)h.len);
            memcpy(b, &h, HDR);
            pattern_fill(b + HDR, (size_t)(h.len - HDR), mseed(phase, rank, d, k));
            CHECK_MPI(MPI_Isend(b, h.len, MPI_BYTE, d, h.tag, MPI_COMM_WORLD, &rq[d * M + k]));
        }
    int method = phase; /* rotate methods, different start per phase */
    MPI_Status st;
    if (phase == 1) {
        for (long i = 0; i < (long)n * M; i++) {
            int c = recv_one(method++ % 5, MPI_ANY_SOURCE, MPI_ANY_TAG, rbuf, &st);
            check_msg(phase, MPI_ANY_SOURCE, MPI_ANY_TAG, rbuf, c, &st);
            nrecv_total++;
        }
    } else if (phase == 2) {
        for (int t = 12; t >= 10; t--) {
            long cnt = 0;
            for (int s = 0; s < n; s++)
                for (int k = 0; k < M; k++)
                    cnt += msg_tag(phase, s, rank, k) == t;
            for (long i = 0; i < cnt; i++) {
                int c = recv_one(method++ % 5, MPI_ANY_SOURCE, t, rbuf, &st);
                check_msg(phase, MPI_ANY_SOURCE, t, rbuf, c, &st);
                nrecv_total++;
            }
        }
    } else {
        for (int s = n - 1; s >= 0; s--)
            for (int k = 0; k < M; k++) {
                int c = recv_one(method++ % 5, s, MPI_ANY_TAG, rbuf, &st);
                check_msg(phase, s, MPI_ANY_TAG, rbuf, c, &st);
                nrecv_total++;
            }
    }
    for (int s = 0; s < n; s++)
        if (first[s] != M)
            fail("phase %d: message %d from %d never received", phase, first[s], s);
    CHECK_MPI(MPI_Waitall(n * M, rq, MPI_STATUSES_IGNORE));
    /* Nothing may be left over (e.g. a duplicated message). */
    int flag;
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_MPI(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
    if (flag)
        fail("phase %d: unexpected extra message from %d tag %d", phase, st.MPI_SOURCE, st.MPI_TAG);
    MPI_Barrier(MPI_COMM_WORLD); /* keep phases apart */
    for (long i = 0; i < (long)n * M; i++)
        free(sbufs[i]);
    free(sbufs);
    free(rq);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--msgs", NULL};
    opt_check_known(argc, argv, vopts, NULL);
    require_ranks(2);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    M = 300;
    const char *v;
    if ((v = opt_value(argc, argv, "--msgs")))
        M = atoi(v);
    if (M < 1)
        fail("--msgs must be >= 1");

    unsigned char *rbuf = xmalloc(MAXLEN);
    got = xmalloc((size_t)n * (size_t)M);
    first = xmalloc(sizeof(int) * (size_t)n);

    double t0 = MPI_Wtime();
    for (int phase = 1; phase <= 3; phase++)
        run_phase(phase, rbuf);
    double secs = MPI_Wtime() - t0;

    long total;
    MPI_Reduce(&nrecv_total, &total, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("RESULT ok ranks=%d msgs_per_pair=%d received=%ld secs=%.3f\n", n, M, total, secs);
    free(rbuf);
    free(got);
    free(first);
    MPI_Finalize();
    return 0;
}
