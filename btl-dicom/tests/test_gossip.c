/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Gossip between dicomds: four "nodes" on 127.0.0.1-4 (loopback only), one
 * port, each listing the others with --peers.  Every node must see every
 * other within a bounded number of periods; an endpoint's rank, job and
 * bytes per peer must reach the other nodes' views; a killed node must age
 * out of every view; malformed gossip costs its sender the connection and
 * nothing else.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dicom.h"
#include "dicom_wire.h"
#include "harness.h"
#include "sock.h"

#define NODES 4
#define PERIOD_MS 50
#define MAX_AGE_MS 1000
/* Push gossip with a window covering the cluster spreads an entry in
 * O(log N) rounds; 20 periods leaves room for a loaded CI machine. */
#define CONVERGE_PERIODS 20

static struct test_daemon node[NODES];
static char view[1 << 20];

static const char *ip(int i)
{
	static char buf[NODES][16];
	snprintf(buf[i], sizeof(buf[i]), "127.0.0.%d", i + 1);
	return buf[i];
}

static int get_view(int i)
{
	return dicom_query_view(node[i].name, view, sizeof(view));
}

/* Does node i's view hold an entry for node j? */
static int sees(int i, int j)
{
	char needle[64];
	snprintf(needle, sizeof(needle), "{\"node\":\"%s\",\"self\":", ip(j));
	return get_view(i) > 0 && strstr(view, needle) != NULL;
}

static int all_see_all(const int *alive)
{
	for (int i = 0; i < NODES; i++)
		for (int j = 0; j < NODES; j++)
			if (alive[i] && alive[j] && !sees(i, j))
				return 0;
	return 1;
}

static void start_nodes(void)
{
	char peers[128] = "";
	for (int i = 0; i < NODES; i++)
		snprintf(peers + strlen(peers), sizeof(peers) - strlen(peers), "%s%s",
			 i ? "," : "", ip(i));
	const char *extra[] = { "--peers", peers, "--gossip-period-ms", "50",
				"--gossip-max-age-ms", "1000", "--gossip-window", "16", NULL };
	int port = 0, ok = 1;
	for (int i = 0; i < NODES && ok; i++) {
		ok = daemon_start_args(&node[i], ip(i), port, extra) == 0;
		port = node[0].port;
	}
	tap_ok(ok, "%d dicomds on 127.0.0.1-%d, port %d, each with --peers %s", NODES, NODES,
	       port, peers);
}

static void convergence(void)
{
	int alive[NODES] = { 1, 1, 1, 1 };
	uint64_t t0 = test_now_ms();
	while (!all_see_all(alive) && test_now_ms() - t0 < 10000)
		usleep(5000);
	uint64_t took = test_now_ms() - t0;
	tap_ok(all_see_all(alive), "every node sees every other node");
	tap_diag("converged in %llu ms = %.1f periods of %d ms (from daemon start)",
		 (unsigned long long)took, (double)took / PERIOD_MS, PERIOD_MS);
	tap_ok(took <= CONVERGE_PERIODS * PERIOD_MS, "within %d periods (%llu ms)",
	       CONVERGE_PERIODS, (unsigned long long)took);
	tap_ok(get_view(0) > 0 && strstr(view, "\"period_ms\":50,\"window\":16,\"max_age_ms\":1000") &&
		       strstr(view, "\"cpus\":") && strstr(view, "\"mem_free_kib\":") &&
		       strstr(view, "\"runnable\":") && strstr(view, "\"truncated\":false"),
	       "the view reports the configuration and each node's load vector");
}

struct inbox {
	size_t msgs, bytes;
};

static void on_msg(void *ctx, const dicom_addr_t *src, uint8_t tag, const void *data, size_t len)
{
	(void)src;
	(void)tag;
	(void)data;
	struct inbox *in = ctx;
	in->msgs++;
	in->bytes += len;
}

/* An endpoint on node 1 (rank 3 of job "gossip-job") sends 1 MB to one on
 * node 2 (rank 4); every node's view must show who they are and the bytes
 * between them. */
