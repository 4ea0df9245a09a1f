/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>
#include <string.h>

#include "msgbuf.h"
#include "stream.h"

void dicom_outstream_init(struct dicom_outstream *s, dicom_addr_t src,
			  dicom_addr_t dst, size_t window)
{
	memset(s, 0, sizeof(*s));
	s->src = src;
	s->dst = dst;
	s->next_seq = 1;
	s->window = window;
}

void dicom_outstream_destroy(struct dicom_outstream *s)
{
	if (s->cursor_orphan)
		dicom_msgbuf_free(s->cursor);
	struct dicom_outmsg *m = s->head;
	while (m) {
		struct dicom_outmsg *n = m->next;
		dicom_msgbuf_free(m);
		m = n;
	}
	s->head = s->tail = s->cursor = NULL;
	s->cursor_orphan = 0;
	s->unacked_bytes = 0;
}

int dicom_outstream_has_room(const struct dicom_outstream *s, size_t len)
{
	return s->head == NULL || s->unacked_bytes + len <= s->window;
}

struct dicom_outmsg *dicom_outstream_push(struct dicom_outstream *s, uint8_t tag,
					  const struct iovec *iov, int iovcnt,
					  size_t len)
{
	struct dicom_outmsg *m = dicom_msgbuf_alloc(sizeof(*m) + len);
	if (!m)
		return NULL;
	m->next = NULL;
	m->seq = s->next_seq++;
	m->len = (uint32_t)len;
	size_t off = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	struct dicom_frame f = {
		.type = DICOM_FT_DATA,
		.length = (uint32_t)len,
		.aux = tag,
		.seq = m->seq,
		.src = s->src,
		.dst = s->dst,
	};
	dicom_frame_encode_header(&f, m->hdr);
	if (s->tail)
		s->tail->next = m;
	else
		s->head = m;
	s->tail = m;
	if (!s->cursor)
		s->cursor = m, s->cursor_off = 0;
	s->unacked_bytes += len;
	return m;
}

long dicom_outstream_ack(struct dicom_outstream *s, uint64_t ack)
{
	if (ack <= s->acked)
		return 0;
	if (ack > s->high_sent)
		return -1;
	long freed = 0;
	int cursor_gone = 0;
	while (s->head && s->head->seq <= ack) {
		struct dicom_outmsg *m = s->head;
		s->head = m->next;
		if (!s->head)
			s->tail = NULL;
		s->unacked_bytes -= m->len;
		freed++;
		if (m == s->cursor) {
			cursor_gone = 1;
			if (s->cursor_off > 0) {
				s->cursor_orphan = 1; /* finish writing it, then free */
				m->next = NULL;
				continue;
			}
		}
		dicom_msgbuf_free(m);
	}
	s->acked = ack;
	/* Messages between an acked cursor and the ack were delivered over an
	 * older connection; skip them on this one. */
	if (cursor_gone && !s->cursor_orphan)
		s->cursor = s->head, s->cursor_off = 0;
	return freed;
}

void dicom_outstream_disconnect(struct dicom_outstream *s)
{
	if (s->cursor_orphan)
		dicom_msgbuf_free(s->cursor);
	s->cursor_orphan = 0;
	s->cursor = s->head;
	s->cursor_off = 0;
}

long dicom_outstream_rewind(struct dicom_outstream *s, uint64_t delivered)
{
	dicom_outstream_disconnect(s);
	long freed = dicom_outstream_ack(s, delivered);
	if (freed < 0)
		return -1;
	s->cursor = s->head;
	s->cursor_off = 0;
	for (struct dicom_outmsg *m = s->head; m && m->seq <= s->high_sent; m = m->next)
		s->retransmitted++;
	return freed;
}

int dicom_outstream_pending_iov(const struct dicom_outstream *s,
				struct iovec *iov, int max)
{
	int n = 0;
	const struct dicom_outmsg *m = s->cursor;
	size_t off = s->cursor_off;
	while (m && n + 2 <= max) {
		if (off < DICOM_WIRE_HDR_LEN) {
			iov[n].iov_base = (void *)(m->hdr + off);
			iov[n].iov_len = DICOM_WIRE_HDR_LEN - off;
			n++;
			off = DICOM_WIRE_HDR_LEN;
		}
		size_t doff = off - DICOM_WIRE_HDR_LEN;
		if (doff < m->len) {
			iov[n].iov_base = (void *)(m->data + doff);
			iov[n].iov_len = m->len - doff;
			n++;
		}
		/* After an orphan, transmission resumes at the first unacked. */
		m = (m == s->cursor && s->cursor_orphan) ? s->head : m->next;
		off = 0;
	}
	return n;
}

void dicom_outstream_advance(struct dicom_outstream *s, size_t n)
{
	while (n > 0 && s->cursor) {
		struct dicom_outmsg *m = s->cursor;
		size_t left = DICOM_WIRE_HDR_LEN + (size_t)m->len - s->cursor_off;
		if (n < left) {
			s->cursor_off += n;
			return;
		}
		n -= left;
		if (m->seq > s->high_sent)
			s->high_sent = m->seq;
		if (s->cursor_orphan) {
			s->cursor_orphan = 0;
			s->cursor = s->head;
			dicom_msgbuf_free(m);
		} else {
			s->cursor = m->next;
		}
		s->cursor_off = 0;
	}
}

void dicom_instream_init(struct dicom_instream *s, dicom_addr_t peer)
{
	memset(s, 0, sizeof(*s));
	s->peer = peer;
	s->ack_bytes = DICOM_ACK_BYTES_MAX;
}

int dicom_instream_accept(struct dicom_instream *s, uint64_t seq, size_t len)
{
	if (seq <= s->delivered) {
		s->duplicates++;
		return DICOM_IN_DUPLICATE;
	}
	if (seq != s->delivered + 1)
		return DICOM_IN_GAP;
	s->delivered = seq;
	s->bytes_since_ack += len;
	s->frames_since_ack++;
	return DICOM_IN_DELIVER;
}

int dicom_instream_ack_due(const struct dicom_instream *s, int64_t now_ns,
			   int64_t delay_ns)
{
	if (s->delivered <= s->ack_sent)
		return 0;
	return s->bytes_since_ack >= s->ack_bytes ||
	       s->frames_since_ack >= DICOM_ACK_FRAMES ||
	       now_ns - s->last_ack_ns >= delay_ns;
}

void dicom_instream_ack_done(struct dicom_instream *s, int64_t now_ns)
{
	s->ack_sent = s->delivered;
	s->bytes_since_ack = 0;
	s->frames_since_ack = 0;
	s->last_ack_ns = now_ns;
}

void dicom_instream_set_sender_window(struct dicom_instream *s, size_t window)
{
	size_t quarter = window / 4;
	if (quarter == 0)
		quarter = 1;
	s->ack_bytes = quarter < DICOM_ACK_BYTES_MAX ? quarter : DICOM_ACK_BYTES_MAX;
}
