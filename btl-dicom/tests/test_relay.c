/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicomd's relay frames on a host without the dicom_mbox driver (the two
 * qemu guests of `dicomctl kernel test --relay` cover the driver itself).
 * The test plays another node's dicomd at 127.0.0.2: it connects from that
 * address and listens on it, at the same port as the dicomd under test.
 *   - A RELAY that opens a stream is refused with NOT_HERE (aux =
 *     EHOSTUNREACH, no relay here), carried back as a RELAY to its node.
 *   - A RELAY that is itself a reply is not answered (no ping-pong).
 *   - A RELAY whose sender is not homed where the connection comes from is
 *     dropped and logged, and the connection keeps working.
 *   - STATUS says the relay is not attached; --relay on fails without the
 *     driver, --relay with a bad value is a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dicom.h"
#include "addrmap.h"
#include "dicom_wire.h"
#include "harness.h"

#define PEER_NODE "127.0.0.2"

static uint32_t ip(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return ntohl(a.s_addr);
}

static int bound_socket(const char *node, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(ip(node)) };
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A connection to the dicomd under test from PEER_NODE. */
static int connect_from_peer(int port)
{
	int fd = bound_socket(PEER_NODE, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_frame(int fd, const struct dicom_frame *f, const void *payload)
{
	uint8_t buf[DICOM_WIRE_HDR_LEN * 2];
	size_t n = dicom_frame_encode(f, payload, buf, sizeof(buf));
	return n && write(fd, buf, n) == (ssize_t)n ? 0 : -1;
}

/* One frame from fd within timeout_ms into f (payload in buf); 0 or -1. */
static int read_frame(int fd, uint8_t *buf, size_t cap, struct dicom_frame *f, int timeout_ms)
{
	size_t have = 0;
	uint64_t until = test_now_ms() + (uint64_t)timeout_ms;
	while (test_now_ms() < until) {
		int r = dicom_frame_decode(buf, have, f);
		if (r == DICOM_DECODE_OK)
			return 0;
		if (r != DICOM_DECODE_NEED_MORE || have == cap)
			return -1;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 100) != 1)
			continue;
		ssize_t n = read(fd, buf + have, cap - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
	}
	return -1;
}

/* The dicomd under test connects to PEER_NODE's port to answer; accept it. */
static int accept_within(int listener, int timeout_ms)
{
	struct pollfd pf = { .fd = listener, .events = POLLIN };
	if (poll(&pf, 1, timeout_ms) != 1)
		return -1;
	return accept(listener, NULL, NULL);
}

int main(void)
{
	struct test_daemon d;
	int port = free_port("127.0.0.1");
	if (access("/dev/dicom/relay", F_OK) == 0) {
		tap_skip("the dicom_mbox driver is loaded here; this test is for a node without it");
		return tap_done();
	}
	if (daemon_start_port(&d, "127.0.0.1", port) < 0) {
		tap_ok(0, "dicomd starts");
		return tap_done();
	}
	int listener = bound_socket(PEER_NODE, port);
	if (listener < 0 || listen(listener, 4) < 0) {
		tap_ok(0, "listen on %s:%d as the other node's dicomd: %s", PEER_NODE, port,
		       strerror(errno));
		daemon_stop(&d);
		return tap_done();
	}
	int c = connect_from_peer(port);
	tap_ok(c >= 0, "connected to the dicomd from %s", PEER_NODE);

	/* A HELLO from a process homed at PEER_NODE to one homed here. */
	dicom_addr_t sender = { ip(PEER_NODE), 4242 }, dest = { ip("127.0.0.1"), 999 };
	struct dicom_frame hello = { .type = DICOM_FT_HELLO, .seq = 1, .src = sender, .dst = dest };
	uint8_t msg[DICOM_WIRE_HDR_LEN];
	dicom_frame_encode_header(&hello, msg);
	struct dicom_frame relay = { .type = DICOM_FT_RELAY, .length = sizeof(msg), .aux = 0,
				     .src = sender, .dst = dest };
	tap_ok(send_frame(c, &relay, msg) == 0, "sent a RELAY carrying a HELLO");
	int back = accept_within(listener, 3000);
	tap_ok(back >= 0, "the dicomd connects back to %s:%d to answer", PEER_NODE, port);
	uint8_t buf[4096];
	struct dicom_frame f, inner;
	int got = back >= 0 && read_frame(back, buf, sizeof(buf), &f, 3000) == 0;
	tap_ok(got && f.type == DICOM_FT_RELAY && dicom_addr_eq(f.src, dest) &&
		       dicom_addr_eq(f.dst, sender),
	       "the answer is a RELAY from the destination to the sender (type %u)", got ? f.type : 0);
	int ok = got && f.length == DICOM_WIRE_HDR_LEN &&
		 dicom_frame_decode_header(f.payload, f.length, &inner) == DICOM_DECODE_OK;
	tap_ok(ok && inner.type == DICOM_FT_NOT_HERE && inner.aux == EHOSTUNREACH &&
		       dicom_addr_eq(inner.src, dest) && dicom_addr_eq(inner.dst, sender),
	       "it carries NOT_HERE with aux EHOSTUNREACH (%u), so the sender moves to sockets",
	       ok ? inner.aux : 0);

	/* An ACK is a reply: no answer, or two nodes would bounce refusals. */
	struct dicom_frame ack = { .type = DICOM_FT_ACK, .ack = 5, .src = sender, .dst = dest };
	dicom_frame_encode_header(&ack, msg);
	send_frame(c, &relay, msg);
	/* A forgery: a sender homed at 127.0.0.3 does not come from 127.0.0.2. */
	dicom_addr_t forged = { ip("127.0.0.3"), 77 };
	hello.src = forged;
	dicom_frame_encode_header(&hello, msg);
	struct dicom_frame spoof = relay;
	spoof.src = forged;
	send_frame(c, &spoof, msg);
	tap_ok(back < 0 || read_frame(back, buf, sizeof(buf), &f, 1000) < 0,
	       "neither a relayed ACK nor a forged sender is answered");
	tap_ok(wait_file_contains(d.log, "sender is not homed where the connection comes from",
				  3000),
	       "the forgery is logged");
	struct dicom_frame lookup = { .type = DICOM_FT_LOOKUP, .seq = 9, .src = { ip(PEER_NODE), 0 },
				      .dst = dest };
	send_frame(c, &lookup, NULL);
	got = read_frame(c, buf, sizeof(buf), &f, 3000) == 0;
	tap_ok(got && f.type == DICOM_FT_LOOKUP_REPLY && f.seq == 9,
	       "the connection still answers a LOOKUP afterwards");

	char status[8192];
	int n = dicom_query_status(d.name, status, sizeof(status));
	tap_ok(n > 0 && strstr(status, "\"relay\":{\"attached\":false}") != NULL,
	       "STATUS: the relay is not attached");
	if (back >= 0)
		close(back);
	close(c);
	close(listener);
	tap_ok(daemon_stop(&d) == 0, "dicomd exits 0 on SIGTERM");

	char out[4096];
	char name[64], free[16];
	snprintf(name, sizeof(name), "dicom-relay-on-%d", (int)getpid());
	snprintf(free, sizeof(free), "%d", free_port("127.0.0.1"));
	const char *on[] = { "--name", name, "--port", free, "--relay", "on", NULL };
	int rc = run_dicomd(on, out, sizeof(out));
	tap_ok(rc == 1 && strstr(out, "relay_unavailable") && strstr(out, "/dev/dicom/relay"),
	       "--relay on without the driver: exit %d, says why", rc);
	const char *bad[] = { "--relay", "sometimes", NULL };
	rc = run_dicomd(bad, out, sizeof(out));
	tap_ok(rc == 2 && strstr(out, "--relay sometimes: use auto, on or off"),
	       "--relay sometimes: usage error (exit %d)", rc);
	return tap_done();
}
