/* SPDX-License-Identifier: BSD-3-Clause */
/* dicom-run, the home stub: shared between its main loop and its relay. */
#ifndef DICOM_STUB_RUN_H
#define DICOM_STUB_RUN_H

#include <poll.h>

#include "framebuf.h"

#define RELAY_MAX_CHANNELS 32

struct home_channel {
	uint32_t id;
	int fd;
	struct framebuf pending; /* rank -> home service, not yet written */
};

struct relay {
	int conn;           /* the rank's tunnel; -1 while it is away */
	dicom_addr_t self;
	struct framebuf in, out;
	struct home_channel ch[RELAY_MAX_CHANNELS];
	int draining;       /* DRAIN seen: the close that follows is a migration */
	int exited, exit_status, lost, stdio_lost;
	int pending_signal;
	unsigned hellos, migrations;
};

void relay_init(struct relay *r);
int relay_accept(struct relay *r, int listen_fd);
int relay_poll_fds(struct relay *r, struct pollfd *pf, int max);
void relay_handle(struct relay *r, const struct pollfd *pf, int n);
void relay_signal(struct relay *r, int sig);

void run_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
