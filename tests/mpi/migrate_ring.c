/*
 * migrate_ring.c - the workload that is migrated while it runs.
 *
 * Every round, each rank sends a checksummed message around a ring and
 * exchanges checksummed blocks with every other rank (MPI_Alltoall), then
 * computes for --compute-ms without calling MPI, so migrations also hit a
 * rank that makes no MPI calls.  Each message carries (source, round) and
 * its payload depends on both: a lost, duplicated or reordered message
 * fails the check of the round it lands in.
 *
 * Every --report rounds each rank prints where it runs now (its lab
 * address), which proves that a migrated rank's output still reaches mpirun.
 * With --until-file PATH the job runs until PATH exists (rank 0 looks, all
 * agree each round), at most --rounds rounds: a test ends it once its
 * migrations are done.
 * With --pingpong N, ranks 0 and 1 also time N small ping-pongs every
 * round and rank 0 prints "latency EPOCH_MS USEC" (the median one-way time),
 * which the migration benchmark compares before and after a move.
 * With --work-mflop M each round computes a fixed M million multiply-adds
 * instead of --compute-ms of wall time, so a rank that shares its CPU takes
 * longer: the load-balancing experiment measures that.
 * Options: --rounds N (default 400), --compute-ms M (default 20),
 *          --size BYTES (ring message, default 64K), --resident SIZE
 *          (memory each rank keeps touched, default 0), --report N (50).
 */
#include "common.h"
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

struct stamp {
    uint32_t src, round;
    uint64_t seed;
};

static void where(char *buf, size_t len)
{
    struct ifaddrs *ifs = NULL, *i;
    snprintf(buf, len, "unknown");
    if (getifaddrs(&ifs) != 0)
        return;
    for (i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
            strcmp(i->ifa_name, "lo") != 0) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf,
                      (socklen_t)len);
            break;
        }
    freeifaddrs(ifs);
}

static void compute(int ms, volatile double *sink)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double x = *sink;
    do {
        for (int k = 0; k < 20000; k++)
            x = x * 1.0000001 + 1e-9;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    *sink = x;
}

static void work(long mflop, volatile double *sink)
{
    double x = *sink;
    for (long m = 0; m < mflop; m++)
        for (int k = 0; k < 1000000; k++)
            x = x * 1.0000001 + 1e-9;
    *sink = x;
}

static void check_block(const unsigned char *buf, size_t n, uint32_t src, uint32_t round,
                        const char *what)
{
    struct stamp s;
    memcpy(&s, buf, sizeof s);
    if (s.src != src || s.round != round)
        fail("%s: expected (src %u, round %u), got (src %u, round %u): lost, duplicated or "
             "reordered message",
             what, src, round, s.src, s.round);
    size_t bad = pattern_check(buf + sizeof s, n - sizeof s, s.seed);
    if (s.seed != seed4(src, round, n, 7) || bad != (size_t)-1)
        fail("%s: payload from rank %u round %u corrupt at byte %zu", what, src, round, bad);
}

