/* SPDX-License-Identifier: BSD-3-Clause */
/* Wire format: round trips for every frame type and every decoder error. */
#include <stdio.h>
#include <string.h>

#include "dicom_wire.h"
#include "harness.h"
#include "input.h"

static const uint8_t types[] = {
	DICOM_FT_HELLO, DICOM_FT_HELLO_ACK, DICOM_FT_DATA, DICOM_FT_ACK, DICOM_FT_NOT_HERE,
	DICOM_FT_REGISTER, DICOM_FT_REREGISTER, DICOM_FT_REGISTERED, DICOM_FT_LOCATION,
	DICOM_FT_DEREGISTER, DICOM_FT_RESOLVE, DICOM_FT_RESOLVED, DICOM_FT_PING,
	DICOM_FT_PONG, DICOM_FT_DETACH, DICOM_FT_DETACH_READY, DICOM_FT_STATUS,
	DICOM_FT_STATUS_REPLY, DICOM_FT_LOOKUP, DICOM_FT_LOOKUP_REPLY,
	DICOM_FT_LOCATION_UPDATE, DICOM_FT_ERROR,
};

static uint8_t buf[DICOM_WIRE_HDR_LEN + 4096];

static void header(uint8_t type, uint32_t length)
{
	struct dicom_frame f = { .type = type, .length = length };
	dicom_frame_encode_header(&f, buf);
}

static void test_round_trips(void)
{
	int all_ok = 1;
	for (size_t i = 0; i < sizeof(types); i++) {
		uint8_t payload[64];
		uint32_t len = 0;
		struct dicom_wire_loc loc = { .node = 0x0a4d0001, .port = 4242,
					      .state = DICOM_LOC_ACTIVE };
		if (dicom_frame_fixed_len(types[i]) == DICOM_WIRE_LOC_LEN) {
			dicom_wire_loc_encode(&loc, payload);
			len = DICOM_WIRE_LOC_LEN;
		} else if (dicom_frame_max_len(types[i]) >= 5) {
			memcpy(payload, "hello", 5);
			len = 5;
		}
		struct dicom_frame in = {
			.type = types[i], .flags = types[i] == DICOM_FT_RESOLVE ? DICOM_FLAG_BYPASS_CACHE : 0,
			.length = len, .aux = types[i] == DICOM_FT_DATA ? 0xab : 0xdeadbeef,
			.seq = 0x0102030405060708ull, .ack = 0x1112131415161718ull,
			.src = { 0x7f000001, 1234 }, .dst = { 0x0a000002, 0xfffffffe },
		};
		size_t n = dicom_frame_encode(&in, payload, buf, sizeof(buf));
		struct dicom_frame out;
		int r = dicom_frame_decode(buf, n, &out);
		int ok = n == DICOM_WIRE_HDR_LEN + len && r == DICOM_DECODE_OK &&
			 out.type == in.type && out.flags == in.flags && out.length == len &&
			 out.aux == in.aux && out.seq == in.seq && out.ack == in.ack &&
			 out.src.home_node == in.src.home_node && out.src.home_pid == in.src.home_pid &&
			 out.dst.home_node == in.dst.home_node && out.dst.home_pid == in.dst.home_pid &&
			 (len == 0 || memcmp(out.payload, payload, len) == 0);
		if (len == DICOM_WIRE_LOC_LEN)
			ok = ok && out.loc.node == loc.node && out.loc.port == loc.port &&
			     out.loc.state == loc.state;
		/* every prefix is "need more", never an error */
		for (size_t cut = 0; ok && cut < n; cut++)
			ok = dicom_frame_decode(buf, cut, &out) == DICOM_DECODE_NEED_MORE;
		if (!ok)
			tap_diag("round trip failed for %s", dicom_frame_type_name(types[i]));
		all_ok &= ok;
	}
	tap_ok(all_ok, "every frame type round-trips, every prefix needs more");

	/* explicit little-endian layout, independent of the host */
	struct dicom_frame f = { .type = DICOM_FT_DATA, .length = 0x01020304 & 0xffff,
				 .seq = 0x1122334455667788ull };
	dicom_frame_encode_header(&f, buf);
	tap_ok(buf[0] == 'D' && buf[1] == 'C' && buf[2] == 'O' && buf[3] == 'M' &&
		       buf[4] == DICOM_WIRE_VERSION && buf[5] == DICOM_FT_DATA && buf[8] == 0x04 &&
		       buf[9] == 0x03 && buf[16] == 0x88 && buf[23] == 0x11,
	       "header bytes are little-endian at fixed offsets");
	tap_ok(dicom_frame_encode(&f, NULL, buf, sizeof(buf)) == 0,
	       "encode refuses a missing payload");
	struct dicom_frame small = { .type = DICOM_FT_ACK };
	tap_ok(dicom_frame_encode(&small, NULL, buf, DICOM_WIRE_HDR_LEN - 1) == 0,
	       "encode refuses a short output buffer");
}

