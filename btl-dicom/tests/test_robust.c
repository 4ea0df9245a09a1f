/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicomd under hostile input: garbage, wrong magic, wrong version,
 * oversized and truncated frames, frames of the wrong kind, a frame cut by
 * EOF, a stalled half frame and a forged pid, on both the TCP peer port and
 * the unix socket.  Each must cost only its own connection (with an ERROR
 * frame and a log line) while dicomd keeps serving everyone else.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dicom_wire.h"
#include "harness.h"

static struct test_daemon d;

static size_t frame(uint8_t *buf, uint8_t type, uint32_t length)
{
	struct dicom_frame f = { .type = type, .length = length };
	dicom_frame_encode_header(&f, buf);
	return DICOM_WIRE_HDR_LEN;
}

/* Sends bytes on a fresh connection; 1 if dicomd answered with an ERROR
 * frame (when want_error) and closed the connection. */
static int send_bad(int tcp, const void *bytes, size_t len, int want_error, int shut)
{
	int fd = tcp ? raw_tcp_connect(d.node, d.port) : raw_unix_connect(d.name);
	if (fd < 0)
		return 0;
	int ok = send(fd, bytes, len, MSG_NOSIGNAL) == (ssize_t)len;
	if (shut)
		shutdown(fd, SHUT_WR);
	static uint8_t reply[1 << 16];
	ssize_t n = read_until_eof(fd, reply, sizeof(reply), 3000);
	close(fd);
	if (!ok || n < 0)
		return 0; /* still open: dicomd did not drop it */
	if (!want_error)
		return 1;
	struct dicom_frame f;
	return dicom_frame_decode(reply, (size_t)n, &f) == DICOM_DECODE_OK &&
	       f.type == DICOM_FT_ERROR;
}

static void hostile(int tcp)
{
	const char *where = tcp ? "TCP port" : "unix socket";
	uint8_t b[256];
	const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	tap_ok(send_bad(tcp, http, strlen(http), 1, 0), "%s: garbage text -> ERROR + close", where);

	frame(b, DICOM_FT_STATUS, 0);
	b[3] = 'X';
	tap_ok(send_bad(tcp, b, DICOM_WIRE_HDR_LEN, 1, 0), "%s: wrong magic -> ERROR + close", where);

	frame(b, DICOM_FT_STATUS, 0);
	b[4] = 9;
	tap_ok(send_bad(tcp, b, DICOM_WIRE_HDR_LEN, 1, 0), "%s: wrong version -> ERROR + close", where);

	frame(b, DICOM_FT_LOOKUP, 1u << 30);
	tap_ok(send_bad(tcp, b, DICOM_WIRE_HDR_LEN, 1, 0), "%s: oversized length -> ERROR + close",
	       where);

	frame(b, DICOM_FT_DATA, 1u << 20);
	tap_ok(send_bad(tcp, b, DICOM_WIRE_HDR_LEN, 1, 0),
	       "%s: a DATA frame (wrong kind, 1 MiB claimed) -> ERROR + close", where);

	frame(b, tcp ? DICOM_FT_LOCATION_UPDATE : DICOM_FT_LOCATION, 4);
	memset(b + DICOM_WIRE_HDR_LEN, 0, 4);
	tap_ok(send_bad(tcp, b, DICOM_WIRE_HDR_LEN + 4, 1, 0),
	       "%s: truncated fixed part -> ERROR + close", where);

	frame(b, tcp ? DICOM_FT_LOOKUP : DICOM_FT_STATUS, 0);
	tap_ok(send_bad(tcp, b, 20, 0, 1), "%s: frame cut by EOF -> closed", where);

	static uint8_t noise[65536];
	srand(tcp ? 1 : 2);
	for (size_t i = 0; i < sizeof(noise); i++)
		noise[i] = (uint8_t)rand();
	tap_ok(send_bad(tcp, noise, sizeof(noise), 0, 0), "%s: 64 KiB of random bytes -> closed", where);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!tap_ok(daemon_start(&d, NULL) == 0, "dicomd started"))
		return tap_done();

	/* A client that sends half a header and then nothing must not block
	 * anyone: keep it open through everything below. */
	uint8_t half[DICOM_WIRE_HDR_LEN];
	frame(half, DICOM_FT_STATUS, 0);
	int stalled_unix = raw_unix_connect(d.name);
	int stalled_tcp = raw_tcp_connect(d.node, d.port);
	tap_ok(stalled_unix >= 0 && stalled_tcp >= 0 && write(stalled_unix, half, 10) == 10 &&
		       write(stalled_tcp, half, 10) == 10,
	       "two clients stall in the middle of a header");

	hostile(1);
	hostile(0);

	/* A process may only register its own pid (SO_PEERCRED). */
	uint8_t b[DICOM_WIRE_HDR_LEN];
	struct dicom_frame f = { .type = DICOM_FT_REGISTER, .src = { 0, 1 } };
	dicom_frame_encode_header(&f, b);
	tap_ok(send_bad(0, b, sizeof(b), 1, 0), "REGISTER with a forged pid -> ERROR + close");
	tap_ok(wait_file_contains(d.log, "is not the connecting process", 2000),
	       "forged pid is logged");

	const char *expect_logs[] = {
		"bad magic 47 45 54 20",
		"wrong version 9 (expected 1)",
		"LOOKUP frame length 1073741824 exceeds its limit 0",
		"frame type DATA (3) is not accepted on the peer port",
		"frame type DATA (3) is not accepted on the unix socket",
		"LOCATION_UPDATE frame length 4 is shorter than its fixed part 8",
		"LOCATION frame length 4 is shorter than its fixed part 8",
		"connection closed inside a frame (20 bytes of it received)",
	};
	for (size_t i = 0; i < sizeof(expect_logs) / sizeof(expect_logs[0]); i++)
		tap_ok(wait_file_contains(d.log, expect_logs[i], 2000), "logged: %s", expect_logs[i]);
	tap_ok(file_contains(d.log, "\"level\":\"warn\",\"event\":\"bad_frame\""),
	       "bad frames are logged as warn/bad_frame");

	/* dicomd still serves: a fresh endpoint registers and resolves. */
	tap_ok(kill(d.pid, 0) == 0, "dicomd is still running");
	struct dicom_ep_opts opts = { .daemon_name = d.name };
	dicom_ep_t *ep;
	char err[256], json[4096], addr[32];
	int rc = dicom_ep_open(&opts, &ep, err, sizeof(err));
	tap_ok(rc == DICOM_OK, "a fresh endpoint registers (%s)", err);
	if (rc == DICOM_OK) {
		dicom_addr_t a = dicom_ep_addr(ep);
		dicom_addr_format(&a, addr, sizeof(addr));
		rc = dicom_query_resolve(d.name, addr, json, sizeof(json));
		tap_ok(rc > 0 && strstr(json, "\"state\":\"active\""), "and resolves: %s", json);
		dicom_ep_close(ep);
	}
	rc = dicom_query_status(d.name, json, sizeof(json));
	tap_ok(rc > 0, "status still answers");
	/* the stalled clients are still connected, unharmed and harmless */
	close(stalled_unix);
	close(stalled_tcp);
	tap_ok(daemon_stop(&d) == 0, "dicomd exits 0 on SIGTERM after all of it");
	return tap_done();
}
