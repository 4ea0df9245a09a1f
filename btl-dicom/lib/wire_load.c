/* SPDX-License-Identifier: BSD-3-Clause */
/* Encoder and pure decoder of the GOSSIP load vector and the TRAFFIC report
 * (layouts in dicom_wire.h). */
#include <string.h>

#include "dicom_wire.h"

static int job_char_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
}

void dicom_job_label(const char *in, char out[DICOM_JOB_MAX + 1])
{
	size_t n = 0;
	for (; in && in[n] && n < DICOM_JOB_MAX; n++)
		out[n] = job_char_ok((unsigned char)in[n]) ? in[n] : '_';
	out[n] = '\0';
}

static void put_addr(uint8_t *p, dicom_addr_t a)
{
	dicom_put_le32(p, a.home_node);
	dicom_put_le32(p + 4, a.home_pid);
}

static dicom_addr_t get_addr(const uint8_t *p)
{
	return (dicom_addr_t){ dicom_get_le32(p), dicom_get_le32(p + 4) };
}

/* Reads a job label of len bytes; -1 if a byte is not allowed. */
static int get_job(const uint8_t *p, size_t len, char out[DICOM_JOB_MAX + 1])
{
	for (size_t i = 0; i < len; i++) {
		if (!job_char_ok(p[i]))
			return -1;
		out[i] = (char)p[i];
	}
	out[len] = '\0';
	return 0;
}

size_t dicom_load_encode(const struct dicom_wire_load *l, uint8_t *out, size_t cap)
{
	if (cap < DICOM_LOAD_FIXED_LEN)
		return 0;
	size_t off = DICOM_LOAD_FIXED_LEN;
	uint16_t nprocs = 0, npairs = 0;
	for (uint16_t i = 0; i < l->nprocs && i < DICOM_LOAD_MAX_PROCS; i++) {
		const struct dicom_wire_proc *pr = &l->procs[i];
		size_t jl = strnlen(pr->job, DICOM_JOB_MAX);
		if (off + DICOM_LOAD_PROC_LEN + jl > cap)
			break;
		uint8_t *p = out + off;
		put_addr(p, pr->addr);
		dicom_put_le32(p + 8, pr->pid);
		dicom_put_le32(p + 12, pr->rank);
		dicom_put_le16(p + 16, pr->cpu_permille);
		p[18] = (uint8_t)jl;
		p[19] = 0;
		memcpy(p + DICOM_LOAD_PROC_LEN, pr->job, jl);
		off += DICOM_LOAD_PROC_LEN + jl;
		nprocs++;
	}
	for (uint16_t i = 0; i < l->npairs && i < DICOM_LOAD_MAX_PAIRS; i++) {
		if (off + DICOM_LOAD_PAIR_LEN > cap)
			break;
		const struct dicom_wire_pair *pa = &l->pairs[i];
		uint8_t *p = out + off;
		put_addr(p, pa->src);
		put_addr(p + 8, pa->dst);
		dicom_put_le64(p + 16, pa->bytes);
		dicom_put_le64(p + 24, pa->rate);
		off += DICOM_LOAD_PAIR_LEN;
		npairs++;
	}
	dicom_put_le32(out, l->runnable);
	dicom_put_le32(out + 4, l->load_milli);
	dicom_put_le32(out + 8, l->cpu_milli);
	dicom_put_le16(out + 12, nprocs);
	dicom_put_le16(out + 14, npairs);
	dicom_put_le64(out + 16, l->mem_free_kib);
	dicom_put_le64(out + 24, l->mem_total_kib);
	return off;
}

