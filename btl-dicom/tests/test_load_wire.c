/* SPDX-License-Identifier: BSD-3-Clause */
/* The gossip load vector and the endpoint's traffic report: round trips,
 * what a full frame keeps, and every malformed payload. */
#include <stdlib.h>
#include <string.h>

#include "addrmap.h"
#include "dicom_wire.h"
#include "harness.h"

static struct dicom_wire_load in, out;

static void fill(struct dicom_wire_load *l, uint16_t nprocs, uint16_t npairs)
{
	memset(l, 0, sizeof(*l));
	l->runnable = 3;
	l->load_milli = 2750;
	l->cpu_milli = 1000;
	l->mem_free_kib = 123456789ULL;
	l->mem_total_kib = 987654321ULL;
	l->nprocs = nprocs;
	l->npairs = npairs;
	for (uint16_t i = 0; i < nprocs; i++) {
		l->procs[i] = (struct dicom_wire_proc){ .addr = { 0x0a4d000b, 1000u + i },
							.pid = 1000u + i, .rank = i,
							.cpu_permille = (uint16_t)(900 + i) };
		dicom_job_label(i % 2 ? "job-7" : "", l->procs[i].job);
	}
	for (uint16_t i = 0; i < npairs; i++)
		l->pairs[i] = (struct dicom_wire_pair){ { 0x0a4d000b, 1000 }, { 0x0a4d000c, 2000u + i },
							(uint64_t)1 << 40 | i, 5000000u - i };
}

static int same_load(const struct dicom_wire_load *a, const struct dicom_wire_load *b)
{
	if (a->runnable != b->runnable || a->load_milli != b->load_milli ||
	    a->cpu_milli != b->cpu_milli || a->mem_free_kib != b->mem_free_kib ||
	    a->mem_total_kib != b->mem_total_kib || a->nprocs != b->nprocs ||
	    a->npairs != b->npairs)
		return 0;
	for (uint16_t i = 0; i < a->nprocs; i++) {
		const struct dicom_wire_proc *x = &a->procs[i], *y = &b->procs[i];
		if (!dicom_addr_eq(x->addr, y->addr) || x->pid != y->pid || x->rank != y->rank ||
		    x->cpu_permille != y->cpu_permille || strcmp(x->job, y->job) != 0)
			return 0;
	}
	for (uint16_t i = 0; i < a->npairs; i++) {
		const struct dicom_wire_pair *x = &a->pairs[i], *y = &b->pairs[i];
		if (!dicom_addr_eq(x->src, y->src) || !dicom_addr_eq(x->dst, y->dst) ||
		    x->bytes != y->bytes || x->rate != y->rate)
			return 0;
	}
	return 1;
}

static void load_vectors(void)
{
	uint8_t buf[DICOM_WIRE_MAX_GOSSIP];
	fill(&in, 0, 0);
	size_t n = dicom_load_encode(&in, buf, sizeof(buf));
	tap_ok(n == DICOM_LOAD_FIXED_LEN && dicom_load_decode(buf, n, &out) == DICOM_DECODE_OK &&
		       same_load(&in, &out),
	       "an idle node's load vector is its 32-byte fixed part and round-trips");

	fill(&in, 8, 40);
	n = dicom_load_encode(&in, buf, sizeof(buf));
	tap_ok(n == DICOM_LOAD_FIXED_LEN + 8 * DICOM_LOAD_PROC_LEN + 4 * 5 + 40 * DICOM_LOAD_PAIR_LEN &&
		       dicom_load_decode(buf, n, &out) == DICOM_DECODE_OK && same_load(&in, &out),
	       "8 processes (with job labels) and 40 pairs round-trip (%zu bytes)", n);

	int prefixes_fail = 1;
	for (size_t k = 0; k < n; k++)
		prefixes_fail &= dicom_load_decode(buf, k, &out) != DICOM_DECODE_OK;
	tap_ok(prefixes_fail, "every proper prefix of it is rejected");
	uint8_t longer[DICOM_WIRE_MAX_GOSSIP + 1];
	memcpy(longer, buf, n);
	longer[n] = 0;
	tap_ok(dicom_load_decode(longer, n + 1, &out) == DICOM_DECODE_BAD_FIELD,
	       "a trailing byte is rejected");

	uint8_t bad[DICOM_WIRE_MAX_GOSSIP];
	memcpy(bad, buf, n);
	bad[DICOM_LOAD_FIXED_LEN + DICOM_LOAD_PROC_LEN + 18] = 1; /* proc 1: job_len 5 -> 1 */
	tap_ok(dicom_load_decode(bad, n, &out) != DICOM_DECODE_OK,
	       "a job length that disagrees with the payload is rejected");
	memcpy(bad, buf, n);
	bad[DICOM_LOAD_FIXED_LEN + DICOM_LOAD_PROC_LEN + DICOM_LOAD_PROC_LEN] = '"';
	tap_ok(dicom_load_decode(bad, n, &out) == DICOM_DECODE_BAD_FIELD,
	       "a quote in a job label is rejected (labels go into JSON unescaped)");
	memcpy(bad, buf, n);
	bad[DICOM_LOAD_FIXED_LEN + 19] = 7;
	tap_ok(dicom_load_decode(bad, n, &out) == DICOM_DECODE_BAD_FIELD,
	       "a nonzero reserved byte is rejected");
	memcpy(bad, buf, n);
	dicom_put_le16(bad + 12, 0xffff);
	tap_ok(dicom_load_decode(bad, n, &out) == DICOM_DECODE_BAD_FIELD,
	       "an impossible process count is rejected");
	tap_ok(dicom_load_decode(buf, DICOM_WIRE_MAX_GOSSIP + 1, &out) == DICOM_DECODE_TOO_BIG,
	       "a payload over DICOM_WIRE_MAX_GOSSIP is rejected");

	fill(&in, 8, DICOM_LOAD_MAX_PAIRS);
	n = dicom_load_encode(&in, buf, sizeof(buf));
	int r = dicom_load_decode(buf, n, &out);
	tap_ok(r == DICOM_DECODE_OK && n <= DICOM_WIRE_MAX_GOSSIP && out.nprocs == 8 &&
		       out.npairs < in.npairs && out.npairs > 100 &&
		       out.pairs[0].rate == in.pairs[0].rate,
	       "a full vector keeps every process and the first (heaviest) %u of %u pairs",
	       out.npairs, in.npairs);
	tap_ok(dicom_load_encode(&in, buf, DICOM_LOAD_FIXED_LEN - 1) == 0,
	       "encoding into less than the fixed part fails");
}

