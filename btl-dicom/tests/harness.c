/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static int tap_count, tap_failed;

int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%sok %d - ", cond ? "" : "not ", ++tap_count);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

void tap_skip(const char *why)
{
	printf("ok %d # SKIP %s\n", ++tap_count, why);
	fflush(stdout);
}

int tap_done(void)
{
	printf("1..%d\n", tap_count);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

uint64_t test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int free_port(const char *node)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	inet_pton(AF_INET, node, &sa.sin_addr);
	socklen_t sl = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

int raw_unix_connect(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	memcpy(sa.sun_path + 1, name, n);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_tcp_connect(const char *node, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, node, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int counter;

static int start(struct test_daemon *d, const char *node, int fixed_port,
		 const char *const *extra)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->node, sizeof(d->node), "%s", node ? node : "127.0.0.1");
	snprintf(d->name, sizeof(d->name), "dicomd-test-%d-%d", (int)getpid(), ++counter);
	snprintf(d->log, sizeof(d->log), "/tmp/%s.log", d->name);
	unlink(d->log);
	for (int attempt = 0; attempt < 5; attempt++) {
		d->port = fixed_port ? fixed_port : free_port(d->node);
		char port[16];
		snprintf(port, sizeof(port), "%d", d->port);
		pid_t pid = fork();
		if (pid < 0)
			return -1;
		if (pid == 0) {
			/* a test that dies (a sanitizer abort) takes its daemons with it */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			const char *argv[32] = { "dicomd", "--name", d->name, "--port", port,
						 "--node-addr", d->node, "--log", d->log };
			for (int i = 0; extra && extra[i] && i < 22; i++)
				argv[9 + i] = extra[i];
			/* A test run elsewhere than where it was built (a qemu guest)
			 * names the dicomd to use. */
			const char *bin = getenv("DICOM_TEST_DICOMD");
			execv(bin && *bin ? bin : DICOMD_BIN, (char *const *)argv);
			_exit(127);
		}
		d->pid = pid;
		for (int i = 0; i < 500; i++) {
			int fd = raw_unix_connect(d->name);
			if (fd >= 0) {
				close(fd);
				/* the TCP listener opens just before the unix one */
				return 0;
			}
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid) {
				d->pid = 0;
				break; /* port taken meanwhile: try another */
			}
			usleep(10000);
		}
		if (d->pid) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
			d->pid = 0;
		}
	}
	return -1;
}

int daemon_start(struct test_daemon *d, const char *node)
{
	return start(d, node, 0, NULL);
}

int daemon_start_port(struct test_daemon *d, const char *node, int port)
{
	return start(d, node, port, NULL);
}

int daemon_start_args(struct test_daemon *d, const char *node, int port,
		      const char *const *extra)
{
	return start(d, node, port, extra);
}

int daemon_stop(struct test_daemon *d)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	int st = 0;
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(d->pid, &st, WNOHANG);
		if (r == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		usleep(10000);
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
	return -1;
}

int file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[4096];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

int wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
	uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
	do {
		if (file_contains(path, needle))
			return 1;
		usleep(10000);
	} while (test_now_ms() < end);
	return 0;
}

ssize_t read_until_eof(int fd, void *buf, size_t cap, int timeout_ms)
{
	uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
	size_t have = 0;
	for (;;) {
		int64_t left = (int64_t)(end - test_now_ms());
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		char scratch[4096];
		void *dst = have < cap ? (char *)buf + have : scratch;
		size_t room = have < cap ? cap - have : sizeof(scratch);
		ssize_t r = read(fd, dst, room);
		if (r == 0)
			return (ssize_t)have;
		if (r < 0)
			return errno == ECONNRESET ? (ssize_t)have : -1;
		if (have < cap)
			have += (size_t)r;
	}
}

int run_dicomd(const char *const *args, char *out, size_t cap)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		char *argv[16] = { "dicomd" };
		int n = 1;
		for (; args[n - 1] && n < 15; n++)
			argv[n] = (char *)args[n - 1];
		argv[n] = NULL;
		execv(DICOMD_BIN, argv);
		_exit(127);
	}
	close(p[1]);
	ssize_t n = read_until_eof(p[0], out, cap - 1, 5000);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
