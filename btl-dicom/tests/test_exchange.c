/* SPDX-License-Identifier: BSD-3-Clause */
/* Two endpoints in separate processes exchange thousands of messages of
 * 0 B .. 1 MiB through a real dicomd, in both directions at once. */
#include "peer.h"

int main(void)
{
	struct test_daemon d;
	if (!tap_ok(daemon_start(&d, NULL) == 0, "dicomd started"))
		return tap_done();
	struct peer_cfg cfg[2] = {
		{ .daemon = d.name, .nmsgs = 3000, .sizes = SIZES_WIDE, .timeout_s = 90, .role = 0 },
		{ .daemon = d.name, .nmsgs = 3000, .sizes = SIZES_WIDE, .timeout_s = 90, .role = 1 },
	};
	uint64_t t0 = test_now_ms();
	tap_ok(run_pair(cfg, 100), "3000 messages each way, 0 B..1 MiB, checksums and order verified");
	tap_diag("took %llu ms", (unsigned long long)(test_now_ms() - t0));

	/* A small window forces EAGAIN, and acks must free it even when the
	 * receiver side runs its progress from the DiCOM thread. */
	cfg[0].nmsgs = cfg[1].nmsgs = 2000;
	cfg[0].sizes = cfg[1].sizes = SIZES_MOSTLY_SMALL;
	cfg[0].window = cfg[1].window = 256 << 10;
	cfg[1].progress_thread = 1;
	t0 = test_now_ms();
	tap_ok(run_pair(cfg, 100), "256 KiB window with a progress thread on one side");
	tap_diag("took %llu ms", (unsigned long long)(test_now_ms() - t0));
	tap_ok(daemon_stop(&d) == 0, "dicomd exits 0 on SIGTERM");
	return tap_done();
}
