/* SPDX-License-Identifier: BSD-3-Clause */
/* Text form of a DiCOM address: "a.b.c.d:pid". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom.h"

DICOM_API int dicom_addr_format(const dicom_addr_t *a, char *buf, size_t len)
{
	if (!a || !buf || !len)
		return DICOM_EINVAL;
	uint32_t n = a->home_node;
	int r = snprintf(buf, len, "%u.%u.%u.%u:%u", (n >> 24) & 0xff,
			 (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff, a->home_pid);
	if (r < 0 || (size_t)r >= len)
		return DICOM_EINVAL;
	return r;
}

/* Parses a decimal field with no sign, no leading spaces and no overflow past
 * max; returns the end pointer or NULL. */
static const char *parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (*s < '0' || *s > '9')
		return NULL;
	unsigned long v = 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max || p - s > 10)
			return NULL;
		p++;
	}
	*out = v;
	return p;
}

DICOM_API int dicom_addr_parse(const char *s, dicom_addr_t *out)
{
	if (!s || !out)
		return DICOM_EINVAL;
	uint32_t node = 0;
	const char *p = s;
	for (int i = 0; i < 4; i++) {
		unsigned long octet;
		p = parse_uint(p, 255, &octet);
		if (!p)
			return DICOM_EINVAL;
		node = (node << 8) | (uint32_t)octet;
		if (*p != (i < 3 ? '.' : ':'))
			return DICOM_EINVAL;
		p++;
	}
	unsigned long pid;
	p = parse_uint(p, 0xfffffffful, &pid);
	if (!p || *p != '\0')
		return DICOM_EINVAL;
	out->home_node = node;
	out->home_pid = (uint32_t)pid;
	return DICOM_OK;
}
