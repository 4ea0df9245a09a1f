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
		int done = p->st.delivered <= p->st.ack_sent || (!p->cur && !p->kcur);
		if (!done && dicom_instream_ack_due(&p->st, now, DICOM_ACK_DELAY_NS)) {
			struct dicom_frame f = { .type = DICOM_FT_ACK,
						 .ack = p->st.delivered,
						 .src = ep->self,
						 .dst = p->st.peer };
			int queued = p->cur ? dicom_conn_queue_ctrl(ep, p->cur, &f)
					    : dicom_kmbox_send_ack(ep, p);
			if (queued == 0) {
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

/* The stream src -> self, whichever path (socket or mailbox) carries it. */
struct in_peer *dicom_in_peer_get(dicom_ep_t *ep, dicom_addr_t src)
{
	struct in_peer *p = dicom_addrmap_get(&ep->ins_by_src, src);
	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p || dicom_addrmap_put(&ep->ins_by_src, src, p) < 0) {
		free(p);
		return NULL;
	}
	dicom_instream_init(&p->st, src);
	return p;
}

/* Accepts f (a whole DATA message) into p's stream.  big, when set, already
 * holds the payload (and is consumed here).  1 delivered, 0 a duplicate,
 * -1 a gap or no memory (left unacked). */
int dicom_in_deliver(dicom_ep_t *ep, struct in_peer *p, const struct dicom_frame *f,
		     const uint8_t *data, struct held_msg *big)
{
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
		return 1;
	}
	struct held_msg *m = big;
	if (!m) {
		m = dicom_msgbuf_alloc(sizeof(*m) + f->length);
		if (!m) {
			/* unacked: the sender resends after reconnect */
			p->st.delivered--;
			p->st.frames_since_ack--;
			p->st.bytes_since_ack -= f->length;
			ep->stats.msgs_delivered--;
			ep->stats.bytes_delivered -= f->length;
			return -1;
		}
		if (f->length)
			memcpy(m->data, data, f->length);
	}
	m->src = f->src;
	m->tag = (uint8_t)f->aux;
	m->len = f->length;
	hold(ep, m);
	return 1;
}

int dicom_in_on_data(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f,
		     const uint8_t *data, struct held_msg *big)
{
	struct in_peer *p = c->rx;
	/* Fragments belong to the mailbox path only. */
	if (!p || !dicom_addr_eq(f->src, p->st.peer) || !dicom_addr_eq(f->dst, ep->self) ||
	    (f->flags & DICOM_FLAG_MORE) || f->ack) {
		dicom_msgbuf_free(big);
		return -1;
	}
	return dicom_in_deliver(ep, p, f, data, big) < 0 ? -1 : 0;
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
	struct in_peer *p = dicom_in_peer_get(ep, f->src);
	if (!p)
		return -1;
	dicom_instream_set_sender_window(&p->st, (size_t)f->aux * 1024);
	c->rx = p;
	p->cur = c;
	p->kcur = 0;
	struct dicom_frame ha = { .type = DICOM_FT_HELLO_ACK, .ack = p->st.delivered,
				  .src = ep->self, .dst = f->src };
	if (dicom_conn_queue_ctrl(ep, c, &ha) < 0)
		return -1;
	dicom_instream_ack_done(&p->st, dicom_now_ns());
	return c->sock.dead ? -1 : 0;
}
