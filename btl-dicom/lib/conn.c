/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Data connections: accept and connect, reading and dispatching frames to
 * the rx stream (conn_in.c) or the tx stream (conn_out.c), and writing both
 * streams' frames without ever interleaving two frames on the wire.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ep_internal.h"
#include "msgbuf.h"
#include "sock.h"

#define READ_BUDGET (8u << 20) /* per event, so one busy peer cannot starve the rest */

static struct conn *conn_new(dicom_ep_t *ep, int fd, uint32_t events)
{
	struct conn *c = calloc(1, sizeof(*c));
	uint8_t *buf = c ? malloc(DICOM_IN_BUF) : NULL;
	if (!buf) {
		free(c);
		return NULL;
	}
	c->buf = buf;
	c->sock.kind = SK_CONN;
	c->sock.fd = fd;
	c->sock.owner = c;
	dicom_tcp_tune(fd);
	if (dicom_ep_watch(ep, &c->sock, events) < 0) {
		free(buf);
		free(c);
		return NULL;
	}
	c->next = ep->conns;
	if (c->next)
		c->next->prev = c;
	ep->conns = c;
	return c;
}

void dicom_conn_accept(dicom_ep_t *ep)
{
	for (;;) {
		int fd = accept4(ep->listen->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or EMFILE: retried on the next event */
		}
		if (!conn_new(ep, fd, EPOLLIN))
			close(fd);
	}
}

/* Starts a nonblocking connect; NULL if no socket could be made (the
 * caller backs off) or, with errno set, if the address refused at once. */
struct conn *dicom_conn_connect(dicom_ep_t *ep, uint32_t node, uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(node),
				  .sin_port = htons(port) };
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	struct conn *c = conn_new(ep, fd, r == 0 ? EPOLLIN : EPOLLOUT);
	if (!c) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	c->connecting = r != 0;
	return c;
}

void dicom_conn_close(dicom_ep_t *ep, struct conn *c)
{
	if (c->sock.dead)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		ep->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->rx && c->rx->cur == c)
		c->rx->cur = NULL;
	c->rx = NULL;
	dicom_ep_bury(ep, &c->sock); /* frees c once the pass is over */
	struct out_peer *tx = c->tx;
	c->tx = NULL;
	if (tx && tx->conn == c)
		dicom_out_conn_lost(ep, tx, 0);
}

/* A tx frame is partly on the wire: nothing else may be written now. */
static int tx_mid_frame(const struct conn *c)
{
	const struct out_peer *p = c->tx;
	if (!p)
		return 0;
	if (p->state == OUT_HELLO)
		return p->hello_off > 0 && p->hello_off < DICOM_WIRE_HDR_LEN;
	return p->state == OUT_ESTABLISHED && p->st.cursor && p->st.cursor_off > 0;
}

