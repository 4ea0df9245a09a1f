/* SPDX-License-Identifier: BSD-3-Clause */
/* Encoder and pure decoder for the frames defined in dicom_wire.h. */
#include <stdio.h>
#include <string.h>

#include "dicom_wire.h"

struct type_info {
	const char *name;
	uint32_t fixed_len; /* payload bytes every frame of the type must have */
	uint32_t max_len;
};

static const struct type_info *type_info(uint8_t type)
{
	static const struct type_info hello = { "HELLO", 0, 0 };
	static const struct type_info hello_ack = { "HELLO_ACK", 0, 0 };
	static const struct type_info data = { "DATA", 0, DICOM_MAX_MSG };
	static const struct type_info ack = { "ACK", 0, 0 };
	static const struct type_info not_here = { "NOT_HERE", 0, 0 };
	static const struct type_info reg = { "REGISTER", 0, 0 };
	static const struct type_info rereg = { "REREGISTER", 0, 0 };
	static const struct type_info registered = { "REGISTERED", DICOM_WIRE_LOC_LEN,
						     DICOM_WIRE_LOC_LEN };
	static const struct type_info location = { "LOCATION", DICOM_WIRE_LOC_LEN,
						   DICOM_WIRE_LOC_LEN };
	static const struct type_info dereg = { "DEREGISTER", 0, 0 };
	static const struct type_info resolve = { "RESOLVE", 0, 0 };
	static const struct type_info resolved = { "RESOLVED", DICOM_WIRE_LOC_LEN,
						   DICOM_WIRE_LOC_LEN };
	static const struct type_info ping = { "PING", 0, 0 };
	static const struct type_info pong = { "PONG", 0, DICOM_WIRE_MAX_PONG };
	static const struct type_info detach = { "DETACH", 0, 0 };
	static const struct type_info detach_ready = { "DETACH_READY", 0, 0 };
	static const struct type_info status = { "STATUS", 0, 0 };
	static const struct type_info status_reply = { "STATUS_REPLY", 0,
						       DICOM_WIRE_MAX_STATUS };
	static const struct type_info gossip = { "GOSSIP", DICOM_LOAD_FIXED_LEN,
						 DICOM_WIRE_MAX_GOSSIP };
	/* Its fixed part is checked by dicom_traffic_decode: a fixed length of
	 * DICOM_WIRE_LOC_LEN here would make it parse as a location. */
	static const struct type_info traffic = { "TRAFFIC", 0, DICOM_WIRE_MAX_TRAFFIC };
	static const struct type_info view = { "VIEW", 0, 0 };
	static const struct type_info view_reply = { "VIEW_REPLY", 0, DICOM_WIRE_MAX_VIEW };
	static const struct type_info lookup = { "LOOKUP", 0, 0 };
	static const struct type_info lookup_reply = { "LOOKUP_REPLY", DICOM_WIRE_LOC_LEN,
						       DICOM_WIRE_LOC_LEN };
	static const struct type_info loc_update = { "LOCATION_UPDATE", DICOM_WIRE_LOC_LEN,
						     DICOM_WIRE_LOC_LEN };
	static const struct type_info relay = { "RELAY", 0, DICOM_WIRE_MAX_RELAY };
	static const struct type_info error = { "ERROR", 0, DICOM_WIRE_MAX_TEXT };
	static const struct type_info stub_hello = { "STUB_HELLO", 0, 0 };
	static const struct type_info stub_open = { "STUB_OPEN", 0, 64 };
	static const struct type_info stub_data = { "STUB_DATA", 0, DICOM_WIRE_MAX_STUB };
	static const struct type_info stub_close = { "STUB_CLOSE", 0, 0 };
	static const struct type_info stub_drain = { "STUB_DRAIN", 0, 0 };
	static const struct type_info stub_drained = { "STUB_DRAINED", 0, 0 };
	static const struct type_info stub_exit = { "STUB_EXIT", 0, 0 };
	static const struct type_info stub_signal = { "STUB_SIGNAL", 0, 0 };

	switch (type) {
	case DICOM_FT_HELLO: return &hello;
	case DICOM_FT_HELLO_ACK: return &hello_ack;
	case DICOM_FT_DATA: return &data;
	case DICOM_FT_ACK: return &ack;
	case DICOM_FT_NOT_HERE: return &not_here;
	case DICOM_FT_REGISTER: return &reg;
	case DICOM_FT_REREGISTER: return &rereg;
	case DICOM_FT_REGISTERED: return &registered;
	case DICOM_FT_LOCATION: return &location;
	case DICOM_FT_DEREGISTER: return &dereg;
	case DICOM_FT_RESOLVE: return &resolve;
	case DICOM_FT_RESOLVED: return &resolved;
	case DICOM_FT_PING: return &ping;
	case DICOM_FT_PONG: return &pong;
	case DICOM_FT_DETACH: return &detach;
	case DICOM_FT_DETACH_READY: return &detach_ready;
	case DICOM_FT_STATUS: return &status;
	case DICOM_FT_STATUS_REPLY: return &status_reply;
	case DICOM_FT_GOSSIP: return &gossip;
	case DICOM_FT_TRAFFIC: return &traffic;
	case DICOM_FT_VIEW: return &view;
	case DICOM_FT_VIEW_REPLY: return &view_reply;
	case DICOM_FT_LOOKUP: return &lookup;
	case DICOM_FT_LOOKUP_REPLY: return &lookup_reply;
	case DICOM_FT_LOCATION_UPDATE: return &loc_update;
	case DICOM_FT_RELAY: return &relay;
	case DICOM_FT_ERROR: return &error;
	case DICOM_FT_STUB_HELLO: return &stub_hello;
	case DICOM_FT_STUB_OPEN: return &stub_open;
	case DICOM_FT_STUB_DATA: return &stub_data;
	case DICOM_FT_STUB_CLOSE: return &stub_close;
	case DICOM_FT_STUB_DRAIN: return &stub_drain;
	case DICOM_FT_STUB_DRAINED: return &stub_drained;
	case DICOM_FT_STUB_EXIT: return &stub_exit;
	case DICOM_FT_STUB_SIGNAL: return &stub_signal;
	default: return NULL;
	}
}

