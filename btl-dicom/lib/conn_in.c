/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Receiver side of the data path: accepted connections, frame parsing,
 * in-order delivery with duplicate suppression, and cumulative acks sent
 * back on the connection the data came in on.
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

#define READ_BUDGET (8u << 20) /* per event, so one busy peer cannot starve the rest */

void dicom_in_accept(dicom_ep_t *ep)
{
	for (;;) {
		int fd = accept4(ep->listen->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or EMFILE: retried on the next event */
		}
		struct in_conn *c = calloc(1, sizeof(*c));
		uint8_t *buf = c ? malloc(DICOM_IN_BUF) : NULL;
		if (!buf) {
			free(c);
			close(fd);
			continue;
		}
		c->buf = buf;
		c->sock.kind = SK_IN;
		c->sock.fd = fd;
		c->sock.owner = c;
		dicom_tcp_tune(fd);
		if (dicom_ep_watch(ep, &c->sock, EPOLLIN) < 0) {
			close(fd);
			free(buf);
			free(c);
			continue;
		}
		c->next = ep->in_conns;
		if (c->next)
			c->next->prev = c;
		ep->in_conns = c;
	}
}

void dicom_in_close(dicom_ep_t *ep, struct in_conn *c)
{
	if (c->sock.dead)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		ep->in_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->peer && c->peer->cur == c)
		c->peer->cur = NULL;
	dicom_ep_bury(ep, &c->sock); /* frees c once the pass is over */
}

static void flush_writes(dicom_ep_t *ep, struct in_conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t w = send(c->sock.fd, c->wbuf + c->woff, c->wlen - c->woff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			c->woff += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			dicom_ep_set_events(ep, &c->sock, EPOLLIN | EPOLLOUT);
			return;
		}
		dicom_in_close(ep, c);
		return;
	}
	c->woff = c->wlen = 0;
	if (c->close_after_write) {
		dicom_in_close(ep, c);
		return;
	}
	dicom_ep_set_events(ep, &c->sock, EPOLLIN);
}

/* Queues a header-only control frame; 0 if queued, -1 if the previous one
 * is still stuck in the socket (the caller retries later). */
static int write_ctrl(dicom_ep_t *ep, struct in_conn *c, const struct dicom_frame *f)
{
	if (c->wlen > c->woff)
		flush_writes(ep, c);
	if (c->sock.dead || c->wlen > c->woff)
		return -1;
	dicom_frame_encode_header(f, c->wbuf);
	c->woff = 0;
	c->wlen = DICOM_WIRE_HDR_LEN;
	flush_writes(ep, c);
	return 0;
}

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
			if (write_ctrl(ep, p->cur, &f) == 0) {
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
static int on_data(dicom_ep_t *ep, struct in_conn *c, const struct dicom_frame *f,
		   const uint8_t *data, struct held_msg *big)
{
	struct in_peer *p = c->peer;
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

static int on_hello(dicom_ep_t *ep, struct in_conn *c, const struct dicom_frame *f)
{
	if (c->peer)
		return -1;
	if (!dicom_addr_eq(f->dst, ep->self)) {
		/* The sender's location for dst is stale and this port now
		 * belongs to us: tell it to re-resolve. */
		struct dicom_frame nh = { .type = DICOM_FT_NOT_HERE, .src = ep->self,
					  .dst = f->src };
		c->close_after_write = 1;
		write_ctrl(ep, c, &nh);
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
	c->peer = p;
	p->cur = c;
	struct dicom_frame ha = { .type = DICOM_FT_HELLO_ACK, .ack = p->st.delivered,
				  .src = ep->self, .dst = f->src };
	if (write_ctrl(ep, c, &ha) < 0)
		return -1;
	dicom_instream_ack_done(&p->st, dicom_now_ns());
	return c->sock.dead ? -1 : 0;
}

/* Parses every complete frame in the buffer; switches to in-place reading
 * for a large DATA payload.  Returns -1 once the connection is closed. */
static int parse_buffer(dicom_ep_t *ep, struct in_conn *c)
{
	while (!c->sock.dead && !c->close_after_write) {
		size_t avail = c->end - c->start;
		struct dicom_frame f;
		int d = dicom_frame_decode_header(c->buf + c->start, avail, &f);
		if (d == DICOM_DECODE_NEED_MORE)
			return 0;
		if (d != DICOM_DECODE_OK ||
		    (f.type != DICOM_FT_DATA && f.type != DICOM_FT_HELLO)) {
			dicom_in_close(ep, c);
			return -1;
		}
		size_t total = DICOM_WIRE_HDR_LEN + (size_t)f.length;
		const uint8_t *payload = c->buf + c->start + DICOM_WIRE_HDR_LEN;
		if (avail >= total) {
			c->start += total;
			c->after_big = 0;
			int r = f.type == DICOM_FT_HELLO ? on_hello(ep, c, &f)
							 : on_data(ep, c, &f, payload, NULL);
			if (r < 0) {
				dicom_in_close(ep, c);
				return -1;
			}
			continue;
		}
		if (f.type == DICOM_FT_DATA && f.length > DICOM_BIG_FRAME) {
			struct held_msg *m = dicom_msgbuf_alloc(sizeof(*m) + f.length);
			if (!m) {
				dicom_in_close(ep, c);
				return -1;
			}
			c->big_have = avail - DICOM_WIRE_HDR_LEN;
			memcpy(m->data, payload, c->big_have);
			c->big = m;
			c->big_hdr = f;
			c->start = c->end = 0;
		}
		return 0;
	}
	return c->sock.dead ? -1 : 0;
}

static void read_input(dicom_ep_t *ep, struct in_conn *c)
{
	size_t budget = READ_BUDGET;
	while (budget > 0 && !c->sock.dead) {
		uint8_t *dst;
		size_t room;
		if (c->big) {
			dst = c->big->data + c->big_have;
			room = c->big_hdr.length - c->big_have;
		} else {
			if (c->start == c->end) {
				c->start = c->end = 0;
			} else if (DICOM_IN_BUF - c->end < DICOM_BIG_FRAME + DICOM_WIRE_HDR_LEN) {
				memmove(c->buf, c->buf + c->start, c->end - c->start);
				c->end -= c->start;
				c->start = 0;
			}
			dst = c->buf + c->end;
			room = DICOM_IN_BUF - c->end;
			/* After a big frame, read just the next header, so a
			 * big payload lands in its buffer without a copy. */
			if (c->after_big && c->end - c->start < DICOM_WIRE_HDR_LEN)
				room = DICOM_WIRE_HDR_LEN - (c->end - c->start);
		}
		ssize_t r = recv(c->sock.fd, dst, room, MSG_DONTWAIT);
		if (r == 0) {
			dicom_in_close(ep, c);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				dicom_in_close(ep, c);
			return;
		}
		budget -= (size_t)r < budget ? (size_t)r : budget;
		if (c->big) {
			c->big_have += (size_t)r;
			if (c->big_have == c->big_hdr.length) {
				struct held_msg *m = c->big;
				c->big = NULL;
				c->after_big = 1;
				if (on_data(ep, c, &c->big_hdr, m->data, m) < 0) {
					dicom_in_close(ep, c);
					return;
				}
			}
			continue;
		}
		c->end += (size_t)r;
		if (parse_buffer(ep, c) < 0)
			return;
	}
}

void dicom_in_event(dicom_ep_t *ep, struct in_conn *c, uint32_t events)
{
	if (events & EPOLLOUT)
		flush_writes(ep, c);
	if (!c->sock.dead && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		read_input(ep, c);
}
