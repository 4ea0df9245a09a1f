/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicom-run: the home stub.  `mpirun ... dicom-run ./app` starts it where
 * mpirun would start the rank; it forks the rank with the shim preloaded and
 * stays here, at home, for the rank's whole life, wherever the rank runs:
 * orted keeps a live child, the rank's output and PMIx traffic pass through
 * here, signals are forwarded, and the rank's exit status becomes ours.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dicom.h"
#include "run.h"
#include "shim_env.h"

void run_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "dicom-run[%d]: %s\n", (int)getpid(), line);
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: dicom-run [--node-addr A.B.C.D] [--daemon NAME] [--away-timeout S] [--] PROGRAM [ARGS...]\n"
		"Starts PROGRAM as a migratable rank and stays on this node as its home stub.\n"
		"  --node-addr A   this node's address the rank reconnects to from other nodes\n"
		"                  (default: $DICOM_NODE_ADDR, else the local dicomd's node address)\n"
		"  --daemon NAME   the local dicomd's abstract socket (default $DICOM_DAEMON or dicomd)\n"
		"  --away-timeout S  give the rank up if it stays away S seconds (default 600)\n");
}

static int node_from_daemon(const char *daemon, char *out, size_t len)
{
	char json[8192];
	if (dicom_query_status(daemon, json, sizeof(json)) < 0)
		return -1;
	const char *p = strstr(json, "\"node\":");
	if (!p)
		return -1;
	p = strchr(p + 7, '"');
	const char *e = p ? strchr(p + 1, '"') : NULL;
	if (!p || !e || (size_t)(e - p - 1) >= len)
		return -1;
	memcpy(out, p + 1, (size_t)(e - p - 1));
	out[e - p - 1] = '\0';
	return 0;
}

static int listen_on(const char *addr, char *hostport, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		run_log("node address \"%s\" is not IPv4", addr);
		return -1;
	}
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		run_log("cannot listen on %s: %s", addr, strerror(errno));
		return -1;
	}
	snprintf(hostport, len, "%s:%u", addr, ntohs(sa.sin_port));
	return fd;
}

static char *shim_path(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0)
		return NULL;
	path[n] = '\0';
	char *slash = strrchr(path, '/');
	if (!slash || (size_t)(slash - path) + sizeof(DICOM_STUB_SHIM_NAME) + 2 > sizeof(path))
		return NULL;
	strcpy(slash + 1, DICOM_STUB_SHIM_NAME);
	return access(path, R_OK) == 0 ? path : NULL;
}

