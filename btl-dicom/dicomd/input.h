/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicomd's per-connection input parser: which frames each kind of
 * connection may send and how big they may be.  Pure, so it is fuzzed.
 */
#ifndef DICOMD_INPUT_H
#define DICOMD_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "dicom_wire.h"

enum dicomd_role {
	ROLE_UNIX,     /* endpoint or tool on the abstract unix socket */
	ROLE_PEER_IN,  /* another dicomd asking us (our TCP port) */
	ROLE_PEER_OUT, /* another dicomd answering our lookups */
};

/* Nothing dicomd accepts is larger than a PONG, except a RELAY from another
 * dicomd: a fixed buffer per connection, sized by its role, bounds memory
 * whatever a client claims. */
#define DICOMD_IN_CAP (DICOM_WIRE_HDR_LEN + DICOM_WIRE_MAX_PONG)
#define DICOMD_PEER_IN_CAP (DICOM_WIRE_HDR_LEN + DICOM_WIRE_MAX_RELAY)

enum dicomd_input_result {
	DICOMD_IN_FRAME = 0, /* *f holds a frame of *consumed bytes */
	DICOMD_IN_MORE = 1,
	DICOMD_IN_ERROR = -1, /* why says what was wrong; drop the connection */
};

int dicomd_input_next(const uint8_t *buf, size_t len, enum dicomd_role role,
		      struct dicom_frame *f, size_t *consumed, char *why,
		      size_t whylen);
const char *dicomd_role_name(enum dicomd_role role);
/* The input buffer a connection of this role needs. */
size_t dicomd_input_cap(enum dicomd_role role);

#endif
