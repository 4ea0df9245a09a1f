/*
 * stress.c - all-pairs, both-directions checksummed traffic with mixed sizes.
 *
 * Why: correctness under sustained load is a different problem from
 * correctness of one message: resource exhaustion, flow control, credit
 * return, ring wrap-around and races between many connections only show up
 * after many messages.  Every rank streams --bytes to every other rank at
 * the same time (so every pair carries traffic both ways), keeping a window
 * of sends and receives in flight per peer.  Message sizes are a
 * deterministic mix (60% < 512 B, 30% < 64 KiB, 10% up to --max-msg) that
 * both sides regenerate, so the receiver knows each message's exact length.
 * Each message carries a header (magic, src, dst, sequence index, length,
 * FNV-1a-64 checksum of the payload); the receiver checks all of it, so
 * loss, duplication, reordering, truncation and corruption are all caught.
 *
 * Options:
 *   --bytes B            bytes per ordered rank pair, e.g. 64M, 1G (default 64M)
 *   --max-msg B          largest message (default 1M)
 *   --window N           sends and receives in flight per peer (default 4)
 *   --self-test-corrupt  rank 0 flips one payload byte after checksumming
 *                        one message to rank 1; the run MUST then fail
 */
#include "common.h"

#define TAG 77
#define MAGIC 0xD1C0D1C0u

struct hdr {
    uint32_t magic;
    int32_t src, dst;
    uint32_t seq;
    uint64_t len; /* whole message incl. header */
    uint64_t csum; /* FNV-1a-64 over payload */
};
#define HDR ((uint64_t)sizeof(struct hdr))

/* FNV-1a, 64-bit, folding 8 bytes per step (byte-wise tail) so checksumming
 * gigabytes stays cheap while any single-bit flip still changes the result. */
