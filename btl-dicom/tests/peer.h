/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Two-process message exchange used by the integration tests.  Each side
 * sends N messages of pseudo-random size; every message carries its index
 * and a checksum, and the receiver checks index == expected (exactly once,
 * in order), the size and the checksum.  Included by test_exchange.c,
 * test_breaks.c, test_kmbox.c and relay_peer.c only.
 */
#ifndef DICOM_TEST_PEER_H
#define DICOM_TEST_PEER_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dicom.h"
#include "harness.h"

enum size_mode { SIZES_WIDE, SIZES_MOSTLY_SMALL };

struct peer_cfg {
	const char *daemon;
	int nmsgs;
	enum size_mode sizes;
	int break_every;   /* break after ~this many messages moved (random); 0 = never */
	int progress_thread;
	size_t window;
	int timeout_s;
	int role;          /* 0 or 1: seeds the content each side sends */
	uint32_t peer_node; /* the other side's home node; 0 = same as ours */
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static size_t msg_size(int role, uint64_t index, enum size_mode mode)
{
	uint64_t r = mix64(index * 2 + (uint64_t)role + 0x1234);
	unsigned pick = (unsigned)(r % 1000);
	uint64_t v = r >> 16;
	if (mode == SIZES_WIDE) {
		if (pick < 600)
			return (size_t)(v % 257);
		if (pick < 900)
			return 257 + (size_t)(v % (16 << 10));
		if (pick < 980)
			return (16 << 10) + (size_t)(v % (240 << 10));
		return (256 << 10) + (size_t)(v % ((768 << 10) + 1)); /* up to exactly 1 MiB */
	}
	if (pick < 900)
		return (size_t)(v % 2049);
	if (pick < 995)
		return 2049 + (size_t)(v % (62 << 10));
	return (64 << 10) + (size_t)(v % (960 << 10));
}

static void fill(uint8_t *p, size_t len, int role, uint64_t index)
{
	uint64_t s = mix64(index ^ ((uint64_t)role << 60) ^ 0xabcdef);
	for (size_t i = 0; i < len; i++) {
		if ((i & 7) == 0)
			s = mix64(s + i);
		p[i] = (uint8_t)(s >> ((i & 7) * 8));
	}
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* Messages of 16 bytes or more: index, checksum of the rest, content.
 * Shorter ones: the tag carries the index's low byte and the content is a
 * function of the index, so order is still checked. */
static size_t build_msg(uint8_t *buf, int role, uint64_t index, enum size_mode mode,
			uint8_t *tag)
{
	size_t len = msg_size(role, index, mode);
	*tag = (uint8_t)index;
	if (len >= 16) {
		fill(buf + 16, len - 16, role, index);
		uint64_t sum = fnv1a(buf + 16, len - 16);
		memcpy(buf, &index, 8);
		memcpy(buf + 8, &sum, 8);
	} else {
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)(index * 31 + i);
	}
	return len;
}

struct peer_state {
	const struct peer_cfg *cfg;
	uint64_t expected; /* next index to receive */
	int errors;
	char first_error[200];
};

static void peer_fail(struct peer_state *st, const char *fmt, uint64_t a, uint64_t b)
{
	if (st->errors++ == 0)
		snprintf(st->first_error, sizeof(st->first_error), fmt, (unsigned long long)a,
			 (unsigned long long)b);
}

static void on_msg(void *ctx, const dicom_addr_t *src, uint8_t tag, const void *data, size_t len)
{
	(void)src;
	struct peer_state *st = ctx;
	int peer_role = 1 - st->cfg->role;
	uint64_t idx = st->expected;
	size_t want = msg_size(peer_role, idx, st->cfg->sizes);
	const uint8_t *p = data;
	if (len != want) {
		peer_fail(st, "message %llu has %llu bytes", idx, len);
	} else if (tag != (uint8_t)idx) {
		peer_fail(st, "message %llu carries tag %llu", idx, tag);
	} else if (len >= 16) {
		uint64_t got_idx, sum;
		memcpy(&got_idx, p, 8);
		memcpy(&sum, p + 8, 8);
		if (got_idx != idx)
			peer_fail(st, "expected message %llu, got %llu (lost, duplicated or reordered)",
				  idx, got_idx);
		else if (sum != fnv1a(p + 16, len - 16))
			peer_fail(st, "message %llu: checksum mismatch (len %llu)", idx, len);
	} else {
		for (size_t i = 0; i < len; i++)
			if (p[i] != (uint8_t)(idx * 31 + i)) {
				peer_fail(st, "message %llu: short content differs at %llu", idx, i);
				break;
			}
	}
	st->expected++;
}

/* Child body: returns the exit status. */
static int peer_run(const struct peer_cfg *cfg, int from_parent, int to_parent)
{
	uint32_t other_pid;
	if (read(from_parent, &other_pid, sizeof(other_pid)) != (ssize_t)sizeof(other_pid))
		return 10;
	struct dicom_ep_opts opts = { .daemon_name = cfg->daemon, .window_bytes = cfg->window,
				      .progress_thread = cfg->progress_thread };
	dicom_ep_t *ep;
	char err[256];
	int rc = dicom_ep_open(&opts, &ep, err, sizeof(err));
	if (rc != DICOM_OK) {
		printf("# peer %d: dicom_ep_open: %s\n", cfg->role, err);
		return 11;
	}
	dicom_addr_t self = dicom_ep_addr(ep);
	dicom_addr_t dst = { cfg->peer_node ? cfg->peer_node : self.home_node, other_pid };
	struct peer_state st = { .cfg = cfg };
	uint8_t *buf = malloc(1 << 20);
	srand((unsigned)getpid());
	uint64_t sent = 0, breaks = 0, eagain = 0;
	uint64_t deadline = test_now_ms() + (uint64_t)cfg->timeout_s * 1000;
	int done_signalled = 0, exit_code = 0;
	uint64_t next_break = cfg->break_every ? (uint64_t)(rand() % (2 * cfg->break_every)) : 0;
	fcntl(from_parent, F_SETFL, O_NONBLOCK);
	for (;;) {
		for (int burst = 0; burst < 16 && sent < (uint64_t)cfg->nmsgs; burst++) {
			uint8_t tag;
			size_t len = build_msg(buf, cfg->role, sent, cfg->sizes, &tag);
			/* split into two iovecs to exercise gathering */
			struct iovec iov[2] = { { buf, len / 3 }, { buf + len / 3, len - len / 3 } };
			rc = dicom_send(ep, &dst, tag, iov, 2);
			if (rc == DICOM_EAGAIN) {
				eagain++;
				break;
			}
			if (rc != DICOM_OK) {
				printf("# peer %d: dicom_send: %s\n", cfg->role, dicom_strerror(rc));
				exit_code = 12;
				goto out;
			}
			sent++;
		}
		rc = dicom_progress(ep, on_msg, &st);
		if (rc < 0) {
			printf("# peer %d: dicom_progress: %s\n", cfg->role, dicom_strerror(rc));
			exit_code = 13;
			goto out;
		}
		/* Break at a random point of the stream: counted in messages
		 * moved, so breaks stay frequent without starving progress. */
		if (cfg->break_every && sent + st.expected >= next_break &&
		    sent + st.expected < 2 * (uint64_t)cfg->nmsgs) {
			dicom_ep_break_connections(ep);
			breaks++;
			next_break = sent + st.expected + 1 +
				     (uint64_t)(rand() % (2 * cfg->break_every));
		}
		if (st.errors) {
			exit_code = 14;
			goto out;
		}
		if (!done_signalled && sent == (uint64_t)cfg->nmsgs &&
		    st.expected == (uint64_t)cfg->nmsgs && !dicom_ep_busy(ep)) {
			char one = 1;
			if (write(to_parent, &one, 1) != 1)
				break;
			done_signalled = 1;
		}
		if (done_signalled) {
			/* keep serving (acks for the other side) until released */
			char c;
			ssize_t r = read(from_parent, &c, 1);
			if (r == 0)
				break;
			usleep(200);
		}
		if (test_now_ms() > deadline) {
			printf("# peer %d: timeout: sent %llu/%d, received %llu, busy %d\n", cfg->role,
			       (unsigned long long)sent, cfg->nmsgs,
			       (unsigned long long)st.expected, dicom_ep_busy(ep));
			exit_code = 15;
			goto out;
		}
	}
out:;
	struct dicom_ep_stats s;
	dicom_ep_stats(ep, &s);
	printf("# peer %d: sent %llu received %llu bytes_sent %llu breaks %llu reconnects %llu "
	       "retransmitted %llu duplicates %llu resolves %llu eagain %llu\n",
	       cfg->role, (unsigned long long)s.msgs_sent, (unsigned long long)s.msgs_delivered,
	       (unsigned long long)s.bytes_sent, (unsigned long long)breaks,
	       (unsigned long long)s.reconnects, (unsigned long long)s.retransmitted,
	       (unsigned long long)s.duplicates_dropped, (unsigned long long)s.resolves,
	       (unsigned long long)eagain);
	if (st.errors)
		printf("# peer %d: %d errors, first: %s\n", cfg->role, st.errors, st.first_error);
	fflush(stdout);
	dicom_ep_close(ep);
	free(buf);
	return exit_code;
}

/* Runs both sides in child processes; returns 1 if both succeeded. */
__attribute__((unused)) static int run_pair(const struct peer_cfg cfg[2], int timeout_s)
{
	int down[2][2], up[2][2];
	pid_t pid[2];
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		if (pipe(down[i]) < 0 || pipe(up[i]) < 0)
			return 0;
	}
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			for (int j = 0; j < 2; j++) {
				close(down[j][1]);
				close(up[j][0]);
				if (j != i) {
					close(down[j][0]);
					close(up[j][1]);
				}
			}
			int code = peer_run(&cfg[i], down[i][0], up[i][1]);
			fflush(stdout);
			_exit(code);
		}
	}
	for (int i = 0; i < 2; i++) {
		close(down[i][0]);
		close(up[i][1]);
		uint32_t other = (uint32_t)pid[1 - i];
		if (write(down[i][1], &other, sizeof(other)) != (ssize_t)sizeof(other))
			return 0;
	}
	/* Release both only when both are done, so neither stops acking early. */
	int done = 0, failed = 0;
	uint64_t deadline = test_now_ms() + (uint64_t)timeout_s * 1000;
	struct pollfd pf[2] = { { .fd = up[0][0], .events = POLLIN },
				{ .fd = up[1][0], .events = POLLIN } };
	while (done < 2 && !failed && test_now_ms() < deadline) {
		if (poll(pf, 2, 200) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (!pf[i].revents)
				continue;
			char c;
			if (read(pf[i].fd, &c, 1) == 1)
				done++;
			else
				failed = 1; /* child exited early */
			pf[i].fd = -1;
		}
	}
	for (int i = 0; i < 2; i++) {
		close(down[i][1]);
		close(up[i][0]);
	}
	int ok = done == 2;
	for (int i = 0; i < 2; i++) {
		int st;
		int waited = 0;
		for (int t = 0; t < 1000 && !waited; t++) {
			if (waitpid(pid[i], &st, WNOHANG) == pid[i])
				waited = 1;
			else
				usleep(10000);
		}
		if (!waited) {
			kill(pid[i], SIGKILL);
			waitpid(pid[i], &st, 0);
			ok = 0;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("# child %d exited with status %d\n", i,
			       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			ok = 0;
		}
	}
	return ok;
}

#endif
