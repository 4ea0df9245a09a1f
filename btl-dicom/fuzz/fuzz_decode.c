/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the frame decoder must never read out of bounds, and
 * whatever it accepts must re-encode to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "dicom_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Gossip payloads: a load vector or traffic report the decoder accepts
 * re-encodes to the same bytes. */
static void check_payload(const struct dicom_frame *f)
{
	static struct dicom_wire_load l;
	static struct dicom_wire_traffic t;
	static uint8_t again[DICOM_WIRE_MAX_GOSSIP > DICOM_WIRE_MAX_TRAFFIC ? DICOM_WIRE_MAX_GOSSIP
									    : DICOM_WIRE_MAX_TRAFFIC];
	if (f->type == DICOM_FT_GOSSIP && dicom_load_decode(f->payload, f->length, &l) == DICOM_DECODE_OK &&
	    (dicom_load_encode(&l, again, sizeof(again)) != f->length ||
	     memcmp(again, f->payload, f->length) != 0))
		abort();
	if (f->type == DICOM_FT_TRAFFIC &&
	    dicom_traffic_decode(f->payload, f->length, &t) == DICOM_DECODE_OK &&
	    (dicom_traffic_encode(&t, again, sizeof(again)) != f->length ||
	     memcmp(again, f->payload, f->length) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Copy so ASan catches any read past the input's end exactly. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct dicom_frame f;
	int r = dicom_frame_decode(buf, size, &f);
	if (r == DICOM_DECODE_OK) {
		size_t total = DICOM_WIRE_HDR_LEN + f.length;
		if (total > size || f.payload != buf + DICOM_WIRE_HDR_LEN)
			abort();
		uint8_t *again = malloc(total);
		if (!again || dicom_frame_encode(&f, f.payload, again, total) != total ||
		    memcmp(again, buf, total) != 0)
			abort();
		free(again);
	} else if (r != DICOM_DECODE_NEED_MORE) {
		char why[256];
		dicom_decode_describe(buf, size, r, why, sizeof(why));
		if (!why[0])
			abort();
	}
	if (r == DICOM_DECODE_OK)
		check_payload(&f);
	struct dicom_frame h;
	int rh = dicom_frame_decode_header(buf, size, &h);
	/* the header check is a prefix of the full check */
	if (r == DICOM_DECODE_OK && rh != DICOM_DECODE_OK)
		abort();
	free(buf);
	return 0;
}