static void stamp_block(unsigned char *buf, size_t n, uint32_t src, uint32_t round)
{
    struct stamp s = { src, round, seed4(src, round, n, 7) };
    memcpy(buf, &s, sizeof s);
    pattern_fill(buf + sizeof s, n - sizeof s, s.seed);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void pingpong_round(int rank, int n)
{
    double lat[10000];
    char b = 0;
    for (int i = 0; i < n; i++) {
        double t = MPI_Wtime();
        if (rank == 0) {
            CHECK_MPI(MPI_Send(&b, 1, MPI_CHAR, 1, 9, MPI_COMM_WORLD));
            CHECK_MPI(MPI_Recv(&b, 1, MPI_CHAR, 1, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        } else {
            CHECK_MPI(MPI_Recv(&b, 1, MPI_CHAR, 0, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            CHECK_MPI(MPI_Send(&b, 1, MPI_CHAR, 0, 9, MPI_COMM_WORLD));
        }
        lat[i] = (MPI_Wtime() - t) * 1e6 / 2;
    }
    if (rank == 0) {
        qsort(lat, (size_t)n, sizeof lat[0], cmp_double);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        printf("latency %lld %.2f\n", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, lat[n / 2]);
    }
}

int main(int argc, char **argv)
{
    int rank, size, rounds = 400, compute_ms = 20, report = 50;
    size_t ring_size = 64 << 10, block = 4096, resident = 0;
    MPI_Init(&argc, &argv);
    static const char *const with_value[] = {"--rounds", "--compute-ms", "--size",
                                             "--resident", "--report", "--until-file",
                                             "--pingpong", "--work-mflop", NULL};
    opt_check_known(argc, argv, with_value, NULL);
    if (opt_value(argc, argv, "--rounds"))
        rounds = atoi(opt_value(argc, argv, "--rounds"));
    if (opt_value(argc, argv, "--compute-ms"))
        compute_ms = atoi(opt_value(argc, argv, "--compute-ms"));
    if (opt_value(argc, argv, "--report"))
        report = atoi(opt_value(argc, argv, "--report"));
    if (opt_value(argc, argv, "--size"))
        ring_size = (size_t)parse_size(opt_value(argc, argv, "--size"));
    const char *until_file = opt_value(argc, argv, "--until-file");
    long work_mflop = opt_value(argc, argv, "--work-mflop") ? atol(opt_value(argc, argv, "--work-mflop")) : 0;
    if (work_mflop < 0 || work_mflop > 100000)
        fail("--work-mflop must be 0..100000");
    int pingpongs = opt_value(argc, argv, "--pingpong") ? atoi(opt_value(argc, argv, "--pingpong")) : 0;
    if (pingpongs < 0 || pingpongs > 10000)
        fail("--pingpong must be 0..10000");
    if (opt_value(argc, argv, "--resident"))
        resident = (size_t)parse_size(opt_value(argc, argv, "--resident"));
    if (rounds < 1 || compute_ms < 0 || report < 1 || ring_size < sizeof(struct stamp))
        fail("--rounds and --report must be positive, --compute-ms >= 0, --size >= 16");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    require_ranks(2);

    /* Resident memory that a migration must carry, checked at the end. */
    unsigned char *mem = resident ? xmalloc(resident) : NULL;
    if (mem)
        pattern_fill(mem, resident, seed4((uint64_t)rank, 99, resident, 1));

    unsigned char *sring = xmalloc(ring_size), *rring = xmalloc(ring_size);
    unsigned char *sall = xmalloc(block * (size_t)size), *rall = xmalloc(block * (size_t)size);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    volatile double sink = 1.0;
    char at[64];
    double t0 = MPI_Wtime();
    int done_rounds = rounds;
    for (int r = 0; r < rounds; r++) {
        if (until_file) {
            int stop = rank == 0 && access(until_file, F_OK) == 0;
            CHECK_MPI(MPI_Bcast(&stop, 1, MPI_INT, 0, MPI_COMM_WORLD));
            if (stop) {
                done_rounds = r;
                break;
            }
        }
        stamp_block(sring, ring_size, (uint32_t)rank, (uint32_t)r);
        CHECK_MPI(MPI_Sendrecv(sring, (int)ring_size, MPI_BYTE, next, 1, rring, (int)ring_size,
                               MPI_BYTE, prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        check_block(rring, ring_size, (uint32_t)prev, (uint32_t)r, "ring");
        for (int p = 0; p < size; p++)
            stamp_block(sall + block * (size_t)p, block, (uint32_t)rank, (uint32_t)r);
        CHECK_MPI(MPI_Alltoall(sall, (int)block, MPI_BYTE, rall, (int)block, MPI_BYTE,
                               MPI_COMM_WORLD));
        for (int p = 0; p < size; p++)
            check_block(rall + block * (size_t)p, block, (uint32_t)p, (uint32_t)r, "alltoall");
        if (work_mflop)
            work(work_mflop, &sink);
        else
            compute(compute_ms, &sink);
        if (pingpongs && rank < 2)
            pingpong_round(rank, pingpongs);
        if ((r + 1) % report == 0) {
            where(at, sizeof at);
            printf("rank %d round %d at %s\n", rank, r + 1, at);
            fflush(stdout);
        }
    }
    if (mem && pattern_check(mem, resident, seed4((uint64_t)rank, 99, resident, 1)) != (size_t)-1)
        fail("resident memory changed");
    CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 0)
        printf("RESULT ok ranks=%d rounds=%d secs=%.3f\n", size, done_rounds, MPI_Wtime() - t0);
    free(mem);
    free(sring);
    free(rring);
    free(sall);
    free(rall);
    MPI_Finalize();
    return 0;
}