int dicom_load_decode(const uint8_t *p, size_t len, struct dicom_wire_load *out)
{
	if (len > DICOM_WIRE_MAX_GOSSIP)
		return DICOM_DECODE_TOO_BIG;
	if (len < DICOM_LOAD_FIXED_LEN)
		return DICOM_DECODE_TRUNCATED;
	out->runnable = dicom_get_le32(p);
	out->load_milli = dicom_get_le32(p + 4);
	out->cpu_milli = dicom_get_le32(p + 8);
	out->nprocs = dicom_get_le16(p + 12);
	out->npairs = dicom_get_le16(p + 14);
	out->mem_free_kib = dicom_get_le64(p + 16);
	out->mem_total_kib = dicom_get_le64(p + 24);
	if (out->nprocs > DICOM_LOAD_MAX_PROCS || out->npairs > DICOM_LOAD_MAX_PAIRS)
		return DICOM_DECODE_BAD_FIELD;
	size_t off = DICOM_LOAD_FIXED_LEN;
	for (uint16_t i = 0; i < out->nprocs; i++) {
		if (len - off < DICOM_LOAD_PROC_LEN)
			return DICOM_DECODE_TRUNCATED;
		const uint8_t *q = p + off;
		struct dicom_wire_proc *pr = &out->procs[i];
		size_t jl = q[18];
		if (jl > DICOM_JOB_MAX || q[19] != 0)
			return DICOM_DECODE_BAD_FIELD;
		if (len - off - DICOM_LOAD_PROC_LEN < jl)
			return DICOM_DECODE_TRUNCATED;
		pr->addr = get_addr(q);
		pr->pid = dicom_get_le32(q + 8);
		pr->rank = dicom_get_le32(q + 12);
		pr->cpu_permille = dicom_get_le16(q + 16);
		if (get_job(q + DICOM_LOAD_PROC_LEN, jl, pr->job) < 0)
			return DICOM_DECODE_BAD_FIELD;
		off += DICOM_LOAD_PROC_LEN + jl;
	}
	if (len - off != (size_t)out->npairs * DICOM_LOAD_PAIR_LEN)
		return len - off < (size_t)out->npairs * DICOM_LOAD_PAIR_LEN ? DICOM_DECODE_TRUNCATED
									     : DICOM_DECODE_BAD_FIELD;
	for (uint16_t i = 0; i < out->npairs; i++, off += DICOM_LOAD_PAIR_LEN) {
		struct dicom_wire_pair *pa = &out->pairs[i];
		pa->src = get_addr(p + off);
		pa->dst = get_addr(p + off + 8);
		pa->bytes = dicom_get_le64(p + off + 16);
		pa->rate = dicom_get_le64(p + off + 24);
	}
	return DICOM_DECODE_OK;
}

size_t dicom_traffic_encode(const struct dicom_wire_traffic *t, uint8_t *out, size_t cap)
{
	size_t jl = strnlen(t->job, DICOM_JOB_MAX);
	uint16_t n = t->npairs < DICOM_TRAFFIC_MAX_PAIRS ? t->npairs : DICOM_TRAFFIC_MAX_PAIRS;
	size_t need = DICOM_TRAFFIC_FIXED_LEN + jl + (size_t)n * DICOM_TRAFFIC_PAIR_LEN;
	if (cap < need)
		return 0;
	dicom_put_le32(out, t->rank);
	out[4] = (uint8_t)jl;
	out[5] = 0;
	dicom_put_le16(out + 6, n);
	memcpy(out + DICOM_TRAFFIC_FIXED_LEN, t->job, jl);
	uint8_t *p = out + DICOM_TRAFFIC_FIXED_LEN + jl;
	for (uint16_t i = 0; i < n; i++, p += DICOM_TRAFFIC_PAIR_LEN) {
		put_addr(p, t->pairs[i].dst);
		dicom_put_le64(p + 8, t->pairs[i].bytes);
	}
	return need;
}

int dicom_traffic_decode(const uint8_t *p, size_t len, struct dicom_wire_traffic *out)
{
	if (len > DICOM_WIRE_MAX_TRAFFIC)
		return DICOM_DECODE_TOO_BIG;
	if (len < DICOM_TRAFFIC_FIXED_LEN)
		return DICOM_DECODE_TRUNCATED;
	out->rank = dicom_get_le32(p);
	size_t jl = p[4];
	out->npairs = dicom_get_le16(p + 6);
	if (jl > DICOM_JOB_MAX || p[5] != 0 || out->npairs > DICOM_TRAFFIC_MAX_PAIRS)
		return DICOM_DECODE_BAD_FIELD;
	size_t need = DICOM_TRAFFIC_FIXED_LEN + jl + (size_t)out->npairs * DICOM_TRAFFIC_PAIR_LEN;
	if (len != need)
		return len < need ? DICOM_DECODE_TRUNCATED : DICOM_DECODE_BAD_FIELD;
	if (get_job(p + DICOM_TRAFFIC_FIXED_LEN, jl, out->job) < 0)
		return DICOM_DECODE_BAD_FIELD;
	const uint8_t *q = p + DICOM_TRAFFIC_FIXED_LEN + jl;
	for (uint16_t i = 0; i < out->npairs; i++, q += DICOM_TRAFFIC_PAIR_LEN) {
		out->pairs[i].dst = get_addr(q);
		out->pairs[i].bytes = dicom_get_le64(q + 8);
	}
	return DICOM_DECODE_OK;
}
