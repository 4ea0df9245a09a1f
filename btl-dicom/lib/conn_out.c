/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sender side of the data path: one outgoing TCP connection per destination
 * (so two endpoints never race to connect to each other), resolution
 * through the daemon, HELLO handshake, writev of queued frames, acks.
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
#include "sock.h"

struct out_peer *dicom_out_get(dicom_ep_t *ep, dicom_addr_t dst)
{
	struct out_peer *p = dicom_addrmap_get(&ep->outs_by_dst, dst);
	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	dicom_outstream_init(&p->st, ep->self, dst, ep->window);
	p->state = OUT_IDLE;
	if (dicom_addrmap_put(&ep->outs_by_dst, dst, p) < 0) {
		free(p);
		return NULL;
	}
	p->next = ep->outs;
	ep->outs = p;
	return p;
}

void dicom_out_close(dicom_ep_t *ep, struct out_peer *p)
{
	if (p->sock) {
		dicom_ep_bury(ep, p->sock);
		p->sock = NULL;
	}
	dicom_outstream_disconnect(&p->st);
	p->rlen = 0;
	if (p->state == OUT_CONNECTING || p->state == OUT_HELLO ||
	    p->state == OUT_ESTABLISHED)
		p->state = OUT_IDLE;
}

void dicom_out_retry_later(dicom_ep_t *ep, struct out_peer *p, int64_t now)
{
	p->backoff = p->backoff ? p->backoff * 2 : 1000000;
	if (p->backoff > DICOM_BACKOFF_MAX_NS)
		p->backoff = DICOM_BACKOFF_MAX_NS;
	p->state = OUT_WAIT_RETRY;
	p->retry_at = now + p->backoff;
	dicom_ep_timer_at(ep, p->retry_at);
}

/* The location is wrong or the peer is gone: forget it and ask the daemons
 * again, past their caches. */
static void out_fail(dicom_ep_t *ep, struct out_peer *p)
{
	dicom_out_close(ep, p);
	p->have_loc = 0;
	p->bypass = 1;
	dicom_out_retry_later(ep, p, dicom_now_ns());
}

/* An established connection broke: the peer is probably still where it
 * was, so reconnect at once; out_fail takes over if that is wrong. */
static void out_broken(dicom_ep_t *ep, struct out_peer *p)
{
	int was_established = p->state == OUT_ESTABLISHED;
	if (!was_established) {
		out_fail(ep, p);
		return;
	}
	dicom_out_close(ep, p);
	p->state = OUT_IDLE;
	dicom_ep_timer_at(ep, 0);
}

static void write_hello(dicom_ep_t *ep, struct out_peer *p)
{
	while (p->hello_off < DICOM_WIRE_HDR_LEN) {
		ssize_t w = send(p->sock->fd, p->hello + p->hello_off,
				 DICOM_WIRE_HDR_LEN - p->hello_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			p->hello_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			dicom_ep_set_events(ep, p->sock, EPOLLIN | EPOLLOUT);
			return;
		}
		out_fail(ep, p);
		return;
	}
	dicom_ep_set_events(ep, p->sock, EPOLLIN);
}

static void on_connected(dicom_ep_t *ep, struct out_peer *p)
{
	size_t kib = ep->window / 1024;
	struct dicom_frame f = {
		.type = DICOM_FT_HELLO,
		.aux = kib > UINT32_MAX ? UINT32_MAX : (uint32_t)kib,
		.src = ep->self,
		.dst = p->st.dst,
	};
	dicom_frame_encode_header(&f, p->hello);
	p->hello_off = 0;
	p->state = OUT_HELLO;
	write_hello(ep, p);
}

static void start_connect(dicom_ep_t *ep, struct out_peer *p)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct dicom_sock *s = fd >= 0 ? calloc(1, sizeof(*s)) : NULL;
	if (!s) {
		if (fd >= 0)
			close(fd);
		dicom_out_retry_later(ep, p, dicom_now_ns());
		return;
	}
	s->kind = SK_OUT;
	s->fd = fd;
	s->owner = p;
	dicom_tcp_tune(fd);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(p->node),
				  .sin_port = htons(p->port) };
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno != EINPROGRESS) {
		close(fd);
		free(s);
		out_fail(ep, p);
		return;
	}
	if (dicom_ep_watch(ep, s, r == 0 ? EPOLLIN : EPOLLOUT) < 0) {
		close(fd);
		free(s);
		dicom_out_retry_later(ep, p, dicom_now_ns());
		return;
	}
	p->sock = s;
	p->rlen = 0;
	p->state = OUT_CONNECTING;
	if (r == 0)
		on_connected(ep, p);
}

void dicom_out_kick(dicom_ep_t *ep, struct out_peer *p, int64_t now)
{
	if (ep->detached || (p->state != OUT_IDLE && p->state != OUT_WAIT_RETRY))
		return;
	if (dicom_outstream_idle(&p->st)) {
		p->state = OUT_IDLE; /* connect lazily, when there is data */
		return;
	}
	if (p->have_loc) {
		start_connect(ep, p);
		return;
	}
	p->state = OUT_RESOLVING;
	p->retry_at = now + DICOM_RESOLVE_TIMEOUT_NS;
	dicom_ep_timer_at(ep, p->retry_at);
	dicom_dl_request_resolve(ep, p);
}