static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h ^= w;
        h *= 0x100000001b3ULL;
    }
    for (; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t max_msg;

/* Length of the next message of a (src,dst) stream; both ends call this with
 * identical state so they agree on every size. */
static uint64_t next_len(uint64_t *state, uint64_t remaining)
{
    uint64_t r = mix64((*state)++), len;
    unsigned cls = (unsigned)(r % 10);
    r >>= 8;
    if (cls < 6)
        len = HDR + r % 480;
    else if (cls < 9)
        len = 512 + r % (64 * 1024);
    else
        len = 64 * 1024 + r % (max_msg - 64 * 1024 + 1);
    if (len > max_msg)
        len = max_msg;
    if (remaining < len + HDR) /* absorb a tail too small for a message */
        len = remaining;
    if (len < HDR)
        len = HDR; /* overshoot the budget by < HDR bytes at most */
    return len;
}

struct stream {
    uint64_t gen, remaining;
    uint32_t seq;
};

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    static const char *const vopts[] = {"--bytes", "--max-msg", "--window", NULL};
    static const char *const fopts[] = {"--self-test-corrupt", NULL};
    opt_check_known(argc, argv, vopts, fopts);
    require_ranks(2);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    uint64_t bytes = 64u << 20;
    max_msg = 1u << 20;
    int W = 4;
    const char *v;
    if ((v = opt_value(argc, argv, "--bytes")))
        bytes = parse_size(v);
    if ((v = opt_value(argc, argv, "--max-msg")))
        max_msg = parse_size(v);
    if ((v = opt_value(argc, argv, "--window")))
        W = atoi(v);
    int corrupt = opt_flag(argc, argv, "--self-test-corrupt");
    if (W < 1 || max_msg < 128 * 1024 || max_msg > (1u << 30))
        fail("--window must be >= 1 and --max-msg in [128K, 1G]");

    int np = n - 1;
    size_t bufsz = (size_t)(max_msg + HDR);
    int nslots = 2 * W * np; /* [send slots: p*W+w][recv slots: np*W + p*W+w] */
    unsigned char **buf = xmalloc(sizeof(unsigned char *) * (size_t)nslots);
    for (int i = 0; i < nslots; i++)
        buf[i] = xmalloc(bufsz);
    MPI_Request *rq = xmalloc(sizeof(MPI_Request) * (size_t)nslots);
    MPI_Status *sts = xmalloc(sizeof(MPI_Status) * (size_t)nslots);
    int *idx = xmalloc(sizeof(int) * (size_t)nslots);
    uint32_t *slot_seq = xmalloc(sizeof(uint32_t) * (size_t)nslots);
    uint64_t *slot_len = xmalloc(sizeof(uint64_t) * (size_t)nslots);
    struct stream *out = xmalloc(sizeof(struct stream) * (size_t)np), *in = xmalloc(sizeof(struct stream) * (size_t)np);
    int *peer = xmalloc(sizeof(int) * (size_t)np);
    for (int p = 0; p < np; p++) {
        peer[p] = p < rank ? p : p + 1;
        out[p] = (struct stream){seed4(1, (uint64_t)rank, (uint64_t)peer[p], 0), bytes, 0};
        in[p] = (struct stream){seed4(1, (uint64_t)peer[p], (uint64_t)rank, 0), bytes, 0};
    }
    for (int i = 0; i < nslots; i++)
        rq[i] = MPI_REQUEST_NULL;
    int corrupted = !corrupt || rank != 0;
    uint64_t rx_bytes = 0, rx_msgs = 0;

    /* Fill a send slot with the next message of stream p and post it. */
#define POST_SEND(p, slot)                                                                   \
    do {                                                                                     \
        uint64_t len_ = next_len(&out[p].gen, out[p].remaining);                             \
        out[p].remaining -= len_ < out[p].remaining ? len_ : out[p].remaining;               \
        unsigned char *b_ = buf[slot];                                                       \
        struct hdr h_ = {MAGIC, rank, peer[p], out[p].seq, len_, 0};                         \
        pattern_fill(b_ + HDR, len_ - HDR, seed4(2, (uint64_t)rank, (uint64_t)peer[p], out[p].seq)); \
        h_.csum = fnv1a64(b_ + HDR, len_ - HDR);                                             \
        memcpy(b_, &h_, HDR);                                                                \
        if (!corrupted && peer[p] == 1 && out[p].seq >= 1 && len_ > HDR) {                   \
            b_[HDR + (len_ - HDR) / 2] ^= 0x10; /* deliberate corruption */                  \
            corrupted = 1;                                                                   \
        }                                                                                    \
        out[p].seq++;                                                                        \
        CHECK_MPI(MPI_Isend(b_, (int)len_, MPI_BYTE, peer[p], TAG, MPI_COMM_WORLD, &rq[slot])); \
    } while (0)

    /* Post a receive for the next message of stream p (length known ahead). */
#define POST_RECV(p, slot)                                                                   \
    do {                                                                                     \
        uint64_t len_ = next_len(&in[p].gen, in[p].remaining);                               \
        in[p].remaining -= len_ < in[p].remaining ? len_ : in[p].remaining;                  \
        slot_seq[slot] = in[p].seq++;                                                        \
        slot_len[slot] = len_;                                                               \
        CHECK_MPI(MPI_Irecv(buf[slot], (int)bufsz, MPI_BYTE, peer[p], TAG, MPI_COMM_WORLD, &rq[slot])); \
    } while (0)

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int p = 0; p < np; p++)
        for (int w = 0; w < W; w++) {
            if (in[p].remaining > 0)
                POST_RECV(p, np * W + p * W + w);
            if (out[p].remaining > 0)
                POST_SEND(p, p * W + w);
        }
    for (;;) {
        int done;
        CHECK_MPI(MPI_Waitsome(nslots, rq, &done, idx, sts));
        if (done == MPI_UNDEFINED)
            break; /* every request is MPI_REQUEST_NULL: all streams finished */
        for (int k = 0; k < done; k++) {
            int slot = idx[k];
            if (slot < np * W) { /* send finished: refill */
                int p = slot / W;
                if (out[p].remaining > 0)
                    POST_SEND(p, slot);
                continue;
            }
            int p = (slot - np * W) / W, cnt;
            MPI_Get_count(&sts[k], MPI_BYTE, &cnt);
            struct hdr h;
            memcpy(&h, buf[slot], HDR);
            if ((uint64_t)cnt != slot_len[slot] || h.len != slot_len[slot])
                fail("from %d seq %u: count=%d header len=%llu want %llu", peer[p], slot_seq[slot], cnt,
                     (unsigned long long)h.len, (unsigned long long)slot_len[slot]);
            if (h.magic != MAGIC || h.src != peer[p] || h.dst != rank || h.seq != slot_seq[slot])
                fail("from %d: header magic=%x src=%d dst=%d seq=%u, want seq %u", peer[p], h.magic, h.src, h.dst,
                     h.seq, slot_seq[slot]);
            uint64_t c = fnv1a64(buf[slot] + HDR, (size_t)(h.len - HDR));
            if (c != h.csum)
                fail("from %d seq %u len %llu: checksum %016llx != %016llx", peer[p], h.seq,
                     (unsigned long long)h.len, (unsigned long long)c, (unsigned long long)h.csum);
            rx_bytes += h.len;
            rx_msgs++;
            if (in[p].remaining > 0)
                POST_RECV(p, slot);
        }
    }
    double secs = MPI_Wtime() - t0;
    /* A duplicated/extra message would still be sitting in the queue. */
    MPI_Barrier(MPI_COMM_WORLD);
    int flag;
    MPI_Status st;
    CHECK_MPI(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
    if (flag)
        fail("extra message from %d tag %d after all streams completed", st.MPI_SOURCE, st.MPI_TAG);

    uint64_t loc[2] = {rx_bytes, rx_msgs}, tot[2];
    double maxsecs;
    MPI_Reduce(loc, tot, 2, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&secs, &maxsecs, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("RESULT ok ranks=%d bytes_per_pair=%llu total_bytes=%llu msgs=%llu secs=%.3f MBps=%.1f\n", n,
               (unsigned long long)bytes, (unsigned long long)tot[0], (unsigned long long)tot[1], maxsecs,
               tot[0] / maxsecs / 1e6);
    for (int i = 0; i < nslots; i++)
        free(buf[i]);
    free(buf);
    free(rq);
    free(sts);
    free(idx);
    free(slot_seq);
    free(slot_len);
    free(out);
    free(in);
    free(peer);
    MPI_Finalize();
    return 0;
}
