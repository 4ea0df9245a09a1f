/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Buffered frame I/O over one nonblocking socket, shared by both ends of the
 * home-stub tunnel (dicom-run and the shim inside the rank).  Frames are the
 * STUB_* frames of dicom_wire.h.
 */
#ifndef DICOM_STUB_FRAMEBUF_H
#define DICOM_STUB_FRAMEBUF_H

#include <stddef.h>
#include <stdint.h>

#include "dicom_wire.h"

struct framebuf {
	uint8_t *buf;
	size_t len, off, cap;
};

/* Appends one frame; -1 when out of memory. */
int framebuf_put(struct framebuf *b, uint8_t type, uint32_t aux, dicom_addr_t src,
		 const void *payload, size_t n);
/* Appends raw bytes (a byte queue rather than frames); -1 when out of memory. */
int framebuf_append(struct framebuf *b, const void *data, size_t n);
/* Sends what the socket takes now; -1 when the connection is broken. */
int framebuf_send(struct framebuf *b, int fd);
static inline size_t framebuf_pending(const struct framebuf *b)
{
	return b->len - b->off;
}
void framebuf_clear(struct framebuf *b);
void framebuf_free(struct framebuf *b);

/* Reads what is there: 1 read something, 0 nothing now, -1 EOF or error. */
int framebuf_recv(struct framebuf *b, int fd);
/* Takes the next complete frame: 1 got one (payload points into b until the
 * next call), 0 need more, -1 the peer sent garbage. */
int framebuf_next(struct framebuf *b, struct dicom_frame *f);

/* Blocking TCP connect to "a.b.c.d:port" with a timeout; fd or -1. */
int stub_tcp_connect(const char *hostport, int timeout_ms);
int stub_parse_hostport(const char *s, uint32_t *ip, uint16_t *port);

#endif
