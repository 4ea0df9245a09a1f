/* SPDX-License-Identifier: BSD-3-Clause */
/* A bounded JSON text buffer for dicomd's replies (STATUS, VIEW). */
#ifndef DICOMD_JBUF_H
#define DICOMD_JBUF_H

#include <stddef.h>
#include <stdint.h>

struct jbuf {
	char *s;
	size_t len, cap;
	int full;
};

/* Appends unless the text would come within 64 bytes of cap; then marks the
 * buffer full and ignores everything after, so the caller can still close
 * its arrays and objects (after raising cap) in the space left. */
__attribute__((format(printf, 2, 3)))
void jprintf(struct jbuf *j, const char *fmt, ...);

/* Dotted quad of a host-order IPv4 address. */
void jb_ip(uint32_t node, char *buf, size_t len);

#endif
