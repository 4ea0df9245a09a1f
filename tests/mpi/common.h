/*
 * Shared helpers for the DiCOM MPI test programs.
 *
 * Everything here is header-only (static functions) so each program stays a
 * single translation unit and the Makefile stays trivial.  The helpers exist
 * so that every program reports results in exactly the same way, which is
 * what the CI harness greps for:
 *   success: one line "RESULT ok key=value ..." printed by rank 0, exit 0
 *   failure: "RESULT fail <what>" printed by the rank that noticed, then
 *            MPI_Abort(MPI_COMM_WORLD, 3) so the whole job dies non-zero.
 */
#ifndef DICOM_MPI_COMMON_H
#define DICOM_MPI_COMMON_H

/* -std=c11 hides POSIX declarations (nanosleep, strtoull is fine); ask for them. */
#define _POSIX_C_SOURCE 200809L

#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL_EXIT_CODE 3

/* Report a verification failure and take the whole job down.  printf-style. */
static inline void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void fail(const char *fmt, ...)
{
    int rank = -1;
    va_list ap;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* Build the line first so it reaches stdout as one write, not interleaved. */
    char line[512];
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("RESULT fail rank=%d %s\n", rank, line);
    fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, FAIL_EXIT_CODE);
    abort(); /* MPI_Abort should not return; make sure we never continue. */
}

/* Wrap an MPI call: any error code is a test failure (errors are fatal by
 * default anyway, but this also catches MPI_ERRORS_RETURN setups). */
#define CHECK_MPI(call)                                                        \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != MPI_SUCCESS)                                                \
            fail("%s:%d %s returned %d", __FILE__, __LINE__, #call, rc_);      \
    } while (0)

/* Allocation failure is an environment problem, but still must not pass. */
static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        fail("malloc(%zu) failed", n);
    return p;
}

/* Parse "64M", "1G", "4096", "16k" (binary multiples) into bytes. */
static inline uint64_t parse_size(const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        fail("bad size argument '%s'", s);
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b') /* tolerate "Mi", "MB" */
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        fail("bad size argument '%s'", s);
    return (uint64_t)v;
}

/* splitmix64: cheap, well-mixed 64-bit hash used to derive seeds and data
 * patterns from (size, iteration, rank, ...) so every byte depends on them. */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint64_t seed4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return mix64(mix64(mix64(mix64(a) ^ b) ^ c) ^ d);
}

/* Byte i of the pattern for seed s.  Computed per 8-byte word so filling and
 * checking run at memory speed even for 16 MiB messages. */
static inline void pattern_fill(unsigned char *buf, size_t n, uint64_t seed)
{
    size_t w = 0;
    for (; w + 8 <= n; w += 8) {
        uint64_t v = mix64(seed + w);
        memcpy(buf + w, &v, 8);
    }
    if (w < n) {
        uint64_t v = mix64(seed + w);
        memcpy(buf + w, &v, n - w);
    }
}

/* Returns index of first mismatching byte, or (size_t)-1 if all match. */
static inline size_t pattern_check(const unsigned char *buf, size_t n, uint64_t seed)
{
    size_t w = 0;
    for (; w + 8 <= n; w += 8) {
        uint64_t v = mix64(seed + w);
        if (memcmp(buf + w, &v, 8) != 0)
            break;
    }
    for (; w < n; w++) { /* locate the exact byte (or check the tail) */
        size_t base = w & ~(size_t)7;
        uint64_t v = mix64(seed + base);
        unsigned char e[8];
        memcpy(e, &v, 8);
        if (buf[w] != e[w - base])
            return w;
    }
    return (size_t)-1;
}

/* Simple "--name value" option lookup; returns NULL if absent. */
static inline const char *opt_value(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) {
            if (i + 1 >= argc)
                fail("option %s needs a value", name);
            return argv[i + 1];
        }
    return NULL;
}

static inline int opt_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

/* Reject typos: every argument must be a known option (or its value). */
static inline void opt_check_known(int argc, char **argv, const char *const *with_value,
                            const char *const *flags)
{
    for (int i = 1; i < argc; i++) {
        int ok = 0;
        for (const char *const *o = with_value; o && *o; o++)
            if (strcmp(argv[i], *o) == 0) {
                ok = 1;
                i++;
                break;
            }
        for (const char *const *o = flags; !ok && o && *o; o++)
            if (strcmp(argv[i], *o) == 0)
                ok = 1;
        if (!ok)
            fail("unknown argument '%s'", argv[i]);
    }
}

static inline void require_ranks(int min)
{
    int n;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (n < min)
        fail("needs at least %d ranks, got %d", min, n);
}

#endif
