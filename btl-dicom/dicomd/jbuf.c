/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdarg.h>
#include <stdio.h>

#include "jbuf.h"

void jprintf(struct jbuf *j, const char *fmt, ...)
{
	if (j->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(j->s + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	if (n < 0 || j->len + (size_t)n + 64 >= j->cap) {
		j->s[j->len] = '\0';
		j->full = 1;
		return;
	}
	j->len += (size_t)n;
}

void jb_ip(uint32_t n, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", (n >> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff,
		 n & 0xff);
}
