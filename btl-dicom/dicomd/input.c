/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>

#include "input.h"

const char *dicomd_role_name(enum dicomd_role role)
{
	switch (role) {
	case ROLE_UNIX: return "the unix socket";
	case ROLE_PEER_IN: return "the peer port";
	case ROLE_PEER_OUT: return "a lookup connection";
	default: return "an unknown connection";
	}
}

static int allowed(enum dicomd_role role, uint8_t type)
{
	switch (role) {
	case ROLE_UNIX:
		switch (type) {
		case DICOM_FT_REGISTER: case DICOM_FT_REREGISTER:
		case DICOM_FT_LOCATION: case DICOM_FT_DEREGISTER:
		case DICOM_FT_RESOLVE: case DICOM_FT_PING: case DICOM_FT_PONG:
		case DICOM_FT_DETACH: case DICOM_FT_DETACH_READY:
		case DICOM_FT_STATUS: case DICOM_FT_ERROR:
		case DICOM_FT_TRAFFIC: case DICOM_FT_VIEW:
			return 1;
		default:
			return 0;
		}
	case ROLE_PEER_IN:
		return type == DICOM_FT_LOOKUP || type == DICOM_FT_LOCATION_UPDATE ||
		       type == DICOM_FT_GOSSIP || type == DICOM_FT_RELAY ||
		       type == DICOM_FT_ERROR;
	case ROLE_PEER_OUT:
		return type == DICOM_FT_LOOKUP_REPLY || type == DICOM_FT_ERROR;
	default:
		return 0;
	}
}

size_t dicomd_input_cap(enum dicomd_role role)
{
	return role == ROLE_PEER_IN ? DICOMD_PEER_IN_CAP : DICOMD_IN_CAP;
}

int dicomd_input_next(const uint8_t *buf, size_t len, enum dicomd_role role,
		      struct dicom_frame *f, size_t *consumed, char *why,
		      size_t whylen)
{
	*consumed = 0;
	int r = dicom_frame_decode_header(buf, len, f);
	if (r == DICOM_DECODE_NEED_MORE)
		return DICOMD_IN_MORE;
	if (r != DICOM_DECODE_OK) {
		dicom_decode_describe(buf, len, r, why, whylen);
		return DICOMD_IN_ERROR;
	}
	if (!allowed(role, f->type)) {
		snprintf(why, whylen, "frame type %s (%u) is not accepted on %s",
			 dicom_frame_type_name(f->type), f->type, dicomd_role_name(role));
		return DICOMD_IN_ERROR;
	}
	/* Allowed types are all small; this guards the fixed buffer. */
	size_t cap = dicomd_input_cap(role);
	if (DICOM_WIRE_HDR_LEN + (size_t)f->length > cap) {
		snprintf(why, whylen, "%s frame length %u exceeds dicomd's limit %u",
			 dicom_frame_type_name(f->type), f->length,
			 (unsigned)(cap - DICOM_WIRE_HDR_LEN));
		return DICOMD_IN_ERROR;
	}
	r = dicom_frame_decode(buf, len, f);
	if (r == DICOM_DECODE_NEED_MORE)
		return DICOMD_IN_MORE;
	if (r != DICOM_DECODE_OK) {
		dicom_decode_describe(buf, len, r, why, whylen);
		return DICOMD_IN_ERROR;
	}
	*consumed = DICOM_WIRE_HDR_LEN + f->length;
	return DICOMD_IN_FRAME;
}
