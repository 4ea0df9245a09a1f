/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Two nodes in one box: dicomd on 127.0.0.1 and on 127.0.0.2, same port,
 * as on a real cluster.  Covers remote LOOKUP with caching, the directory
 * following a process that re-registers on another node (LOCATION_UPDATE
 * to its home), and data flowing between endpoints of different nodes.
 * Only loopback addresses are used.
 */
#include <string.h>
#include <sys/socket.h>

#include "peer.h"
#include "sock.h"

static int raw_register(const char *daemon, uint8_t type, dicom_addr_t src, uint16_t port,
			struct dicom_frame *reg)
{
	int fd = raw_unix_connect(daemon);
	if (fd < 0)
		return -1;
	struct dicom_frame f = { .type = type, .src = src };
	uint8_t buf[256];
	char why[128];
	if (dicom_write_frame(fd, &f, NULL, 2000) < 0 ||
	    dicom_read_frame(fd, buf, sizeof(buf), reg, 2000, why, sizeof(why)) != DICOM_OK ||
	    reg->type != DICOM_FT_REGISTERED) {
		close(fd);
		return -1;
	}
	uint8_t loc[DICOM_WIRE_LOC_LEN];
	struct dicom_wire_loc l = { .node = reg->loc.node, .port = port, .state = DICOM_LOC_ACTIVE };
	dicom_wire_loc_encode(&l, loc);
	struct dicom_frame lf = { .type = DICOM_FT_LOCATION, .length = sizeof(loc), .src = reg->dst };
	if (dicom_write_frame(fd, &lf, loc, 2000) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int resolves_to(const char *daemon, const char *addr, const char *want, int timeout_ms)
{
	char json[1024];
	uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
	do {
		dicom_query_resolve(daemon, addr, json, sizeof(json));
		if (strstr(json, want))
			return 1;
		usleep(10000);
	} while (test_now_ms() < end);
	tap_diag("last answer from %s for %s: %s", daemon, addr, json);
	return 0;
}

int main(void)
{
	struct test_daemon a, b;
	if (!tap_ok(daemon_start(&a, "127.0.0.1") == 0, "dicomd A on 127.0.0.1") ||
	    !tap_ok(daemon_start_port(&b, "127.0.0.2", a.port) == 0,
		    "dicomd B on 127.0.0.2, same port %d", a.port)) {
		daemon_stop(&a);
		return tap_done();
	}

	/* This test process plays an endpoint homed on A. */
	struct dicom_frame reg;
	dicom_addr_t me = { 0, (uint32_t)getpid() };
	int fa = raw_register(a.name, DICOM_FT_REGISTER, me, 5555, &reg);
	tap_ok(fa >= 0 && reg.dst.home_node == 0x7f000001, "registered on A");
	dicom_addr_t home = reg.dst;
	char addr[32];
	dicom_addr_format(&home, addr, sizeof(addr));
	tap_ok(resolves_to(a.name, addr, "\"node\":\"127.0.0.1\",\"port\":5555", 2000),
	       "A resolves its own process");
	tap_ok(resolves_to(b.name, addr, "\"node\":\"127.0.0.1\",\"port\":5555", 2000),
	       "B resolves it through a LOOKUP to A");
	char json[8192];
	tap_ok(dicom_query_status(b.name, json, sizeof(json)) > 0 && strstr(json, "\"cache\":[{") &&
		       strstr(json, addr),
	       "B caches the answer");

	/* "Migrate": leave A, re-register the same home address on B. */
	close(fa);
	tap_ok(resolves_to(a.name, addr, "detached", 2000), "A marks it detached");
	int fb = raw_register(b.name, DICOM_FT_REREGISTER, home, 6666, &reg);
	tap_ok(fb >= 0 && reg.loc.node == 0x7f000002 && reg.dst.home_pid == home.home_pid,
	       "re-registered on B with the same home address");
	tap_ok(resolves_to(a.name, addr, "\"node\":\"127.0.0.2\",\"port\":6666", 3000),
	       "home A learned the new location (LOCATION_UPDATE)");
	tap_ok(wait_file_contains(a.log, "\"event\":\"location_update\"", 2000),
	       "A logged the location update");
	close(fb);
	tap_ok(resolves_to(a.name, addr, "detached", 3000),
	       "leaving B marks it detached at home again");

	/* Real endpoints on different nodes exchange messages. */
	struct peer_cfg cfg[2] = {
		{ .daemon = a.name, .nmsgs = 2000, .sizes = SIZES_MOSTLY_SMALL, .timeout_s = 60,
		  .role = 0, .peer_node = 0x7f000002 },
		{ .daemon = b.name, .nmsgs = 2000, .sizes = SIZES_MOSTLY_SMALL, .timeout_s = 60,
		  .role = 1, .peer_node = 0x7f000001, .break_every = 300 },
	};
	tap_ok(run_pair(cfg, 70), "endpoints on 127.0.0.1 and 127.0.0.2 exchange 2000 messages "
				  "each way (with breaks on one side)");
	tap_ok(file_contains(b.log, "\"event\":\"register\"") &&
		       dicom_query_status(b.name, json, sizeof(json)) > 0,
	       "B still healthy");
	tap_ok(daemon_stop(&b) == 0 && daemon_stop(&a) == 0, "both daemons exit 0 on SIGTERM");
	return tap_done();
}
