/* SPDX-License-Identifier: BSD-3-Clause */
/* Stream reliability logic without sockets: a simulated lossy carrier. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "stream.h"

static const dicom_addr_t A = { 0x7f000001, 10 }, B = { 0x7f000001, 20 };

static void push_n(struct dicom_outstream *s, int n, size_t len)
{
	static uint8_t data[4096];
	for (int i = 0; i < n; i++) {
		memset(data, i & 0xff, len);
		struct iovec iov = { data, len };
		dicom_outstream_push(s, (uint8_t)i, &iov, 1, len);
	}
}

/* Bytes the stream would write now, flattened. */
static size_t drain(struct dicom_outstream *s, uint8_t *out, size_t max_bytes)
{
	struct iovec iov[16];
	size_t total = 0;
	for (;;) {
		int n = dicom_outstream_pending_iov(s, iov, 16);
		if (n == 0 || total >= max_bytes)
			return total;
		size_t chunk = 0;
		for (int i = 0; i < n && total + chunk < max_bytes; i++) {
			size_t take = iov[i].iov_len;
			if (total + chunk + take > max_bytes)
				take = max_bytes - total - chunk;
			memcpy(out + total + chunk, iov[i].iov_base, take);
			chunk += take;
		}
		dicom_outstream_advance(s, chunk);
		total += chunk;
	}
}

/* Feeds a byte stream to a receiver; returns frames delivered, records dups. */
static int receive(struct dicom_instream *in, const uint8_t *bytes, size_t len, uint64_t *last,
		   int *gap)
{
	int delivered = 0;
	size_t off = 0;
	while (off < len) {
		struct dicom_frame f;
		if (dicom_frame_decode(bytes + off, len - off, &f) != DICOM_DECODE_OK)
			break;
		off += DICOM_WIRE_HDR_LEN + f.length;
		int v = dicom_instream_accept(in, f.seq, f.length);
		if (v == DICOM_IN_DELIVER) {
			delivered++;
			if (f.seq != *last + 1)
				*gap = 1;
			*last = f.seq;
		} else if (v == DICOM_IN_GAP) {
			*gap = 1;
		}
	}
	return delivered;
}

