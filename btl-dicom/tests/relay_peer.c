/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One side of the relay test between two qemu guests (control/kernel/
 * relayguests.ts, kernel-patches/guest/relay-init): each guest runs the
 * dicom_mbox driver, a dicomd holding its relay, and this program.  The two
 * programs meet over a plain TCP socket only to swap the pid of the process
 * that talks DiCOM (as an MPI launcher's modex would) and to finish
 * together.  The exchange itself is peer.h's: messages of 0 B .. 1 MiB
 * each way, exactly once and in order, with the kernel backend required, so
 * every message crosses both mailboxes and both dicomds' relays.
 *
 * Role 0 then sends to pid 1 on the other node, which has no mailbox: the
 * other dicomd must refuse it (NOT_HERE), and the stream must leave the
 * mailbox at once rather than after its unanswered HELLOs time out.
 *
 * Prints TAP results numbered from --first, without a plan: the guest's
 * /init adds its own results and the plan.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "peer.h"

#define BOOTSTRAP_TIMEOUT_S 120

static char stats_log[] = "/tmp/dicom-relay-stats.jsonl";
static int ntests;
static int nfailed;

static void result(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void result(int ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s %d - ", ok ? "ok" : "not ok", ++ntests);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	nfailed += !ok;
}

/* "key":N of the last line of the stats log with it; -1 if none. */
static long long stat_field(const char *key)
{
	FILE *f = fopen(stats_log, "r");
	char line[8192], pat[64];
	long long v = -1;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, pat);
		if (p)
			v = strtoll(p + strlen(pat), NULL, 10);
	}
	if (f)
		fclose(f);
	return v;
}

/* "key":N inside the "relay" object of a dicomd status; -1 if none. */
static long long relay_field(const char *status, const char *key)
{
	const char *r = strstr(status, "\"relay\":{");
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = r ? strstr(r, pat) : NULL;
	const char *end = r ? strchr(r, '}') : NULL;
	return p && p < end ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static int bootstrap(int role, const char *self_ip, const char *peer_ip, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint64_t deadline = test_now_ms() + BOOTSTRAP_TIMEOUT_S * 1000;
	if (role == 0) {
		int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		inet_pton(AF_INET, self_ip, &sa.sin_addr);
		if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0) {
			printf("# bootstrap: listen on %s:%d: %s\n", self_ip, port, strerror(errno));
			return -1;
		}
		struct pollfd pf = { .fd = l, .events = POLLIN };
		int fd = poll(&pf, 1, BOOTSTRAP_TIMEOUT_S * 1000) == 1 ? accept(l, NULL, NULL) : -1;
		close(l);
		if (fd < 0)
			printf("# bootstrap: nobody connected to %s:%d\n", self_ip, port);
		return fd;
	}
	inet_pton(AF_INET, peer_ip, &sa.sin_addr);
	while (test_now_ms() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(200000); /* the other guest is still booting */
	}
	printf("# bootstrap: could not connect to %s:%d\n", peer_ip, port);
	return -1;
}

static int read_full(int fd, void *buf, size_t len, int timeout_s)
{
	uint8_t *p = buf;
	while (len) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, timeout_s * 1000) != 1)
			return -1;
		ssize_t r = read(fd, p, len);
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Sends to pid 1 of the peer node, which has no mailbox, and waits for the
 * stream to leave the mailbox; returns its milliseconds, or -1. */
static long long refused_ms(const char *daemon, uint32_t peer_node)
{
	struct dicom_ep_opts opts = { .daemon_name = daemon };
	dicom_ep_t *ep;
	char err[256];
	if (dicom_ep_open(&opts, &ep, err, sizeof(err)) != DICOM_OK) {
		printf("# refusal: dicom_ep_open: %s\n", err);
		return -1;
	}
	dicom_addr_t dst = { peer_node, 1 };
	uint8_t byte = 7;
	struct iovec iov = { &byte, 1 };
	uint64_t t0 = test_now_ms();
	long long ms = -1;
	if (dicom_send(ep, &dst, 0, &iov, 1) == DICOM_OK) {
		/* The socket path then asks pid 1's home dicomd, which never heard
		 * of it: resolves count the moment the mailbox gave up. */
		while (test_now_ms() - t0 < 4000) {
			dicom_progress(ep, NULL, NULL);
			struct dicom_ep_stats s;
			dicom_ep_stats(ep, &s);
			if (s.resolves) {
				ms = (long long)(test_now_ms() - t0);
				break;
			}
			usleep(1000);
		}
	}
	dicom_ep_close(ep);
	return ms;
}

