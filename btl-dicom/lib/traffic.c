/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The endpoint tells its local dicomd, periodically, who it is (MPI rank and
 * job, from the environment the launcher gave it) and how many bytes it sent
 * to each peer.  dicomd turns the byte counts into rates and gossips them, so
 * a placement policy can keep heavily communicating ranks together.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ep_internal.h"

#define DICOM_TRAFFIC_PERIOD_NS 500000000LL

static const char *first_env(const char *const *names)
{
	for (; *names; names++) {
		const char *v = getenv(*names);
		if (v && *v)
			return v;
	}
	return NULL;
}

void dicom_traffic_identify(dicom_ep_t *ep)
{
	/* DICOM_JOB lets a launcher name the job as the control plane knows
	 * it; otherwise the MPI library's own job id serves. */
	static const char *const jobs[] = { "DICOM_JOB", "PMIX_NAMESPACE",
					    "OMPI_MCA_ess_base_jobid", NULL };
	static const char *const ranks[] = { "OMPI_COMM_WORLD_RANK", "PMIX_RANK", NULL };
	dicom_job_label(first_env(jobs), ep->job);
	ep->rank = DICOM_RANK_UNKNOWN;
	const char *r = first_env(ranks);
	if (r) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(r, &end, 10);
		if (!errno && *end == '\0' && v < DICOM_RANK_UNKNOWN)
			ep->rank = (uint32_t)v;
	}
	ep->traffic_next = 0;
	dicom_ep_timer_at(ep, 0);
}

static int heavier_first(const void *a, const void *b)
{
	const struct dicom_wire_traffic_pair *x = a, *y = b;
	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static void report(dicom_ep_t *ep)
{
	size_t n = 0;
	for (struct out_peer *p = ep->outs; p; p = p->next)
		n++;
	struct dicom_wire_traffic_pair *all = n ? malloc(n * sizeof(*all)) : NULL;
	struct dicom_wire_traffic *t = malloc(sizeof(*t));
	uint8_t *payload = malloc(DICOM_WIRE_MAX_TRAFFIC);
	if ((n && !all) || !t || !payload)
		goto out; /* the next period tries again */
	size_t i = 0;
	for (struct out_peer *p = ep->outs; p; p = p->next)
		all[i++] = (struct dicom_wire_traffic_pair){ p->st.dst, p->bytes_sent };
	if (n > DICOM_TRAFFIC_MAX_PAIRS)
		qsort(all, n, sizeof(*all), heavier_first);
	t->rank = ep->rank;
	memcpy(t->job, ep->job, sizeof(t->job));
	t->npairs = (uint16_t)(n < DICOM_TRAFFIC_MAX_PAIRS ? n : DICOM_TRAFFIC_MAX_PAIRS);
	if (t->npairs)
		memcpy(t->pairs, all, t->npairs * sizeof(*all));
	size_t len = dicom_traffic_encode(t, payload, DICOM_WIRE_MAX_TRAFFIC);
	struct dicom_frame f = { .type = DICOM_FT_TRAFFIC, .length = (uint32_t)len,
				 .src = ep->self };
	if (len && dicom_dl_queue(ep, &f, payload) == 0)
		dicom_dl_flush(ep);
out:
	free(all);
	free(t);
	free(payload);
}

void dicom_traffic_maintain(dicom_ep_t *ep, int64_t now)
{
	if (now >= ep->traffic_next) {
		if (ep->dl.state == DL_READY)
			report(ep);
		ep->traffic_next = now + DICOM_TRAFFIC_PERIOD_NS;
	}
	dicom_ep_timer_at(ep, ep->traffic_next);
}