static pid_t start_rank(char **argv, const char *hostport, const char *shim, const sigset_t *old)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	sigprocmask(SIG_SETMASK, old, NULL);
	const char *pre = getenv("LD_PRELOAD");
	char preload[PATH_MAX * 2];
	snprintf(preload, sizeof(preload), "%s%s%s", shim, pre && *pre ? ":" : "", pre ? pre : "");
	setenv("LD_PRELOAD", preload, 1);
	setenv(DICOM_STUB_ENV, hostport, 1);
	/* PMIx's shared-memory store maps files of this node's session
	 * directory; served over the socket instead, it travels with the rank. */
	setenv("PMIX_MCA_gds", "hash", 1);
	execvp(argv[0], argv);
	fprintf(stderr, "dicom-run: cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static int64_t now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

int main(int argc, char **argv)
{
	const char *node = getenv("DICOM_NODE_ADDR"), *daemon = NULL;
	long away_timeout = 600;
	static const struct option opts[] = {
		{ "node-addr", required_argument, NULL, 'n' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "away-timeout", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'n': node = optarg; break;
		case 'd': daemon = optarg; break;
		case 'a': {
			char *end;
			away_timeout = strtol(optarg, &end, 10);
			if (*end || away_timeout <= 0) {
				fprintf(stderr, "dicom-run: --away-timeout %s is not a positive number of seconds\n", optarg);
				return 2;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "dicom-run: no program given\n");
		usage(stderr);
		return 2;
	}
	char from_daemon[INET_ADDRSTRLEN];
	if (!node && node_from_daemon(daemon, from_daemon, sizeof(from_daemon)) == 0)
		node = from_daemon;
	if (!node) {
		fprintf(stderr, "dicom-run: no node address: pass --node-addr, set DICOM_NODE_ADDR, "
				"or start a dicomd here (dicomctl daemon start)\n");
		return 2;
	}
	const char *shim = shim_path();
	if (!shim) {
		fprintf(stderr, "dicom-run: %s is missing next to this binary; rebuild with make -C btl-dicom\n",
			DICOM_STUB_SHIM_NAME);
		return 2;
	}
	char hostport[64];
	int lfd = listen_on(node, hostport, sizeof(hostport));
	if (lfd < 0)
		return 2;

	sigset_t mask, old;
	sigemptyset(&mask);
	int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCONT };
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&mask, forwarded[i]);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, &old);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		run_log("signalfd: %s", strerror(errno));
		return 2;
	}

	struct relay r;
	relay_init(&r);
	uint32_t ip = 0;
	uint16_t port = 0;
	stub_parse_hostport(hostport, &ip, &port);
	pid_t child = start_rank(argv + optind, hostport, shim, &old);
	if (child < 0) {
		run_log("fork: %s", strerror(errno));
		return 2;
	}
	r.self = (dicom_addr_t){ ip, (uint32_t)child };
	int child_status = -1, child_local = 1;
	int64_t away_since = 0, term_deadline = 0;

	for (;;) {
		if (r.exited && r.conn < 0)
			break;
		if (r.exited && r.conn >= 0) {
			/* The shim waits for this close to know the status is home. */
			shutdown(r.conn, SHUT_WR);
		}
		if (r.lost && r.conn < 0) {
			if (child_local && child_status < 0 && waitpid(child, &child_status, 0) < 0)
				child_status = -1;
			run_log("the rank's link closed without an exit status%s",
				child_status >= 0 ? "" : " (it was away: reporting SIGKILL)");
			return child_status >= 0 ? exit_code(child_status) : 128 + SIGKILL;
		}
		if (child_status >= 0 && r.conn < 0 && !r.draining && !r.exited)
			return exit_code(child_status); /* died before it ever connected */
		if (r.conn < 0 && r.draining) {
			if (!away_since)
				away_since = now_s();
			if (now_s() - away_since > away_timeout) {
				run_log("the rank stayed away more than %ld s; giving it up", away_timeout);
				return 128 + SIGKILL;
			}
		} else {
			away_since = 0;
		}
		if (term_deadline && now_s() > term_deadline) {
			run_log("the rank did not exit within 10 s of the signal");
			return 128 + SIGTERM;
		}

		struct pollfd pf[2 + RELAY_MAX_CHANNELS + 1];
		pf[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		int n = 2 + relay_poll_fds(&r, pf + 2, RELAY_MAX_CHANNELS + 1);
		if (poll(pf, (nfds_t)n, 1000) < 0 && errno != EINTR) {
			run_log("poll: %s", strerror(errno));
			return 2;
		}
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					int st;
					if (child_local && waitpid(child, &st, WNOHANG) == child) {
						child_local = 0;
						/* A dump ends our child while it drains: that is
						 * the migration, not the rank's death. */
						if (!r.draining)
							child_status = st;
					}
					continue;
				}
				relay_signal(&r, (int)si.ssi_signo);
				if (child_local)
					kill(child, (int)si.ssi_signo);
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP)
					term_deadline = now_s() + 10;
			}
		}
		if (pf[1].revents & POLLIN)
			relay_accept(&r, lfd);
		relay_handle(&r, pf + 2, n - 2);
	}
	if (child_local)
		waitpid(child, NULL, 0);
	return exit_code(r.exit_status);
}