int dicom_frame_type_known(uint8_t type)
{
	return type_info(type) != NULL;
}

uint32_t dicom_frame_max_len(uint8_t type)
{
	const struct type_info *t = type_info(type);
	return t ? t->max_len : 0;
}

uint32_t dicom_frame_fixed_len(uint8_t type)
{
	const struct type_info *t = type_info(type);
	return t ? t->fixed_len : 0;
}

const char *dicom_frame_type_name(uint8_t type)
{
	const struct type_info *t = type_info(type);
	return t ? t->name : "UNKNOWN";
}

void dicom_frame_encode_header(const struct dicom_frame *f,
			       uint8_t out[DICOM_WIRE_HDR_LEN])
{
	dicom_put_le32(out + 0, DICOM_WIRE_MAGIC);
	out[4] = DICOM_WIRE_VERSION;
	out[5] = f->type;
	dicom_put_le16(out + 6, f->flags);
	dicom_put_le32(out + 8, f->length);
	dicom_put_le32(out + 12, f->aux);
	dicom_put_le64(out + 16, f->seq);
	dicom_put_le64(out + 24, f->ack);
	dicom_put_le32(out + 32, f->src.home_node);
	dicom_put_le32(out + 36, f->src.home_pid);
	dicom_put_le32(out + 40, f->dst.home_node);
	dicom_put_le32(out + 44, f->dst.home_pid);
}

size_t dicom_frame_encode(const struct dicom_frame *f, const void *payload,
			  uint8_t *out, size_t cap)
{
	size_t total = (size_t)DICOM_WIRE_HDR_LEN + f->length;
	if (cap < total || (f->length && !payload))
		return 0;
	dicom_frame_encode_header(f, out);
	if (f->length)
		memcpy(out + DICOM_WIRE_HDR_LEN, payload, f->length);
	return total;
}

void dicom_wire_loc_encode(const struct dicom_wire_loc *loc,
			   uint8_t out[DICOM_WIRE_LOC_LEN])
{
	dicom_put_le32(out, loc->node);
	dicom_put_le16(out + 4, loc->port);
	out[6] = loc->state;
	out[7] = 0;
}

int dicom_frame_decode_header(const uint8_t *buf, size_t len,
			      struct dicom_frame *out)
{
	/* Validate each field as soon as its bytes are present: a peer that
	 * sends three bytes of garbage and stalls is rejected now rather than
	 * holding a connection slot forever. */
	size_t magic_have = len < 4 ? len : 4;
	uint8_t magic[4];
	dicom_put_le32(magic, DICOM_WIRE_MAGIC);
	if (memcmp(buf, magic, magic_have) != 0)
		return DICOM_DECODE_BAD_MAGIC;
	if (len < 5)
		return DICOM_DECODE_NEED_MORE;
	if (buf[4] != DICOM_WIRE_VERSION)
		return DICOM_DECODE_BAD_VERSION;
	if (len < 6)
		return DICOM_DECODE_NEED_MORE;
	const struct type_info *t = type_info(buf[5]);
	if (!t)
		return DICOM_DECODE_UNKNOWN_TYPE;
	if (len < 8)
		return DICOM_DECODE_NEED_MORE;
	if (dicom_get_le16(buf + 6) & ~DICOM_FLAGS_KNOWN)
		return DICOM_DECODE_BAD_FIELD;
	if (len < 12)
		return DICOM_DECODE_NEED_MORE;
	uint32_t length = dicom_get_le32(buf + 8);
	if (length > t->max_len)
		return DICOM_DECODE_TOO_BIG;
	if (length < t->fixed_len)
		return DICOM_DECODE_TRUNCATED;
	if (len < DICOM_WIRE_HDR_LEN)
		return DICOM_DECODE_NEED_MORE;

