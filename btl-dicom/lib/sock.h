/* SPDX-License-Identifier: BSD-3-Clause */
/* Small socket and clock helpers shared by the endpoint and the tools. */
#ifndef DICOM_SOCK_H
#define DICOM_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dicom_wire.h"

int64_t dicom_now_ns(void);
int dicom_set_nonblock(int fd);
/* Resolves the daemon's abstract socket name: explicit, $DICOM_DAEMON, default. */
const char *dicom_daemon_name(const char *explicit_name);
/* Connects to @name; returns an fd or -1 with errno set. */
int dicom_unix_connect(const char *name, int nonblock);
/* TCP_NODELAY, and large buffers where the kernel allows them. */
void dicom_tcp_tune(int fd);
/* Writes everything within timeout_ms (fd may be nonblocking); 0 or -1. */
int dicom_write_all(int fd, const void *buf, size_t len, int timeout_ms);
/* Reads one whole frame into buf (header + payload, at most cap bytes)
 * within timeout_ms.  Returns 0, or a DICOM_E* code with errno/reason in why. */
int dicom_read_frame(int fd, uint8_t *buf, size_t cap, struct dicom_frame *f,
		     int timeout_ms, char *why, size_t whylen);
/* Sends one frame with payload, blocking up to timeout_ms. */
int dicom_write_frame(int fd, const struct dicom_frame *f, const void *payload,
		      int timeout_ms);

#endif
