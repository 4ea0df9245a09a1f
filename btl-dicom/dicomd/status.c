/* SPDX-License-Identifier: BSD-3-Clause */
/* STATUS: the daemon's tables as one JSON object, for dicomctl and the API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicomd.h"
#include "jbuf.h"
#include "sock.h"

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

int json_reply_begin(struct dicomd *d, struct dconn *c, struct jbuf *j, size_t max)
{
	/* The body stops 128 bytes short so the closing text always fits. */
	*j = (struct jbuf){ .cap = max - 128, .s = malloc(max) };
	if (!j->s) {
		dconn_send_error(d, c, DICOM_ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

void json_reply_end(struct dicomd *d, struct dconn *c, struct jbuf *j, size_t max,
		    uint8_t type, uint64_t seq)
{
	int full = j->full;
	j->full = 0;
	j->cap = max;
	jprintf(j, "],\"truncated\":%s}", full ? "true" : "false");
	struct dicom_frame rep = { .type = type, .length = (uint32_t)j->len, .seq = seq };
	dconn_send(d, c, &rep, j->s);
	free(j->s);
}

void status_reply(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct jbuf j;
	if (json_reply_begin(d, c, &j, DICOM_WIRE_MAX_STATUS) < 0)
		return;
	int64_t now = dicom_now_ns();
	char node[20], a[32];
	jb_ip(d->node, node, sizeof(node));
	jprintf(&j, "{\"node\":\"%s\",\"port\":%u,\"name\":\"%s\",\"pid\":%d,\"uptime_s\":%.3f,"
		    "\"connections\":%zu,\"pending\":%zu,",
		node, d->port, d->name, (int)getpid(), (double)(now - d->started_ns) / 1e9,
		d->nconns, d->npending);
	relay_status(d, &j);
	jprintf(&j, "\"endpoints\":[");
	struct dicom_addrmap_iter it = { 0 };
	dicom_addr_t key;
	struct endpoint *e;
	const char *sep = "";
	while ((e = dicom_addrmap_next(&d->endpoints, &it, &key))) {
		dicom_addr_format(&key, a, sizeof(a));
		jb_ip(e->node, node, sizeof(node));
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
		jb_ip(de->loc.node, node, sizeof(node));
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
		jb_ip(ce->loc.node, node, sizeof(node));
		jprintf(&j, "%s{\"addr\":\"%s\",\"node\":\"%s\",\"port\":%u,\"ttl_ms\":%lld}", sep, a,
			node, ce->loc.port, (long long)((ce->expires_ns - now) / 1000000));
		sep = ",";
	}
	json_reply_end(d, c, &j, DICOM_WIRE_MAX_STATUS, DICOM_FT_STATUS_REPLY, f->seq);
}
