/* SPDX-License-Identifier: BSD-3-Clause */
/* Test helpers: TAP output, a private dicomd per test, raw sockets. */
#ifndef DICOM_TEST_HARNESS_H
#define DICOM_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef DICOMD_BIN
#define DICOMD_BIN "dicomd"
#endif

__attribute__((format(printf, 2, 3))) int tap_ok(int cond, const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void tap_diag(const char *fmt, ...);
void tap_skip(const char *why);
/* Prints the plan and returns the exit status (1 if anything failed). */
int tap_done(void);

struct test_daemon {
	pid_t pid;
	char name[64];
	int port;
	char node[20];
	char log[128];
};

/* Starts dicomd on 127.0.0.1 (or node) with a unique socket name and a free
 * port; waits until it accepts.  0 or -1. */
int daemon_start(struct test_daemon *d, const char *node);
/* Same, on a given port (several "nodes" share one port on 127.0.0.x). */
int daemon_start_port(struct test_daemon *d, const char *node, int port);
/* Same, with more dicomd options (NULL-terminated, at most 22); port 0 = free. */
int daemon_start_args(struct test_daemon *d, const char *node, int port,
		      const char *const *extra);
/* SIGTERM, then waits; returns the exit status or -1 (it was killed). */
int daemon_stop(struct test_daemon *d);
int free_port(const char *node);
int file_contains(const char *path, const char *needle);
int wait_file_contains(const char *path, const char *needle, int timeout_ms);
int raw_unix_connect(const char *name);
int raw_tcp_connect(const char *node, int port);
/* Reads until EOF or timeout; returns bytes read, -1 on timeout (still open). */
ssize_t read_until_eof(int fd, void *buf, size_t cap, int timeout_ms);
uint64_t test_now_ms(void);
/* Runs dicomd with args (NULL-terminated, at most 14) to its exit, its
 * stdout and stderr into out; returns its exit status or -1. */
int run_dicomd(const char *const *args, char *out, size_t cap);

#endif
