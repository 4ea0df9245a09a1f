/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Receiver side of the data path: a peer's HELLO opens its stream on a
 * connection, then in-order delivery with duplicate suppression, and
 * cumulative acks sent back on the connection the data came in on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ep_internal.h"
#include "msgbuf.h"
#include "sock.h"

static void note_ack_needed(dicom_ep_t *ep, struct in_peer *p)
{
	if (p->on_ack_list)
		return;
	p->on_ack_list = 1;
	p->ack_next = ep->ack_list;
	ep->ack_list = p;
}

void dicom_in_send_acks(dicom_ep_t *ep, int64_t now)
{
	struct in_peer **pp = &ep->ack_list;
	while (*pp) {
		struct in_peer *p = *pp;
		int done = p->st.delivered <= p->st.ack_sent || !p->cur;
		if (!done && dicom_instream_ack_due(&p->st, now, DICOM_ACK_DELAY_NS)) {
			struct dicom_frame f = { .type = DICOM_FT_ACK,
						 .ack = p->st.delivered,
						 .src = ep->self,
						 .dst = p->st.peer };
			if (dicom_conn_queue_ctrl(ep, p->cur, &f) == 0) {
				dicom_instream_ack_done(&p->st, now);
				done = 1;
			}
		}
		if (done) {
			/* A connection-less stream gets its ack in the next
			 * HELLO_ACK instead. */
			*pp = p->ack_next;
			p->on_ack_list = 0;
		} else {
			pp = &p->ack_next;
		}
	}
}

static void hold(dicom_ep_t *ep, struct held_msg *m)
{
	m->next = NULL;
	if (ep->held_tail)
		ep->held_tail->next = m;
	else
		ep->held_head = m;
	ep->held_tail = m;
	ep->held_bytes += m->len;
}

void dicom_held_free_all(dicom_ep_t *ep)
{
	while (ep->held_head) {
		struct held_msg *m = ep->held_head;
		ep->held_head = m->next;
		dicom_msgbuf_free(m);
	}
	ep->held_tail = NULL;
	ep->held_bytes = 0;
}

/* big, when set, already holds the payload (and is consumed here). */
int dicom_in_on_data(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f,
		     const uint8_t *data, struct held_msg *big)
{
	struct in_peer *p = c->rx;
	if (!p || !dicom_addr_eq(f->src, p->st.peer) || !dicom_addr_eq(f->dst, ep->self)) {
		dicom_msgbuf_free(big);
		return -1;
	}
	switch (dicom_instream_accept(&p->st, f->seq, f->length)) {
	case DICOM_IN_DUPLICATE:
		ep->stats.duplicates_dropped++;
		dicom_msgbuf_free(big);
		return 0;
	case DICOM_IN_GAP:
		dicom_msgbuf_free(big);
		return -1;
	default:
		break;
	}
	ep->stats.msgs_delivered++;
	if (ep->reattached_ns && !ep->first_data_after_ns)
		ep->first_data_after_ns = dicom_now_ns();
	ep->stats.bytes_delivered += f->length;
	note_ack_needed(ep, p);
	if (ep->cb && !ep->held_head) {
		ep->cb_calls++;
		ep->cb(ep->cb_ctx, &f->src, (uint8_t)f->aux, data, f->length);
		dicom_msgbuf_free(big);
		return 0;
	}
	struct held_msg *m = big;
	if (!m) {
		m = dicom_msgbuf_alloc(sizeof(*m) + f->length);
		if (!m)
			return -1; /* unacked: the sender resends after reconnect */
		if (f->length)
			memcpy(m->data, data, f->length);
	}
	m->src = f->src;
	m->tag = (uint8_t)f->aux;
	m->len = f->length;
	hold(ep, m);
	return 0;
}

int dicom_in_on_hello(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f)
{
	if (c->rx)
		return -1;
	if (!dicom_addr_eq(f->dst, ep->self)) {
		/* The sender's location for dst is stale and this port now
		 * belongs to us: tell it to re-resolve. */
		struct dicom_frame nh = { .type = DICOM_FT_NOT_HERE, .src = ep->self,
					  .dst = f->src };
		c->close_after_write = 1;
		dicom_conn_queue_ctrl(ep, c, &nh);
		return c->sock.dead ? -1 : 0;
	}
	struct in_peer *p = dicom_addrmap_get(&ep->ins_by_src, f->src);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p || dicom_addrmap_put(&ep->ins_by_src, f->src, p) < 0) {
			free(p);
			return -1;
		}
		dicom_instream_init(&p->st, f->src);
	}
	dicom_instream_set_sender_window(&p->st, (size_t)f->aux * 1024);
	c->rx = p;
	p->cur = c;
	struct dicom_frame ha = { .type = DICOM_FT_HELLO_ACK, .ack = p->st.delivered,
				  .src = ep->self, .dst = f->src };
	if (dicom_conn_queue_ctrl(ep, c, &ha) < 0)
		return -1;
	dicom_instream_ack_done(&p->st, dicom_now_ns());
	return c->sock.dead ? -1 : 0;
}
