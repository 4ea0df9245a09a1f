/* SPDX-License-Identifier: BSD-3-Clause */
/* STATUS: the daemon's tables as one JSON object, for dicomctl and the API. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicomd.h"
#include "sock.h"

struct jbuf {
	char *s;
	size_t len, cap;
	int full;
};

__attribute__((format(printf, 2, 3)))
static void jprintf(struct jbuf *j, const char *fmt, ...)
{
	if (j->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(j->s + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	/* Leave room for closing the arrays and the object. */
	if (n < 0 || j->len + (size_t)n + 64 >= j->cap) {
		j->s[j->len] = '\0';
		j->full = 1;
		return;
	}
	j->len += (size_t)n;
}

static const char *state_name(uint8_t s)
{
	switch (s) {
	case DICOM_LOC_ACTIVE: return "active";
	case DICOM_LOC_DETACHED: return "detached";
	case DICOM_LOC_NOT_FOUND: return "not_found";
	case DICOM_LOC_UNREACHABLE: return "unreachable";
	default: return "none";
	}
}

static void ip(uint32_t n, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", (n >> 24) & 0xff, (n >> 16) & 0xff,
		 (n >> 8) & 0xff, n & 0xff);
}

void status_reply(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	/* The body stops 128 bytes short so the closing text always fits. */
	struct jbuf j = { .cap = DICOM_WIRE_MAX_STATUS - 128 };
	j.s = malloc(DICOM_WIRE_MAX_STATUS);
	if (!j.s) {
		dconn_send_error(d, c, DICOM_ENOMEM, "out of memory");
		return;
	}
	int64_t now = dicom_now_ns();
	char node[20], a[32];
	ip(d->node, node, sizeof(node));
	jprintf(&j, "{\"node\":\"%s\",\"port\":%u,\"name\":\"%s\",\"pid\":%d,\"uptime_s\":%.3f,"
		    "\"connections\":%zu,\"pending\":%zu,\"endpoints\":[",
		node, d->port, d->name, (int)getpid(), (double)(now - d->started_ns) / 1e9,
		d->nconns, d->npending);
	struct dicom_addrmap_iter it = { 0 };
	dicom_addr_t key;
	struct endpoint *e;
	const char *sep = "";
	while ((e = dicom_addrmap_next(&d->endpoints, &it, &key))) {
		dicom_addr_format(&key, a, sizeof(a));
		ip(e->node, node, sizeof(node));
		jprintf(&j, "%s{\"addr\":\"%s\",\"pid\":%d,\"node\":\"%s\",\"port\":%u,\"age_s\":%.3f}",
			sep, a, (int)e->pid, node, e->port, (double)(now - e->since_ns) / 1e9);
		sep = ",";
	}
	jprintf(&j, "],\"directory\":[");
	struct dicom_addrmap_iter di = { 0 };
	struct dir_entry *de;
	sep = "";
	while ((de = dicom_addrmap_next(&d->directory, &di, &key))) {
		dicom_addr_format(&key, a, sizeof(a));
		ip(de->loc.node, node, sizeof(node));
		jprintf(&j, "%s{\"addr\":\"%s\",\"node\":\"%s\",\"port\":%u,\"state\":\"%s\"}", sep,
			a, node, de->loc.port, state_name(de->loc.state));
		sep = ",";
	}
	jprintf(&j, "],\"cache\":[");
	struct dicom_addrmap_iter ci = { 0 };
	struct cache_entry *ce;
	sep = "";
	while ((ce = dicom_addrmap_next(&d->cache, &ci, &key))) {
		dicom_addr_format(&key, a, sizeof(a));
		ip(ce->loc.node, node, sizeof(node));
		jprintf(&j, "%s{\"addr\":\"%s\",\"node\":\"%s\",\"port\":%u,\"ttl_ms\":%lld}", sep, a,
			node, ce->loc.port, (long long)((ce->expires_ns - now) / 1000000));
		sep = ",";
	}
	int full = j.full;
	j.full = 0;
	j.cap = DICOM_WIRE_MAX_STATUS;
	jprintf(&j, "],\"truncated\":%s}", full ? "true" : "false");
	struct dicom_frame rep = { .type = DICOM_FT_STATUS_REPLY, .length = (uint32_t)j.len,
				   .seq = f->seq };
	dconn_send(d, c, &rep, j.s);
	free(j.s);
}