static void traffic_reports(void)
{
	static struct dicom_wire_traffic t, u;
	uint8_t buf[DICOM_WIRE_MAX_TRAFFIC];
	memset(&t, 0, sizeof(t));
	t.rank = 12;
	dicom_job_label("ompi \"job\"\n42", t.job);
	tap_ok(strcmp(t.job, "ompi__job__42") == 0, "job labels from the environment are sanitized");
	t.npairs = DICOM_TRAFFIC_MAX_PAIRS;
	for (uint16_t i = 0; i < t.npairs; i++)
		t.pairs[i] = (struct dicom_wire_traffic_pair){ { 0x7f000001, i }, (uint64_t)i << 33 };
	size_t n = dicom_traffic_encode(&t, buf, sizeof(buf));
	int ok = n > 0 && n <= DICOM_WIRE_MAX_TRAFFIC &&
		 dicom_traffic_decode(buf, n, &u) == DICOM_DECODE_OK && u.rank == 12 &&
		 strcmp(u.job, t.job) == 0 && u.npairs == t.npairs;
	for (uint16_t i = 0; ok && i < t.npairs; i++)
		ok = dicom_addr_eq(u.pairs[i].dst, t.pairs[i].dst) && u.pairs[i].bytes == t.pairs[i].bytes;
	tap_ok(ok, "a report of %u pairs round-trips in %zu bytes", t.npairs, n);
	int prefixes_fail = 1;
	for (size_t k = 0; k < n; k++)
		prefixes_fail &= dicom_traffic_decode(buf, k, &u) != DICOM_DECODE_OK;
	tap_ok(prefixes_fail, "every proper prefix of the report is rejected");
	buf[5] = 1;
	tap_ok(dicom_traffic_decode(buf, n, &u) == DICOM_DECODE_BAD_FIELD,
	       "a nonzero reserved byte in a report is rejected");
	buf[5] = 0;
	buf[4] = DICOM_JOB_MAX + 1;
	tap_ok(dicom_traffic_decode(buf, n, &u) == DICOM_DECODE_BAD_FIELD,
	       "a job label longer than DICOM_JOB_MAX is rejected");
}

static void frame_types(void)
{
	tap_ok(strcmp(dicom_frame_type_name(DICOM_FT_GOSSIP), "GOSSIP") == 0 &&
		       strcmp(dicom_frame_type_name(DICOM_FT_TRAFFIC), "TRAFFIC") == 0 &&
		       strcmp(dicom_frame_type_name(DICOM_FT_VIEW), "VIEW") == 0 &&
		       strcmp(dicom_frame_type_name(DICOM_FT_VIEW_REPLY), "VIEW_REPLY") == 0,
	       "the gossip frame types are known by name");
	uint8_t buf[DICOM_WIRE_HDR_LEN + DICOM_LOAD_FIXED_LEN];
	struct dicom_frame f = { .type = DICOM_FT_GOSSIP, .length = DICOM_LOAD_FIXED_LEN - 1 };
	dicom_frame_encode_header(&f, buf);
	struct dicom_frame g;
	tap_ok(dicom_frame_decode_header(buf, DICOM_WIRE_HDR_LEN, &g) == DICOM_DECODE_TRUNCATED,
	       "a GOSSIP frame shorter than the fixed load vector is rejected by the header check");
	f.length = DICOM_WIRE_MAX_GOSSIP + 1;
	dicom_frame_encode_header(&f, buf);
	tap_ok(dicom_frame_decode_header(buf, DICOM_WIRE_HDR_LEN, &g) == DICOM_DECODE_TOO_BIG,
	       "a GOSSIP frame over its limit is rejected by the header check");
}

int main(void)
{
	load_vectors();
	traffic_reports();
	frame_types();
	return tap_done();
}