static void traffic(void)
{
	setenv("DICOM_JOB", "gossip-job", 1);
	setenv("OMPI_COMM_WORLD_RANK", "3", 1);
	struct dicom_ep_opts o1 = { .daemon_name = node[0].name };
	dicom_ep_t *a = NULL, *b = NULL;
	char err[256] = "";
	int ra = dicom_ep_open(&o1, &a, err, sizeof(err));
	setenv("OMPI_COMM_WORLD_RANK", "4", 1);
	struct dicom_ep_opts o2 = { .daemon_name = node[1].name };
	int rb = dicom_ep_open(&o2, &b, err, sizeof(err));
	unsetenv("DICOM_JOB");
	unsetenv("OMPI_COMM_WORLD_RANK");
	if (!tap_ok(ra == DICOM_OK && rb == DICOM_OK, "endpoints on node 1 and node 2 %s", err)) {
		dicom_ep_close(a);
		dicom_ep_close(b);
		return;
	}
	dicom_addr_t da = dicom_ep_addr(a), db = dicom_ep_addr(b);
	static char msg[10000];
	struct inbox in = { 0 };
	uint64_t end = test_now_ms() + 30000;
	for (int sent = 0; (sent < 100 || in.msgs < 100) && test_now_ms() < end;) {
		struct iovec iov = { msg, sizeof(msg) };
		if (sent < 100 && dicom_send(a, &db, 1, &iov, 1) == DICOM_OK)
			sent++;
		dicom_progress(a, NULL, NULL);
		dicom_progress(b, on_msg, &in);
	}
	tap_ok(in.msgs == 100 && in.bytes == 100 * sizeof(msg), "1,000,000 bytes delivered");
	char sa[32], sb[32], needle[256];
	dicom_addr_format(&da, sa, sizeof(sa));
	dicom_addr_format(&db, sb, sizeof(sb));
	/* Reports go out every 500 ms from the endpoint's progress. */
	int seen = 0;
	end = test_now_ms() + 5000;
	snprintf(needle, sizeof(needle), "{\"src\":\"%s\",\"dst\":\"%s\",\"bytes\":1000000,", sa, sb);
	while (!seen && test_now_ms() < end) {
		dicom_progress(a, NULL, NULL);
		dicom_progress(b, on_msg, &in);
		seen = get_view(2) > 0 && strstr(view, needle);
		usleep(10000);
	}
	tap_ok(seen, "node 3's view shows the pair %s -> %s with 1000000 bytes", sa, sb);
	snprintf(needle, sizeof(needle), "\"addr\":\"%s\",\"pid\":%d,\"rank\":3,\"job\":\"gossip-job\"",
		 sa, (int)getpid());
	tap_ok(strstr(view, needle) != NULL, "and node 1's process as rank 3 of gossip-job");
	snprintf(needle, sizeof(needle), "\"addr\":\"%s\",\"pid\":%d,\"rank\":4,\"job\":\"gossip-job\"",
		 sb, (int)getpid());
	tap_ok(strstr(view, needle) != NULL, "and node 2's process as rank 4");
	const char *rate = strstr(view, "\"bytes\":1000000,\"rate\":");
	tap_ok(rate && strtoull(rate + strlen("\"bytes\":1000000,\"rate\":"), NULL, 10) > 0,
	       "with a nonzero recent rate");
	dicom_ep_close(a);
	dicom_ep_close(b);
	snprintf(needle, sizeof(needle), "\"node\":\"%s\",\"self\":true", ip(0));
	end = test_now_ms() + 3000;
	seen = 1;
	while (seen && test_now_ms() < end) {
		seen = get_view(0) > 0 && strstr(view, sa);
		usleep(20000);
	}
	tap_ok(!seen, "a closed endpoint leaves its node's load vector");
}