static void usage(void)
{
	fprintf(stderr, "usage: relay_peer --role 0|1 --self IP --peer IP [--port P] [--nmsgs N] "
			"[--first N]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' }, { "self", required_argument, NULL, 's' },
		{ "peer", required_argument, NULL, 'p' }, { "port", required_argument, NULL, 'P' },
		{ "nmsgs", required_argument, NULL, 'n' }, { "first", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	int role = -1, port = 7481, nmsgs = 400, c;
	const char *self_ip = NULL, *peer_ip = NULL;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': role = atoi(optarg); break;
		case 's': self_ip = optarg; break;
		case 'p': peer_ip = optarg; break;
		case 'P': port = atoi(optarg); break;
		case 'n': nmsgs = atoi(optarg); break;
		case 'f': ntests = atoi(optarg) - 1; break;
		default: usage(); return 2;
		}
	}
	struct in_addr peer_in;
	if ((role != 0 && role != 1) || !self_ip || !peer_ip || port <= 0 || port > 65535 ||
	    nmsgs <= 0 || ntests < 0 || inet_pton(AF_INET, peer_ip, &peer_in) != 1) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv(DICOM_KERNEL_MBOX_ENV, "on", 1);
	setenv(DICOM_STATS_LOG_ENV, stats_log, 1);
	unlink(stats_log);

	int sock = bootstrap(role, self_ip, peer_ip, port);
	int down[2], up[2];
	if (sock < 0 || pipe(down) < 0 || pipe(up) < 0) {
		printf("Bail out! no bootstrap connection to the other guest\n");
		return 1;
	}
	struct peer_cfg cfg = { .nmsgs = nmsgs, .sizes = SIZES_WIDE, .timeout_s = 600,
				.role = role, .peer_node = ntohl(peer_in.s_addr) };
	pid_t child = fork();
	if (child == 0) {
		close(down[1]);
		close(up[0]);
		close(sock);
		int code = peer_run(&cfg, down[0], up[1]);
		fflush(stdout);
		_exit(code);
	}
	close(down[0]);
	close(up[1]);
	/* The pid that speaks DiCOM is its home pid: swap them. */
	uint32_t mine = (uint32_t)child, theirs = 0;
	uint64_t t0 = test_now_ms();
	int ok = write(sock, &mine, sizeof(mine)) == (ssize_t)sizeof(mine) &&
		 read_full(sock, &theirs, sizeof(theirs), 60) == 0 &&
		 write(down[1], &theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs);
	char done = 0;
	ok = ok && read_full(up[0], &done, 1, cfg.timeout_s) == 0;
	double secs = (double)(test_now_ms() - t0) / 1000;
	/* Both sides keep acking until both are done. */
	char d = 'D', theirs_done = 0;
	ok = ok && write(sock, &d, 1) == 1 && read_full(sock, &theirs_done, 1, cfg.timeout_s) == 0;
	close(down[1]);
	int st = 0;
	waitpid(child, &st, 0);
	ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	result(ok, "%d messages of 0 B .. 1 MiB each way with pid %u on %s, exactly once and in order "
		   "(%.1f s)", nmsgs, theirs, peer_ip, secs);

	long long sent = stat_field("msgs_sent"), delivered = stat_field("msgs_delivered");
	/* Sends count every copy (a probe resends what it finds lost);
	 * deliveries count each message once. */
	long long ksent = stat_field("kernel_sent"), rsent = stat_field("kernel_relayed_sent"),
		  rdelivered = stat_field("kernel_relayed_delivered"),
		  resent = stat_field("retransmitted");
	result(sent == nmsgs && delivered == nmsgs && rsent == ksent && rsent >= sent &&
		       rdelivered == delivered,
	       "every message went through the relay: kernel_relayed_delivered %lld/%lld, "
	       "kernel_relayed_sent %lld/%lld (%lld resent)",
	       rdelivered, delivered, rsent, ksent, resent);

	char f = 'F';
	if (role == 0) {
		long long ms = refused_ms(NULL, cfg.peer_node);
		result(ms >= 0 && ms < 2000,
		       "a message to pid 1 on %s (no mailbox) is refused by its dicomd and the "
		       "stream moves to sockets in %lld ms",
		       peer_ip, ms);
		ok = write(sock, &f, 1) == 1;
	} else {
		ok = read_full(sock, &f, 1, 30) == 0;
	}
	static char status[65536];
	int n = dicom_query_status(NULL, status, sizeof(status));
	if (n > 0) {
		printf("# dicomd relay: out_records %lld out_bytes %lld in_records %lld in_bytes %lld "
		       "refused %lld dropped %lld too_big %lld paused_out %lld paused_in %lld\n",
		       relay_field(status, "out_records"), relay_field(status, "out_bytes"),
		       relay_field(status, "in_records"), relay_field(status, "in_bytes"),
		       relay_field(status, "refused"), relay_field(status, "dropped"),
		       relay_field(status, "too_big"), relay_field(status, "paused_out"),
		       relay_field(status, "paused_in"));
	}
	close(sock);
	(void)ok;
	return nfailed ? 1 : 0;
}
