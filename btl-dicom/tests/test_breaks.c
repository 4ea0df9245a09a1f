/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * THE reliability test: both sides drop every connection (data, listener
 * and daemon link) at random moments while 20000 messages flow each way.
 * Each break forces a reconnect, a re-registration on a new port, a
 * re-resolution by the peer and retransmission of whatever was unacked.
 * The receiver asserts exactly-once, in-order delivery and checksums.
 */
#include "peer.h"

int main(void)
{
	struct test_daemon d;
	if (!tap_ok(daemon_start(&d, NULL) == 0, "dicomd started"))
		return tap_done();
	struct peer_cfg cfg[2] = {
		{ .daemon = d.name, .nmsgs = 20000, .sizes = SIZES_MOSTLY_SMALL, .break_every = 200,
		  .window = 1 << 20, .timeout_s = 120, .role = 0 },
		{ .daemon = d.name, .nmsgs = 20000, .sizes = SIZES_MOSTLY_SMALL, .break_every = 200,
		  .window = 1 << 20, .timeout_s = 120, .role = 1, .progress_thread = 1 },
	};
	uint64_t t0 = test_now_ms();
	tap_ok(run_pair(cfg, 130),
	       "20000 messages each way with random connection breaks on both sides: "
	       "exactly once, in order, checksums ok");
	tap_diag("took %llu ms", (unsigned long long)(test_now_ms() - t0));
	tap_ok(file_contains(d.log, "\"event\":\"reregister\""),
	       "endpoints re-registered with the same home address after breaks");
	tap_ok(daemon_stop(&d) == 0, "dicomd exits 0 on SIGTERM");
	return tap_done();
}
