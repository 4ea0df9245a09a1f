/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The kernel backend (lib/kbackend.c).  Without the dicom_mbox module only
 * the mode checks run and the rest is skipped; the qemu guest of
 * `dicomctl kernel test --mpi` runs it with the module loaded: two
 * processes exchange messages of 0 B .. 1 MiB (fragmented above msg_max)
 * through their mailboxes, exactly once and in order, also across breaks
 * that make every stream start over with a HELLO.
 */
#include <linux/dicom_mbox.h>

#include "peer.h"

static char stats_log[] = "/tmp/dicom-kmbox-stats-XXXXXX";

/* Sums "key":N over the JSON lines the endpoints logged at close. */
static unsigned long long logged(const char *key, int *lines)
{
	FILE *f = fopen(stats_log, "r");
	char line[8192], pat[64];
	unsigned long long sum = 0;
	*lines = 0;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, pat);
		if (p) {
			sum += strtoull(p + strlen(pat), NULL, 10);
			(*lines)++;
		}
	}
	if (f)
		fclose(f);
	return sum;
}

static int open_with_mode(const char *daemon, const char *mode, char *err, size_t len)
{
	struct dicom_ep_opts opts = { .daemon_name = daemon };
	dicom_ep_t *ep = NULL;
	setenv(DICOM_KERNEL_MBOX_ENV, mode, 1);
	int rc = dicom_ep_open(&opts, &ep, err, len);
	dicom_ep_close(ep);
	unsetenv(DICOM_KERNEL_MBOX_ENV);
	return rc;
}

static void exchange(const char *daemon, const char *mode, int break_every, const char *what)
{
	struct peer_cfg cfg[2] = {
		{ .daemon = daemon, .nmsgs = 600, .sizes = SIZES_WIDE, .timeout_s = 150, .role = 0,
		  .break_every = break_every },
		{ .daemon = daemon, .nmsgs = 600, .sizes = SIZES_WIDE, .timeout_s = 150, .role = 1,
		  .break_every = break_every, .progress_thread = 1 },
	};
	int fd = open(stats_log, O_WRONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
	setenv(DICOM_KERNEL_MBOX_ENV, mode, 1);
	setenv(DICOM_STATS_LOG_ENV, stats_log, 1);
	uint64_t t0 = test_now_ms();
	tap_ok(run_pair(cfg, 160), "%s: 600 messages each way, 0 B..1 MiB, order and checksums", what);
	tap_diag("took %llu ms", (unsigned long long)(test_now_ms() - t0));
	unsetenv(DICOM_KERNEL_MBOX_ENV);
	unsetenv(DICOM_STATS_LOG_ENV);
}

int main(void)
{
	struct test_daemon d;
	char err[256] = "";
	if (!tap_ok(daemon_start(&d, NULL) == 0, "dicomd started"))
		return tap_done();
	int rc = open_with_mode(d.name, "sometimes", err, sizeof(err));
	tap_ok(rc == DICOM_EINVAL && strstr(err, "auto, on or off"),
	       "a bad %s is refused: %s", DICOM_KERNEL_MBOX_ENV, err);
	tap_ok(open_with_mode(d.name, "off", err, sizeof(err)) == DICOM_OK, "%s=off opens",
	       DICOM_KERNEL_MBOX_ENV);

	if (access(DICOM_MBOX_DEV, F_OK) != 0) {
		rc = open_with_mode(d.name, "on", err, sizeof(err));
		tap_ok(rc == DICOM_EIO && strstr(err, DICOM_MBOX_DEV) && strstr(err, "dicom_mbox"),
		       "%s=on without the device fails, naming it: %s", DICOM_KERNEL_MBOX_ENV, err);
		tap_ok(open_with_mode(d.name, "auto", err, sizeof(err)) == DICOM_OK,
		       "auto without the device opens (sockets)");
		tap_skip(DICOM_MBOX_DEV " is absent: the exchanges through the mailboxes run in the "
			 "qemu guest of `dicomctl kernel test --mpi`");
		tap_ok(daemon_stop(&d) == 0, "dicomd exits 0 on SIGTERM");
		return tap_done();
	}
	int fd = mkstemp(stats_log);
	if (fd >= 0)
		close(fd);
	tap_ok(open_with_mode(d.name, "on", err, sizeof(err)) == DICOM_OK, "%s=on opens: %s",
	       DICOM_KERNEL_MBOX_ENV, err);

	int lines;
	exchange(d.name, "on", 0, "mailbox");
	unsigned long long sent = logged("kernel_sent", &lines);
	unsigned long long got = logged("kernel_delivered", &lines);
	unsigned long long all = logged("msgs_delivered", &lines);
	tap_ok(lines == 2 && sent >= 1200 && got == 1200 && all == 1200,
	       "every message went through the mailboxes (kernel_sent %llu, kernel_delivered %llu "
	       "of %llu, %d endpoints)", sent, got, all, lines);

	exchange(d.name, "on", 150, "mailbox with breaks");
	got = logged("kernel_delivered", &lines);
	unsigned long long re = logged("retransmitted", &lines);
	tap_ok(lines == 2 && got == 1200,
	       "after breaks (each restarts the streams with a HELLO) all stays in the mailboxes "
	       "(kernel_delivered %llu, retransmitted %llu)", got, re);

	exchange(d.name, "off", 0, "sockets");
	sent = logged("kernel_sent", &lines);
	tap_ok(lines == 2 && sent == 0, "off: no message in the mailboxes (kernel_sent %llu)", sent);
	unlink(stats_log);
	tap_ok(daemon_stop(&d) == 0, "dicomd exits 0 on SIGTERM");
	return tap_done();
}