static void expect(int want, size_t len, const char *what, const char *describe_has)
{
	struct dicom_frame out;
	int r = dicom_frame_decode(buf, len, &out);
	char why[200] = "";
	dicom_decode_describe(buf, len, r, why, sizeof(why));
	int ok = r == want && (!describe_has || strstr(why, describe_has));
	if (!ok)
		tap_diag("got %d (%s), wanted %d", r, why, want);
	tap_ok(ok, "%s: %s", what, why);
}

static void test_errors(void)
{
	header(DICOM_FT_ACK, 0);
	buf[0] = 'X';
	expect(DICOM_DECODE_BAD_MAGIC, DICOM_WIRE_HDR_LEN, "bad magic", "bad magic");
	expect(DICOM_DECODE_BAD_MAGIC, 1, "bad magic seen in the first byte", NULL);

	header(DICOM_FT_ACK, 0);
	buf[4] = 9;
	expect(DICOM_DECODE_BAD_VERSION, DICOM_WIRE_HDR_LEN, "wrong version",
	       "wrong version 9 (expected 1)");
	expect(DICOM_DECODE_BAD_VERSION, 5, "wrong version seen before the header is complete",
	       NULL);

	header(200, 0);
	expect(DICOM_DECODE_UNKNOWN_TYPE, DICOM_WIRE_HDR_LEN, "unknown type", "unknown frame type 200");
	header(0, 0);
	expect(DICOM_DECODE_UNKNOWN_TYPE, 6, "type 0 is unknown", NULL);

	header(DICOM_FT_DATA, DICOM_MAX_MSG + 1);
	expect(DICOM_DECODE_TOO_BIG, DICOM_WIRE_HDR_LEN, "DATA over DICOM_MAX_MSG", "exceeds");
	header(DICOM_FT_DATA, DICOM_MAX_MSG);
	expect(DICOM_DECODE_NEED_MORE, DICOM_WIRE_HDR_LEN, "DATA of exactly DICOM_MAX_MSG is fine",
	       NULL);
	header(DICOM_FT_ACK, 1);
	expect(DICOM_DECODE_TOO_BIG, DICOM_WIRE_HDR_LEN, "ACK with a payload", "ACK frame length 1");
	header(DICOM_FT_ERROR, DICOM_WIRE_MAX_TEXT + 1);
	expect(DICOM_DECODE_TOO_BIG, 12, "oversized ERROR rejected from 12 bytes", NULL);
	header(DICOM_FT_RESOLVED, DICOM_WIRE_LOC_LEN + 1);
	expect(DICOM_DECODE_TOO_BIG, DICOM_WIRE_HDR_LEN, "RESOLVED longer than its fixed part",
	       NULL);

	header(DICOM_FT_RESOLVED, 4);
	expect(DICOM_DECODE_TRUNCATED, DICOM_WIRE_HDR_LEN, "RESOLVED shorter than its fixed part",
	       "shorter than its fixed part 8");
	header(DICOM_FT_LOOKUP_REPLY, 0);
	expect(DICOM_DECODE_TRUNCATED, DICOM_WIRE_HDR_LEN, "LOOKUP_REPLY without location", NULL);

	header(DICOM_FT_RESOLVE, 0);
	dicom_put_le16(buf + 6, 0x8000);
	expect(DICOM_DECODE_BAD_FIELD, DICOM_WIRE_HDR_LEN, "unknown flag bit", NULL);
	header(DICOM_FT_DATA, 0);
	dicom_put_le32(buf + 12, 256);
	expect(DICOM_DECODE_BAD_FIELD, DICOM_WIRE_HDR_LEN, "DATA tag over 255", NULL);
	struct dicom_wire_loc loc = { .node = 1, .port = 2, .state = 9 };
	header(DICOM_FT_RESOLVED, DICOM_WIRE_LOC_LEN);
	dicom_wire_loc_encode(&loc, buf + DICOM_WIRE_HDR_LEN);
	expect(DICOM_DECODE_BAD_FIELD, DICOM_WIRE_HDR_LEN + DICOM_WIRE_LOC_LEN,
	       "location with an invalid state", NULL);

	struct dicom_frame out;
	header(DICOM_FT_DATA, 3);
	memcpy(buf + DICOM_WIRE_HDR_LEN, "abc", 3);
	int r = dicom_frame_decode_header(buf, DICOM_WIRE_HDR_LEN, &out);
	tap_ok(r == DICOM_DECODE_OK && out.payload == NULL && out.length == 3,
	       "decode_header accepts a header without its payload");
	tap_ok(dicom_frame_decode(buf, DICOM_WIRE_HDR_LEN + 2, &out) == DICOM_DECODE_NEED_MORE,
	       "decode wants the whole payload");
}