/* 1 written completely, 0 would block, -1 connection closed. */
static int send_bytes(dicom_ep_t *ep, struct conn *c, const uint8_t *b, size_t *off,
		      size_t len)
{
	while (*off < len) {
		ssize_t w = send(c->sock.fd, b + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			*off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		dicom_conn_close(ep, c);
		return -1;
	}
	return 1;
}

/* 1 everything queued is written, 0 would block, -1 closed. */
static int send_tx_data(dicom_ep_t *ep, struct conn *c)
{
	struct out_peer *p = c->tx;
	struct iovec iov[DICOM_MAX_IOV];
	for (;;) {
		int n = dicom_outstream_pending_iov(&p->st, iov, DICOM_MAX_IOV);
		if (n == 0)
			return 1;
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(c->sock.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			dicom_outstream_advance(&p->st, (size_t)w);
			/* Let a waiting control frame in at the frame boundary. */
			if (c->woff < c->wlen && !tx_mid_frame(c))
				return 1;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		dicom_conn_close(ep, c);
		return -1;
	}
}

void dicom_conn_flush(dicom_ep_t *ep, struct conn *c)
{
	if (c->sock.dead || c->connecting)
		return;
	for (;;) {
		int r = 1;
		if (c->woff < c->wlen && !tx_mid_frame(c)) {
			r = send_bytes(ep, c, c->wbuf, &c->woff, c->wlen);
			if (r < 0)
				return;
			if (r == 1) {
				c->woff = c->wlen = 0;
				if (c->close_after_write) {
					dicom_conn_close(ep, c);
					return;
				}
			}
		} else if (c->tx && c->tx->state == OUT_HELLO &&
			   c->tx->hello_off < DICOM_WIRE_HDR_LEN) {
			r = send_bytes(ep, c, c->tx->hello, &c->tx->hello_off, DICOM_WIRE_HDR_LEN);
			if (r < 0)
				return;
		} else if (c->tx && c->tx->state == OUT_ESTABLISHED) {
			r = send_tx_data(ep, c);
			if (r < 0)
				return;
			if (r == 1 && c->woff < c->wlen)
				continue; /* a control frame waited for the boundary */
			if (r == 1)
				break;
		} else {
			break;
		}
		if (r == 0) {
			dicom_ep_set_events(ep, &c->sock, EPOLLIN | EPOLLOUT);
			return;
		}
	}
	dicom_ep_set_events(ep, &c->sock, EPOLLIN);
}

int dicom_conn_queue_ctrl(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f)
{
	if (c->sock.dead)
		return -1;
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + DICOM_WIRE_HDR_LEN > sizeof(c->wbuf)) {
		dicom_conn_flush(ep, c);
		if (c->sock.dead || c->wlen + DICOM_WIRE_HDR_LEN > sizeof(c->wbuf))
			return -1; /* still stuck: the caller retries later */
	}
	dicom_frame_encode_header(f, c->wbuf + c->wlen);
	c->wlen += DICOM_WIRE_HDR_LEN;
	dicom_conn_flush(ep, c);
	return 0;
}

static int dispatch(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f,
		    const uint8_t *payload)
{
	switch (f->type) {
	case DICOM_FT_HELLO:
		return dicom_in_on_hello(ep, c, f);
	case DICOM_FT_DATA:
		return dicom_in_on_data(ep, c, f, payload, NULL);
	case DICOM_FT_HELLO_ACK:
	case DICOM_FT_ACK:
	case DICOM_FT_NOT_HERE:
	case DICOM_FT_ERROR:
		if (!c->tx)
			return -1;
		return dicom_out_on_frame(ep, c->tx, f);
	default:
		return -1; /* daemon frames have no business here */
	}
}

/* Parses every complete frame in the buffer; switches to in-place reading
 * for a large DATA payload.  Returns -1 once the connection is closed. */
static int parse_buffer(dicom_ep_t *ep, struct conn *c)
{
	while (!c->sock.dead && !c->close_after_write) {
		size_t avail = c->end - c->start;
		struct dicom_frame f;
		int d = dicom_frame_decode_header(c->buf + c->start, avail, &f);
		if (d == DICOM_DECODE_NEED_MORE)
			return 0;
		if (d != DICOM_DECODE_OK) {
			dicom_conn_close(ep, c);
			return -1;
		}
		size_t total = DICOM_WIRE_HDR_LEN + (size_t)f.length;
		const uint8_t *payload = c->buf + c->start + DICOM_WIRE_HDR_LEN;
		if (avail >= total) {
			if (f.type != DICOM_FT_DATA && dicom_frame_decode(c->buf + c->start, avail, &f) != DICOM_DECODE_OK) {
				dicom_conn_close(ep, c);
				return -1;
			}
			c->start += total;
			c->after_big = 0;
			if (dispatch(ep, c, &f, payload) < 0) {
				dicom_conn_close(ep, c);
				return -1;
			}
			continue;
		}
		if (f.type == DICOM_FT_DATA && f.length > DICOM_BIG_FRAME) {
			struct held_msg *m = dicom_msgbuf_alloc(sizeof(*m) + f.length);
			if (!m) {
				dicom_conn_close(ep, c);
				return -1;
			}
			c->big_have = avail - DICOM_WIRE_HDR_LEN;
			memcpy(m->data, payload, c->big_have);
			c->big = m;
			c->big_hdr = f;
			c->start = c->end = 0;
		} else if (total > DICOM_IN_BUF) {
			dicom_conn_close(ep, c); /* a non-DATA frame can never be this big */
			return -1;
		}
		return 0;
	}
	return c->sock.dead ? -1 : 0;
}

static void read_input(dicom_ep_t *ep, struct conn *c)
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
			dicom_conn_close(ep, c);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				dicom_conn_close(ep, c);
			return;
		}
		budget -= (size_t)r < budget ? (size_t)r : budget;
		if (c->big) {
			c->big_have += (size_t)r;
			if (c->big_have == c->big_hdr.length) {
				struct held_msg *m = c->big;
				c->big = NULL;
				c->after_big = 1;
				if (dicom_in_on_data(ep, c, &c->big_hdr, m->data, m) < 0) {
					dicom_conn_close(ep, c);
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

void dicom_conn_event(dicom_ep_t *ep, struct conn *c, uint32_t events, int may_read)
{
	if (c->connecting) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(c->sock.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		struct out_peer *tx = c->tx;
		if (err) {
			c->tx = NULL;
			dicom_conn_close(ep, c);
			if (tx)
				dicom_out_conn_lost(ep, tx, 1);
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		c->connecting = 0;
		dicom_ep_set_events(ep, &c->sock, EPOLLIN);
		if (tx)
			dicom_out_connected(ep, tx);
		return;
	}
	if (events & EPOLLOUT)
		dicom_conn_flush(ep, c);
	if (may_read && !c->sock.dead && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		read_input(ep, c);
}
