/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-stream reliability state, free of sockets so it can be unit-tested:
 * the sender side keeps every message until the receiver's cumulative ack
 * covers it and rewinds to the first unacknowledged one after a reconnect;
 * the receiver side accepts only the next sequence number, drops duplicates
 * and decides when an ack is worth a write.
 */
#ifndef DICOM_STREAM_H
#define DICOM_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dicom_wire.h"

struct dicom_outmsg {
	struct dicom_outmsg *next;
	uint64_t seq;
	uint32_t len; /* payload bytes */
	uint8_t hdr[DICOM_WIRE_HDR_LEN];
	uint8_t data[];
};

struct dicom_outstream {
	dicom_addr_t src, dst;
	uint64_t next_seq;  /* assigned to the next queued message; starts at 1 */
	uint64_t acked;     /* receiver delivered every seq <= acked */
	uint64_t high_sent; /* highest seq ever completely written */
	struct dicom_outmsg *head, *tail; /* unacked, ascending seq */
	/* Transmit position on the current connection: everything before it
	 * was written there, nothing from it on.  The cursor message may be an
	 * "orphan" (acked meanwhile) that must still be finished so the
	 * connection's framing stays intact. */
	struct dicom_outmsg *cursor;
	size_t cursor_off;
	int cursor_orphan;
	size_t unacked_bytes;
	size_t window;
	uint64_t retransmitted;
};

void dicom_outstream_init(struct dicom_outstream *s, dicom_addr_t src,
			  dicom_addr_t dst, size_t window);
void dicom_outstream_destroy(struct dicom_outstream *s);
/* Nonzero if a message of len bytes fits the window now.  An empty stream
 * always accepts one message, so messages larger than the window still go. */
int dicom_outstream_has_room(const struct dicom_outstream *s, size_t len);
/* Copies the message in and queues it; NULL on ENOMEM. */
struct dicom_outmsg *dicom_outstream_push(struct dicom_outstream *s, uint8_t tag,
					  const struct iovec *iov, int iovcnt,
					  size_t len);
/* Applies a cumulative ack; returns messages freed, or -1 if the ack names
 * a message never sent (protocol error). */
long dicom_outstream_ack(struct dicom_outstream *s, uint64_t ack);
/* New connection established, receiver reports it delivered up to
 * `delivered`: drop what it has, restart transmission at the first
 * unacked message.  Returns -1 on an impossible report. */
long dicom_outstream_rewind(struct dicom_outstream *s, uint64_t delivered);
/* The connection broke: forget partial writes (the next connection starts
 * with a fresh rewind). */
void dicom_outstream_disconnect(struct dicom_outstream *s);
/* Fills iov with what is left to write (header/payload pairs from the
 * cursor); returns the count, 0 when everything is written. */
int dicom_outstream_pending_iov(const struct dicom_outstream *s,
				struct iovec *iov, int max);
/* Records that n bytes of the pending iov were written. */
void dicom_outstream_advance(struct dicom_outstream *s, size_t n);
static inline int dicom_outstream_idle(const struct dicom_outstream *s)
{
	return s->head == NULL;
}

enum dicom_in_verdict {
	DICOM_IN_DELIVER = 0,
	DICOM_IN_DUPLICATE = 1,
	DICOM_IN_GAP = 2, /* impossible on a correct sender: protocol error */
};

struct dicom_instream {
	dicom_addr_t peer;
	uint64_t delivered;
	uint64_t ack_sent;      /* highest ack value handed to a connection */
	size_t bytes_since_ack;
	unsigned frames_since_ack;
	int64_t last_ack_ns;
	size_t ack_bytes;       /* byte threshold derived from the sender's window */
	uint64_t duplicates;
};

void dicom_instream_init(struct dicom_instream *s, dicom_addr_t peer);
int dicom_instream_accept(struct dicom_instream *s, uint64_t seq, size_t len);
/* Ack when a quarter of the sender's window (capped) or many frames are
 * unacknowledged, or when the last ack is older than delay_ns: batching
 * saves a write per message, the delay bounds how long a sender that
 * stopped sending waits for its window. */
int dicom_instream_ack_due(const struct dicom_instream *s, int64_t now_ns,
			   int64_t delay_ns);
void dicom_instream_ack_done(struct dicom_instream *s, int64_t now_ns);
void dicom_instream_set_sender_window(struct dicom_instream *s, size_t window);

#define DICOM_ACK_FRAMES 64
#define DICOM_ACK_BYTES_MAX (1u << 20)

#endif