	memset(out, 0, sizeof(*out));
	out->version = buf[4];
	out->type = buf[5];
	out->flags = dicom_get_le16(buf + 6);
	out->length = length;
	out->aux = dicom_get_le32(buf + 12);
	out->seq = dicom_get_le64(buf + 16);
	out->ack = dicom_get_le64(buf + 24);
	out->src.home_node = dicom_get_le32(buf + 32);
	out->src.home_pid = dicom_get_le32(buf + 36);
	out->dst.home_node = dicom_get_le32(buf + 40);
	out->dst.home_pid = dicom_get_le32(buf + 44);
	if (out->type == DICOM_FT_DATA && out->aux > 0xff)
		return DICOM_DECODE_BAD_FIELD; /* tag is one byte */
	return DICOM_DECODE_OK;
}

int dicom_frame_decode_fixed(const uint8_t *payload, struct dicom_frame *f)
{
	if (dicom_frame_fixed_len(f->type) != DICOM_WIRE_LOC_LEN)
		return DICOM_DECODE_OK;
	f->loc.node = dicom_get_le32(payload);
	f->loc.port = dicom_get_le16(payload + 4);
	f->loc.state = payload[6];
	if (payload[7] != 0 || f->loc.state > DICOM_LOC_STATE_MAX)
		return DICOM_DECODE_BAD_FIELD;
	return DICOM_DECODE_OK;
}

int dicom_frame_decode(const uint8_t *buf, size_t len, struct dicom_frame *out)
{
	int r = dicom_frame_decode_header(buf, len, out);
	if (r != DICOM_DECODE_OK)
		return r;
	if (len - DICOM_WIRE_HDR_LEN < out->length)
		return DICOM_DECODE_NEED_MORE;
	out->payload = buf + DICOM_WIRE_HDR_LEN;
	return dicom_frame_decode_fixed(out->payload, out);
}

const char *dicom_decode_strerror(int result)
{
	switch (result) {
	case DICOM_DECODE_OK: return "ok";
	case DICOM_DECODE_NEED_MORE: return "incomplete frame";
	case DICOM_DECODE_BAD_MAGIC: return "bad magic";
	case DICOM_DECODE_BAD_VERSION: return "wrong version";
	case DICOM_DECODE_UNKNOWN_TYPE: return "unknown frame type";
	case DICOM_DECODE_TOO_BIG: return "frame too big";
	case DICOM_DECODE_TRUNCATED: return "truncated fixed part";
	case DICOM_DECODE_BAD_FIELD: return "bad field";
	default: return "unknown decode error";
	}
}

void dicom_decode_describe(const uint8_t *buf, size_t len, int result,
			   char *out, size_t outlen)
{
	if (!outlen)
		return;
	uint8_t type = len > 5 ? buf[5] : 0;
	switch (result) {
	case DICOM_DECODE_BAD_MAGIC: {
		unsigned b[4] = { 0, 0, 0, 0 };
		for (size_t i = 0; i < 4 && i < len; i++)
			b[i] = buf[i];
		snprintf(out, outlen,
			 "bad magic %02x %02x %02x %02x (expected 44 43 4f 4d \"DCOM\")",
			 b[0], b[1], b[2], b[3]);
		break;
	}
	case DICOM_DECODE_BAD_VERSION:
		snprintf(out, outlen, "wrong version %u (expected %u)",
			 len > 4 ? buf[4] : 0u, DICOM_WIRE_VERSION);
		break;
	case DICOM_DECODE_UNKNOWN_TYPE:
		snprintf(out, outlen, "unknown frame type %u", type);
		break;
	case DICOM_DECODE_TOO_BIG:
		snprintf(out, outlen, "%s frame length %u exceeds its limit %u",
			 dicom_frame_type_name(type),
			 len >= 12 ? dicom_get_le32(buf + 8) : 0u,
			 dicom_frame_max_len(type));
		break;
	case DICOM_DECODE_TRUNCATED:
		snprintf(out, outlen,
			 "%s frame length %u is shorter than its fixed part %u",
			 dicom_frame_type_name(type),
			 len >= 12 ? dicom_get_le32(buf + 8) : 0u,
			 dicom_frame_fixed_len(type));
		break;
	case DICOM_DECODE_BAD_FIELD:
		snprintf(out, outlen, "%s frame has an invalid flag, tag or state field",
			 dicom_frame_type_name(type));
		break;
	default:
		snprintf(out, outlen, "%s", dicom_decode_strerror(result));
		break;
	}
}
