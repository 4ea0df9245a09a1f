/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: dicomd's per-connection input parser, fed the way the
 * daemon feeds it (arbitrary chunking into its fixed buffer, sized by the role). */
#include <stdlib.h>
#include <string.h>

#include "input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	enum dicomd_role role = (enum dicomd_role)(data[0] % 3);
	size_t chunk = 1 + data[1];
	data += 2;
	size -= 2;
	size_t cap = dicomd_input_cap(role);
	uint8_t *in = malloc(cap);
	if (!in)
		return 0;
	size_t len = 0, off = 0;
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (n > cap - len)
			n = cap - len;
		if (n == 0)
			abort(); /* the parser let the buffer fill with no frame in it */
		memcpy(in + len, data + off, n);
		len += n;
		off += n;
		size_t used_total = 0;
		for (;;) {
			struct dicom_frame f;
			size_t used;
			char why[200];
			int r = dicomd_input_next(in + used_total, len - used_total, role, &f, &used,
						  why, sizeof(why));
			if (r == DICOMD_IN_ERROR)
				goto done;
			if (r == DICOMD_IN_MORE)
				break;
			if (used < DICOM_WIRE_HDR_LEN || used > len - used_total)
				abort();
			used_total += used;
		}
		memmove(in, in + used_total, len - used_total);
		len -= used_total;
	}
done:
	free(in);
	return 0;
}