void dicom_out_resolved(dicom_ep_t *ep, struct out_peer *p,
			const struct dicom_wire_loc *loc, int64_t now)
{
	if (p->state != OUT_RESOLVING)
		return;
	if (loc->state == DICOM_LOC_ACTIVE && loc->port != 0) {
		p->have_loc = 1;
		p->node = loc->node;
		p->port = loc->port;
		p->state = OUT_IDLE;
		dicom_out_kick(ep, p, now);
		return;
	}
	/* Not registered yet (startup), detached (migrating) or unknown:
	 * keep the messages and ask again later. */
	p->bypass = 1;
	dicom_out_retry_later(ep, p, now);
}

void dicom_out_timers(dicom_ep_t *ep, int64_t now)
{
	if (ep->detached)
		return;
	for (struct out_peer *p = ep->outs; p; p = p->next) {
		switch (p->state) {
		case OUT_IDLE:
			dicom_out_kick(ep, p, now);
			break;
		case OUT_WAIT_RETRY:
			if (p->retry_at <= now)
				dicom_out_kick(ep, p, now);
			else
				dicom_ep_timer_at(ep, p->retry_at);
			break;
		case OUT_RESOLVING:
			if (p->retry_at <= now) {
				/* the daemon never answered: ask again */
				p->state = OUT_IDLE;
				p->bypass = 1;
				dicom_out_kick(ep, p, now);
			} else {
				dicom_ep_timer_at(ep, p->retry_at);
			}
			break;
		default:
			break;
		}
	}
}

void dicom_out_flush(dicom_ep_t *ep, struct out_peer *p)
{
	if (p->state != OUT_ESTABLISHED)
		return;
	struct iovec iov[DICOM_MAX_IOV];
	for (;;) {
		int n = dicom_outstream_pending_iov(&p->st, iov, DICOM_MAX_IOV);
		if (n == 0) {
			dicom_ep_set_events(ep, p->sock, EPOLLIN);
			return;
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(p->sock->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			dicom_outstream_advance(&p->st, (size_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			dicom_ep_set_events(ep, p->sock, EPOLLIN | EPOLLOUT);
			return;
		}
		out_broken(ep, p);
		return;
	}
}

/* Returns 0 to keep the connection, -1 when it was closed. */
static int on_frame(dicom_ep_t *ep, struct out_peer *p, const struct dicom_frame *f)
{
	switch (f->type) {
	case DICOM_FT_HELLO_ACK:
		if (p->state != OUT_HELLO || !dicom_addr_eq(f->src, p->st.dst))
			break;
		if (dicom_outstream_rewind(&p->st, f->ack) < 0)
			break;
		p->state = OUT_ESTABLISHED;
		p->backoff = 0;
		p->bypass = 0;
		if (p->ever_connected)
			ep->stats.reconnects++;
		p->ever_connected = 1;
		dicom_out_flush(ep, p);
		return p->sock ? 0 : -1;
	case DICOM_FT_ACK:
		if (p->state != OUT_ESTABLISHED)
			break;
		if (dicom_outstream_ack(&p->st, f->ack) < 0)
			break;
		return 0;
	default:
		break; /* NOT_HERE, ERROR or a protocol violation */
	}
	out_fail(ep, p);
	return -1;
}

static void read_acks(dicom_ep_t *ep, struct out_peer *p)
{
	for (;;) {
		ssize_t r = recv(p->sock->fd, p->rbuf + p->rlen, sizeof(p->rbuf) - p->rlen,
				 MSG_DONTWAIT);
		if (r == 0) {
			out_broken(ep, p);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				out_broken(ep, p);
			return;
		}
		p->rlen += (size_t)r;
		size_t off = 0;
		for (;;) {
			struct dicom_frame f;
			int d = dicom_frame_decode(p->rbuf + off, p->rlen - off, &f);
			if (d == DICOM_DECODE_NEED_MORE)
				break;
			/* Only header-only frames and short errors flow this way. */
			if (d != DICOM_DECODE_OK ||
			    DICOM_WIRE_HDR_LEN + f.length > sizeof(p->rbuf)) {
				out_fail(ep, p);
				return;
			}
			off += DICOM_WIRE_HDR_LEN + f.length;
			if (on_frame(ep, p, &f) < 0)
				return;
		}
		if (p->rlen - off >= DICOM_WIRE_HDR_LEN) {
			struct dicom_frame f;
			if (dicom_frame_decode_header(p->rbuf + off, p->rlen - off, &f) ==
				    DICOM_DECODE_OK &&
			    DICOM_WIRE_HDR_LEN + f.length > sizeof(p->rbuf)) {
				out_fail(ep, p); /* could never fit: not a peer of ours */
				return;
			}
		}
		memmove(p->rbuf, p->rbuf + off, p->rlen - off);
		p->rlen -= off;
	}
}

void dicom_out_event(dicom_ep_t *ep, struct out_peer *p, uint32_t events)
{
	if (p->state == OUT_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(p->sock->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			out_fail(ep, p);
			return;
		}
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
			dicom_ep_set_events(ep, p->sock, EPOLLIN);
			on_connected(ep, p);
		}
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		read_acks(ep, p);
		if (!p->sock)
			return;
	}
	if (events & EPOLLOUT) {
		if (p->state == OUT_HELLO)
			write_hello(ep, p);
		else
			dicom_out_flush(ep, p);
	}
}
