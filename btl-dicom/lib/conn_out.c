/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sender side of the data path: resolution through the daemon, a
 * connection (our own, or the one the peer opened to us), the HELLO
 * handshake, and acks that free the retransmit window.
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
	struct conn *c = p->conn;
	p->conn = NULL;
	if (c && c->tx == p) {
		/* The peer's own stream may share this connection, but a
		 * half-written frame of ours would corrupt it: close it all. */
		c->tx = NULL;
		dicom_conn_close(ep, c);
	}
	dicom_outstream_disconnect(&p->st);
	p->kstate = KM_NONE; /* a mailbox stream starts again with a HELLO too */
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

/* The HELLO that opens p's stream, on a socket or through the mailbox. */
struct dicom_frame dicom_out_hello(dicom_ep_t *ep, struct out_peer *p)
{
	size_t kib = ep->window / 1024;
	struct dicom_frame f = {
		.type = DICOM_FT_HELLO,
		.aux = kib > UINT32_MAX ? UINT32_MAX : (uint32_t)kib,
		.src = ep->self,
		.dst = p->st.dst,
	};
	return f;
}

void dicom_out_connected(dicom_ep_t *ep, struct out_peer *p)
{
	struct dicom_frame f = dicom_out_hello(ep, p);
	dicom_frame_encode_header(&f, p->hello);
	p->hello_off = 0;
	p->state = OUT_HELLO;
	dicom_conn_flush(ep, p->conn);
}

static void start_connect(dicom_ep_t *ep, struct out_peer *p)
{
	struct conn *c = dicom_conn_connect(ep, p->node, p->port);
	if (!c) {
		if (errno == ENOMEM || errno == EMFILE || errno == ENFILE)
			dicom_out_retry_later(ep, p, dicom_now_ns());
		else
			out_fail(ep, p); /* refused at once: the location is stale */
		return;
	}
	c->tx = p;
	p->conn = c;
	p->state = OUT_CONNECTING;
	if (!c->connecting)
		dicom_out_connected(ep, p);
}

/* The peer already connected to us: send our stream back on that
 * connection instead of opening a second one. */
static int adopt_peer_conn(dicom_ep_t *ep, struct out_peer *p)
{
	struct in_peer *ip = dicom_addrmap_get(&ep->ins_by_src, p->st.dst);
	struct conn *c = ip ? ip->cur : NULL;
	if (!c || c->tx || c->sock.dead || c->close_after_write || c->connecting)
		return 0;
	c->tx = p;
	p->conn = c;
	dicom_out_connected(ep, p);
	return 1;
}

void dicom_out_kick(dicom_ep_t *ep, struct out_peer *p, int64_t now)
{
	if (ep->detached || (p->state != OUT_IDLE && p->state != OUT_WAIT_RETRY))
		return;
	if (dicom_outstream_idle(&p->st)) {
		p->state = OUT_IDLE; /* connect lazily, when there is data */
		return;
	}
	if (dicom_kmbox_claims(ep, p, now))
		return;
	if (adopt_peer_conn(ep, p))
		return;
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
		dicom_kmbox_peer_active(ep, p);
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
	if (p->state == OUT_ESTABLISHED && p->conn)
		dicom_conn_flush(ep, p->conn);
}

/* The connection went away under us (closed by the peer, an I/O error, or
 * a protocol error on the other stream sharing it).  failed: the connect
 * itself failed, so the location is suspect. */
void dicom_out_conn_lost(dicom_ep_t *ep, struct out_peer *p, int failed)
{
	p->conn = NULL;
	if (failed)
		out_fail(ep, p);
	else
		out_broken(ep, p);
}

/* Frames for our stream coming back from the receiver.  Returns 0 to keep
 * the connection, -1 when it must be closed. */
int dicom_out_on_frame(dicom_ep_t *ep, struct out_peer *p, const struct dicom_frame *f)
{
	switch (f->type) {
	case DICOM_FT_HELLO_ACK:
		if (p->state != OUT_HELLO || p->hello_off < DICOM_WIRE_HDR_LEN ||
		    !dicom_addr_eq(f->src, p->st.dst))
			break;
		if (dicom_outstream_rewind(&p->st, f->ack) < 0)
			break;
		p->state = OUT_ESTABLISHED;
		p->backoff = 0;
		p->bypass = 0;
		if (p->ever_connected)
			ep->stats.reconnects++;
		p->ever_connected = 1;
		dicom_conn_flush(ep, p->conn);
		return 0;
	case DICOM_FT_ACK:
		if (p->state != OUT_ESTABLISHED)
			break;
		if (dicom_outstream_ack(&p->st, f->ack) < 0)
			break;
		return 0;
	default:
		break; /* NOT_HERE, ERROR or a protocol violation */
	}
	/* Wrong location or a confused peer: ask the daemons again.  The
	 * connection is closed by our caller. */
	struct conn *c = p->conn;
	if (c)
		c->tx = NULL;
	p->conn = NULL;
	out_fail(ep, p);
	return -1;
}
