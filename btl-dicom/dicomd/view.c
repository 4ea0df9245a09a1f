/* SPDX-License-Identifier: BSD-3-Clause */
/* VIEW: the gossip view (this node and every node it has heard of, with the
 * age of what it knows) as one JSON object, for dicomctl, the API and the
 * policy engine. */
#include <stdio.h>
#include <stdlib.h>

#include "dicomd.h"
#include "jbuf.h"
#include "sock.h"

/* One entry's JSON: at most DICOM_LOAD_MAX_PROCS processes or
 * DICOM_LOAD_MAX_PAIRS pairs of about 130 characters each. */
#define ENTRY_JSON_MAX (64u << 10)

static void entry_json(struct jbuf *j, struct gossip *g, const struct gossip_entry *e,
		       int self, int64_t now)
{
	char node[20], a[32], b[32];
	jb_ip(e->node, node, sizeof(node));
	const struct dicom_wire_load *l = g->scratch;
	if (dicom_load_decode(e->payload, e->len, g->scratch) != DICOM_DECODE_OK) {
		/* only validated payloads are stored; this cannot happen */
		jprintf(j, "{\"node\":\"%s\",\"error\":\"undecodable entry\"}", node);
		return;
	}
	jprintf(j, "{\"node\":\"%s\",\"self\":%s,\"age_ms\":%lld,\"sampled_at_ms\":%llu,\"runnable\":%u,"
		   "\"load\":%.3f,\"cpus\":%.3f,\"mem_free_kib\":%llu,\"mem_total_kib\":%llu,\"procs\":[",
		node, self ? "true" : "false", (long long)(gossip_age(e, now) / 1000000),
		(unsigned long long)(e->sample / 1000000), l->runnable, l->load_milli / 1000.0,
		l->cpu_milli / 1000.0, (unsigned long long)l->mem_free_kib,
		(unsigned long long)l->mem_total_kib);
	for (uint16_t i = 0; i < l->nprocs; i++) {
		const struct dicom_wire_proc *p = &l->procs[i];
		char rank[16] = "null";
		if (p->rank != DICOM_RANK_UNKNOWN)
			snprintf(rank, sizeof(rank), "%u", p->rank);
		dicom_addr_format(&p->addr, a, sizeof(a));
		/* job labels are restricted on the wire to text that needs no escaping */
		jprintf(j, "%s{\"addr\":\"%s\",\"pid\":%u,\"rank\":%s,\"job\":\"%s\",\"cpu\":%.3f}",
			i ? "," : "", a, p->pid, rank, p->job, p->cpu_permille / 1000.0);
	}
	jprintf(j, "],\"pairs\":[");
	for (uint16_t i = 0; i < l->npairs; i++) {
		const struct dicom_wire_pair *p = &l->pairs[i];
		dicom_addr_format(&p->src, a, sizeof(a));
		dicom_addr_format(&p->dst, b, sizeof(b));
		jprintf(j, "%s{\"src\":\"%s\",\"dst\":\"%s\",\"bytes\":%llu,\"rate\":%llu}",
			i ? "," : "", a, b, (unsigned long long)p->bytes,
			(unsigned long long)p->rate);
	}
	jprintf(j, "]}");
}

void view_reply(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct gossip *g = d->gossip;
	struct jbuf j;
	if (json_reply_begin(d, c, &j, DICOM_WIRE_MAX_VIEW) < 0)
		return;
	int64_t now = dicom_now_ns();
	char node[20];
	jb_ip(d->node, node, sizeof(node));
	jprintf(&j, "{\"node\":\"%s\",\"period_ms\":%lld,\"window\":%u,\"max_age_ms\":%lld,"
		    "\"stats\":{\"rounds\":%llu,\"frames_sent\":%llu,\"frames_received\":%llu,"
		    "\"stale\":%llu,\"expired\":%llu,\"rejected\":%llu},\"peers\":[",
		node, (long long)(g->cfg.period_ns / 1000000), g->cfg.window,
		(long long)(g->cfg.max_age_ns / 1000000), (unsigned long long)g->rounds,
		(unsigned long long)g->frames_sent, (unsigned long long)g->frames_received,
		(unsigned long long)g->stale, (unsigned long long)g->expired,
		(unsigned long long)g->rejected);
	for (size_t i = 0; i < g->npeers; i++) {
		const struct gossip_peer *p = &g->peers[i];
		jb_ip(p->node, node, sizeof(node));
		int64_t wait = p->retry_ns > now ? (p->retry_ns - now) / 1000000 : 0;
		jprintf(&j, "%s{\"node\":\"%s\",\"failures\":%u,\"retry_in_ms\":%lld}", i ? "," : "",
			node, p->failures, (long long)wait);
	}
	jprintf(&j, "],\"entries\":[");
	/* Each entry is written whole or not at all, so a truncated view is
	 * still valid JSON. */
	struct jbuf e = { .cap = ENTRY_JSON_MAX };
	e.s = malloc(ENTRY_JSON_MAX);
	const char *sep = "";
	for (size_t i = 0; e.s && i <= g->nentries; i++) {
		const struct gossip_entry *ge = i == 0 ? &g->self : &g->entries[i - 1];
		if (!ge->len || ge->expired_ns)
			continue;
		e.len = 0;
		e.full = 0;
		entry_json(&e, g, ge, i == 0, now);
		if (!e.full)
			jprintf(&j, "%s%s", sep, e.s);
		sep = ",";
	}
	free(e.s);
	json_reply_end(d, c, &j, DICOM_WIRE_MAX_VIEW, DICOM_FT_VIEW_REPLY, f->seq);
}