static void bad_input(void)
{
	int fd = raw_tcp_connect(ip(0), node[0].port);
	uint8_t buf[DICOM_WIRE_HDR_LEN + DICOM_LOAD_FIXED_LEN];
	struct dicom_frame f = { .type = DICOM_FT_GOSSIP, .length = DICOM_LOAD_FIXED_LEN,
				 .src = { 0x7f000063, 0 } };
	uint8_t payload[DICOM_LOAD_FIXED_LEN] = { 0 };
	dicom_put_le16(payload + 12, 5); /* five processes, none present */
	size_t n = dicom_frame_encode(&f, payload, buf, sizeof(buf));
	char reply[2048];
	ssize_t r = fd >= 0 && write(fd, buf, n) == (ssize_t)n
			    ? read_until_eof(fd, reply, sizeof(reply) - 1, 3000)
			    : -1;
	if (fd >= 0)
		close(fd);
	reply[r > 0 ? r : 0] = '\0';
	tap_ok(r > DICOM_WIRE_HDR_LEN && reply[5] == DICOM_FT_ERROR &&
		       strstr(reply + DICOM_WIRE_HDR_LEN, "GOSSIP entry"),
	       "a malformed GOSSIP entry gets an ERROR and the connection closes");
	tap_ok(wait_file_contains(node[0].log, "\"event\":\"bad_gossip\"", 2000),
	       "the node logs bad_gossip");
	tap_ok(get_view(0) > 0 && !strstr(view, "127.0.0.99"), "the malformed entry is not in the view");

	fd = raw_unix_connect(node[0].name);
	struct dicom_frame t = { .type = DICOM_FT_TRAFFIC, .length = DICOM_TRAFFIC_FIXED_LEN };
	uint8_t tp[DICOM_TRAFFIC_FIXED_LEN] = { 0 };
	n = dicom_frame_encode(&t, tp, buf, sizeof(buf));
	r = fd >= 0 && write(fd, buf, n) == (ssize_t)n ? read_until_eof(fd, reply, sizeof(reply) - 1, 3000)
						       : -1;
	if (fd >= 0)
		close(fd);
	reply[r > 0 ? r : 0] = '\0';
	tap_ok(r > DICOM_WIRE_HDR_LEN && strstr(reply + DICOM_WIRE_HDR_LEN, "TRAFFIC before REGISTER"),
	       "TRAFFIC from an unregistered client is refused");
	int alive[NODES] = { 1, 1, 1, 1 };
	tap_ok(all_see_all(alive), "all nodes still gossip");
}

static void age_out(void)
{
	kill(node[3].pid, SIGKILL);
	waitpid(node[3].pid, NULL, 0);
	node[3].pid = 0;
	uint64_t t0 = test_now_ms();
	char needle[64];
	snprintf(needle, sizeof(needle), "{\"node\":\"%s\",\"self\":", ip(3));
	int gone = 0;
	while (test_now_ms() - t0 < 3 * MAX_AGE_MS) {
		gone = 1;
		for (int i = 0; i < 3; i++)
			gone &= get_view(i) > 0 && !strstr(view, needle);
		if (gone)
			break;
		usleep(10000);
	}
	uint64_t took = test_now_ms() - t0;
	tap_ok(gone && took <= MAX_AGE_MS + 10 * PERIOD_MS,
	       "node 4 (killed) aged out of every view in %llu ms (max age %d ms, + 10 periods "
	       "allowed)", (unsigned long long)took, MAX_AGE_MS);
	tap_ok(took >= MAX_AGE_MS - 2 * PERIOD_MS,
	       "not before its maximum age: entries are not dropped on a missed round");
	tap_ok(file_contains(node[0].log, "\"event\":\"gossip_expired\""),
	       "node 1 logged gossip_expired");
	int alive[NODES] = { 1, 1, 1, 0 };
	tap_ok(all_see_all(alive), "the other three still see each other");
	tap_ok(get_view(0) > 0 && strstr(view, "\"failures\":"), "node 1 backs off from node 4");
}

static void options(void)
{
	char out[4096];
	int p[2];
	if (pipe(p) < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		execl(DICOMD_BIN, "dicomd", "--gossip-period-ms", "5", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ssize_t n = read_until_eof(p[0], out, sizeof(out) - 1, 3000);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	out[n > 0 ? n : 0] = '\0';
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 2 &&
		       strstr(out, "--gossip-period-ms 5 is not a number from 10 to 60000"),
	       "--gossip-period-ms 5 is refused with a message");
}

int main(void)
{
	start_nodes();
	convergence();
	traffic();
	bad_input();
	age_out();
	options();
	for (int i = 0; i < NODES; i++)
		if (node[i].pid)
			tap_ok(daemon_stop(&node[i]) == 0, "node %d exits 0 on SIGTERM", i + 1);
	return tap_done();
}
