/* SPDX-License-Identifier: BSD-3-Clause */
/* Writes a small seed corpus: one valid frame of every type, plus the
 * classic broken ones.  Generated at build time so no binaries are
 * committed.  Seeds for fuzz_dicomd_input start with a role byte and a
 * chunk-size byte; fuzz_decode just sees two leading bytes it rejects or
 * skips past, which is fine for a seed. */
#include <stdio.h>
#include <string.h>

#include "dicom_wire.h"

static int write_seed(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	fwrite(p, 1, n, f);
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
	static const uint8_t types[] = { 1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21, 22, 23, 24,
					 25, 26, 27, 28, 32, 33, 34, 35, 40, 41, 42, 43, 63 };
	uint8_t buf[2 + DICOM_WIRE_HDR_LEN + 64];
	char name[64];
	for (size_t i = 0; i < sizeof(types); i++) {
		for (int role = 0; role < 3; role++) {
			/* long enough for the largest fixed part (GOSSIP: an idle node) */
			uint8_t payload[DICOM_LOAD_FIXED_LEN] = { 1, 0, 0, 127, 0x42, 0x10, 1, 0 };
			uint32_t len = dicom_frame_fixed_len(types[i]);
			if (!len && dicom_frame_max_len(types[i]) >= 5)
				len = 5;
			struct dicom_frame f = { .type = types[i], .length = len, .seq = 1,
						 .src = { 0x7f000001, 100 },
						 .dst = { 0x7f000001, 200 } };
			buf[0] = (uint8_t)role;
			buf[1] = 7;
			size_t n = dicom_frame_encode(&f, payload, buf + 2, sizeof(buf) - 2);
			snprintf(name, sizeof(name), "type%u-role%d", types[i], role);
			if (write_seed(argv[1], name, buf, n + 2) < 0)
				return 1;
		}
	}
	struct dicom_frame f = { .type = DICOM_FT_RESOLVE };
	dicom_frame_encode_header(&f, buf + 2);
	buf[0] = 0;
	buf[1] = 255;
	buf[2 + 4] = 9;
	write_seed(argv[1], "wrong-version", buf, 2 + DICOM_WIRE_HDR_LEN);
	f.length = 1u << 30;
	dicom_frame_encode_header(&f, buf + 2);
	write_seed(argv[1], "oversized", buf, 2 + DICOM_WIRE_HDR_LEN);
	write_seed(argv[1], "garbage", (const uint8_t *)"\0\x10GET / HTTP/1.1\r\n\r\n", 21);
	return 0;
}