static void test_dicomd_input(void)
{
	struct dicom_frame f;
	size_t used;
	char why[200];
	header(DICOM_FT_DATA, 0);
	int r = dicomd_input_next(buf, DICOM_WIRE_HDR_LEN, ROLE_UNIX, &f, &used, why, sizeof(why));
	tap_ok(r == DICOMD_IN_ERROR && strstr(why, "not accepted"), "dicomd refuses DATA: %s", why);
	header(DICOM_FT_STATUS_REPLY, 100000);
	r = dicomd_input_next(buf, DICOM_WIRE_HDR_LEN, ROLE_UNIX, &f, &used, why, sizeof(why));
	tap_ok(r == DICOMD_IN_ERROR, "dicomd refuses frames bigger than its buffer: %s", why);
	header(DICOM_FT_LOOKUP, 0);
	r = dicomd_input_next(buf, DICOM_WIRE_HDR_LEN, ROLE_PEER_IN, &f, &used, why, sizeof(why));
	tap_ok(r == DICOMD_IN_FRAME && used == DICOM_WIRE_HDR_LEN, "LOOKUP is accepted from peers");
	r = dicomd_input_next(buf, DICOM_WIRE_HDR_LEN, ROLE_UNIX, &f, &used, why, sizeof(why));
	tap_ok(r == DICOMD_IN_ERROR, "LOOKUP is refused on the unix socket");
}

static void test_addr(void)
{
	dicom_addr_t a;
	char text[32];
	tap_ok(dicom_addr_parse("10.77.0.1:4242", &a) == DICOM_OK && a.home_node == 0x0a4d0001 &&
		       a.home_pid == 4242,
	       "addr parse");
	tap_ok(dicom_addr_format(&a, text, sizeof(text)) > 0 && strcmp(text, "10.77.0.1:4242") == 0,
	       "addr format");
	const char *bad[] = { "", "1.2.3:4", "1.2.3.4", "256.1.1.1:1", "1.2.3.4:", "1.2.3.4:x",
			      "1.2.3.4:99999999999", " 1.2.3.4:1", "1.2.3.4:1 ", "-1.2.3.4:1" };
	int all = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		all &= dicom_addr_parse(bad[i], &a) == DICOM_EINVAL;
	tap_ok(all, "addr parse rejects malformed text");
	tap_ok(dicom_addr_format(&a, text, 4) == DICOM_EINVAL, "addr format reports truncation");
	tap_ok(strstr(dicom_strerror(DICOM_ENODAEMON), "dicomctl daemon start") != NULL,
	       "strerror names the fix");
}

int main(void)
{
	test_round_trips();
	test_errors();
	test_dicomd_input();
	test_addr();
	return tap_done();
}