int main(void)
{
	struct dicom_outstream s;
	dicom_outstream_init(&s, A, B, 1000);
	tap_ok(dicom_outstream_has_room(&s, 5000), "an empty stream takes one oversized message");
	push_n(&s, 3, 300);
	tap_ok(s.head && s.head->seq == 1 && s.tail->seq == 3, "sequence numbers start at 1");
	tap_ok(s.unacked_bytes == 900 && dicom_outstream_has_room(&s, 100) &&
		       !dicom_outstream_has_room(&s, 101),
	       "window counts unacked payload bytes (full -> EAGAIN)");
	tap_ok(dicom_outstream_ack(&s, 1) == -1, "ack of a never-sent message is a protocol error");

	static uint8_t wire[1 << 16];
	size_t n = drain(&s, wire, sizeof(wire));
	tap_ok(n == 3 * (DICOM_WIRE_HDR_LEN + 300) && s.high_sent == 3, "all three written");
	tap_ok(dicom_outstream_ack(&s, 2) == 2 && s.unacked_bytes == 300 && s.head->seq == 3,
	       "cumulative ack frees everything up to it");
	tap_ok(dicom_outstream_ack(&s, 1) == 0, "an older ack is ignored");

	struct dicom_instream in;
	dicom_instream_init(&in, A);
	uint64_t last = 0;
	int gap = 0;
	tap_ok(receive(&in, wire, n, &last, &gap) == 3 && !gap, "receiver delivers 1..3 in order");
	tap_ok(receive(&in, wire, n, &last, &gap) == 0 && in.duplicates == 3,
	       "a replay of the same bytes is dropped as duplicates");
	tap_ok(dicom_instream_accept(&in, 5, 0) == DICOM_IN_GAP, "a gap is detected");

	/* Reconnect: the receiver reports delivered=3 while the sender still
	 * holds 3 unacked; then new messages follow. */
	push_n(&s, 2, 10);
	size_t part = drain(&s, wire, DICOM_WIRE_HDR_LEN + 4); /* connection breaks mid-frame */
	tap_ok(part == DICOM_WIRE_HDR_LEN + 4 && s.cursor && s.cursor->seq == 4 && s.cursor_off == part,
	       "partial write leaves the cursor inside frame 4");
	dicom_outstream_disconnect(&s);
	tap_ok(dicom_outstream_rewind(&s, 3) == 1 && s.head->seq == 4 && s.cursor == s.head &&
		       s.cursor_off == 0,
	       "rewind after reconnect drops what was delivered and restarts at 4");
	n = drain(&s, wire, sizeof(wire));
	tap_ok(receive(&in, wire, n, &last, &gap) == 2 && last == 5 && !gap,
	       "retransmission after reconnect delivers 4..5 exactly once");
	tap_ok(s.retransmitted == 0, "a frame never completely written is not counted as a retransmission");

	/* An ack over an older connection arrives while the cursor sits
	 * inside a frame it covers: the frame is finished, then skipped ones. */
	dicom_outstream_ack(&s, 5);
	push_n(&s, 3, 100); /* seq 6,7,8 */
	drain(&s, wire, sizeof(wire));
	dicom_outstream_disconnect(&s);
	dicom_outstream_rewind(&s, 5);
	size_t p2 = drain(&s, wire, 10); /* 10 bytes of frame 6 on the new connection */
	tap_ok(dicom_outstream_ack(&s, 7) == 2 && s.cursor_orphan, "acked cursor becomes an orphan");
	size_t rest = drain(&s, wire + p2, sizeof(wire) - p2);
	tap_ok(p2 + rest == 2 * (DICOM_WIRE_HDR_LEN + 100) && s.cursor == NULL && !s.cursor_orphan,
	       "orphan finished (framing intact), acked frame 7 skipped, 8 sent");
	struct dicom_frame f;
	tap_ok(dicom_frame_decode(wire + DICOM_WIRE_HDR_LEN + 100, rest + p2 - DICOM_WIRE_HDR_LEN - 100,
				  &f) == DICOM_DECODE_OK &&
		       f.seq == 8,
	       "the frame after the orphan is 8");
	dicom_outstream_ack(&s, 8);
	tap_ok(dicom_outstream_idle(&s) && s.unacked_bytes == 0, "stream idle once all acked");
	dicom_outstream_destroy(&s);

	/* ack policy */
	struct dicom_instream r;
	dicom_instream_init(&r, A);
	dicom_instream_set_sender_window(&r, 4000);
	dicom_instream_ack_done(&r, 0);
	tap_ok(!dicom_instream_ack_due(&r, 10, 1000), "nothing to ack");
	dicom_instream_accept(&r, 1, 10);
	tap_ok(!dicom_instream_ack_due(&r, 10, 1000), "small delivery waits for the delay");
	tap_ok(dicom_instream_ack_due(&r, 1000, 1000), "delay elapsed: ack");
	dicom_instream_accept(&r, 2, 1000);
	tap_ok(dicom_instream_ack_due(&r, 10, 1000), "a quarter of the sender's window: ack now");
	dicom_instream_ack_done(&r, 10);
	for (uint64_t q = 3; q < 3 + DICOM_ACK_FRAMES; q++)
		dicom_instream_accept(&r, q, 0);
	tap_ok(dicom_instream_ack_due(&r, 11, 1000), "many frames: ack now");

	/* Randomised: random breaks at random byte offsets never lose,
	 * duplicate or reorder a message. */
	srand(7);
	struct dicom_outstream rs;
	dicom_outstream_init(&rs, A, B, 1 << 20);
	struct dicom_instream rr;
	dicom_instream_init(&rr, A);
	uint64_t rlast = 0;
	int rgap = 0, delivered = 0;
	/* The receiver's connection buffer: bytes of a partial frame wait for
	 * the rest, and are lost when the connection breaks. */
	static uint8_t rx[1 << 18];
	size_t rxlen = 0;
	for (int round = 0; round < 3000; round++) {
		push_n(&rs, rand() % 4, (size_t)(rand() % 200));
		size_t cut = (size_t)(rand() % 3000);
		rxlen += drain(&rs, rx + rxlen, cut);
		size_t used = 0;
		for (;;) {
			struct dicom_frame fr;
			if (dicom_frame_decode(rx + used, rxlen - used, &fr) != DICOM_DECODE_OK)
				break;
			size_t one = DICOM_WIRE_HDR_LEN + fr.length;
			delivered += receive(&rr, rx + used, one, &rlast, &rgap);
			used += one;
		}
		memmove(rx, rx + used, rxlen - used);
		rxlen -= used;
		if (rand() % 3 == 0) {
			rxlen = 0;
			dicom_outstream_disconnect(&rs);
			dicom_outstream_rewind(&rs, rr.delivered);
		} else if (rand() % 2) {
			dicom_outstream_ack(&rs, rr.delivered);
		}
	}
	dicom_outstream_disconnect(&rs);
	dicom_outstream_rewind(&rs, rr.delivered);
	rxlen = drain(&rs, rx, sizeof(rx));
	delivered += receive(&rr, rx, rxlen, &rlast, &rgap);
	tap_ok(!rgap && (uint64_t)delivered == rs.next_seq - 1 && rr.delivered == rs.next_seq - 1,
	       "random breaks: %d messages delivered exactly once, in order", delivered);
	dicom_outstream_destroy(&rs);
	return tap_done();
}
