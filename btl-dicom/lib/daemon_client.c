/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The endpoint's link to its local dicomd: registration (blocking, once, in
 * dicom_ep_open), then a nonblocking link for RESOLVE requests and for the
 * daemon's control requests (PING, DETACH).  When the link is lost the
 * endpoint reattaches with REREGISTER, keeping its home address, so the same
 * code serves a daemon restart, a broken connection and a migration.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ep_internal.h"
#include "sock.h"

#define DL_BACKOFF_MIN_NS 10000000 /* 10 ms */

static void format_node(uint32_t node, char *buf, size_t len)
{
	struct in_addr a = { .s_addr = htonl(node) };
	inet_ntop(AF_INET, &a, buf, (socklen_t)len);
}

void dicom_dl_close(dicom_ep_t *ep)
{
	struct daemon_link *dl = &ep->dl;
	if (dl->sock) {
		dicom_ep_bury(ep, dl->sock);
		dl->sock = NULL;
	}
	dl->state = DL_DOWN;
	dl->in_len = 0;
	dl->out_len = 0;
	for (struct out_peer *p = ep->outs; p; p = p->next)
		p->resolve_sent = 0;
}

static void dl_lost(dicom_ep_t *ep, int64_t now)
{
	struct daemon_link *dl = &ep->dl;
	dicom_dl_close(ep);
	dl->backoff = dl->backoff ? dl->backoff * 2 : DL_BACKOFF_MIN_NS;
	if (dl->backoff > DICOM_DAEMON_BACKOFF_MAX_NS)
		dl->backoff = DICOM_DAEMON_BACKOFF_MAX_NS;
	dl->retry_at = now + dl->backoff;
	dicom_ep_timer_at(ep, dl->retry_at);
}

int dicom_dl_queue(dicom_ep_t *ep, const struct dicom_frame *f, const void *payload)
{
	struct daemon_link *dl = &ep->dl;
	size_t need = dl->out_len + DICOM_WIRE_HDR_LEN + f->length;
	if (need > DICOM_DL_OUT_CAP)
		return -1;
	if (need > dl->out_cap) {
		size_t cap = dl->out_cap ? dl->out_cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *n = realloc(dl->out, cap);
		if (!n)
			return -1;
		dl->out = n;
		dl->out_cap = cap;
	}
	dl->out_len += dicom_frame_encode(f, payload, dl->out + dl->out_len,
					  dl->out_cap - dl->out_len);
	return 0;
}

void dicom_dl_flush(dicom_ep_t *ep)
{
	struct daemon_link *dl = &ep->dl;
	if (!dl->sock)
		return;
	size_t off = 0;
	while (off < dl->out_len) {
		ssize_t w = send(dl->sock->fd, dl->out + off, dl->out_len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		dl_lost(ep, dicom_now_ns());
		return;
	}
	memmove(dl->out, dl->out + off, dl->out_len - off);
	dl->out_len -= off;
	dicom_ep_set_events(ep, dl->sock, dl->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static int attach_sock(dicom_ep_t *ep, int fd)
{
	struct dicom_sock *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->kind = SK_DAEMON;
	s->fd = fd;
	s->owner = ep;
	if (dicom_ep_watch(ep, s, EPOLLIN) < 0) {
		free(s);
		return -1;
	}
	ep->dl.sock = s;
	return 0;
}

static int send_location(dicom_ep_t *ep)
{
	uint8_t loc[DICOM_WIRE_LOC_LEN];
	struct dicom_wire_loc l = { .node = ep->node, .port = ep->port,
				    .state = DICOM_LOC_ACTIVE };
	dicom_wire_loc_encode(&l, loc);
	struct dicom_frame f = { .type = DICOM_FT_LOCATION, .length = sizeof(loc),
				 .src = ep->self, .loc = l };
	return dicom_dl_queue(ep, &f, loc);
}

int dicom_dl_register_blocking(dicom_ep_t *ep, char *err, size_t errlen)
{
	int fd = dicom_unix_connect(ep->daemon_name, 0);
	if (fd < 0) {
		snprintf(err, errlen,
			 "no dicomd on abstract socket @%s (%s); start one with: dicomctl daemon start",
			 ep->daemon_name, strerror(errno));
		return DICOM_ENODAEMON;
	}
	struct dicom_frame f = { .type = DICOM_FT_REGISTER,
				 .src = { 0, (uint32_t)getpid() } };
	uint8_t buf[DICOM_WIRE_HDR_LEN + DICOM_WIRE_MAX_TEXT + 1];
	char why[256];
	if (dicom_write_frame(fd, &f, NULL, 2000) < 0) {
		snprintf(err, errlen,
			 "dicomd on @%s did not take the registration (%s); restart it with: dicomctl daemon start",
			 ep->daemon_name, strerror(errno));
		close(fd);
		return DICOM_ENODAEMON;
	}
	int rc = dicom_read_frame(fd, buf, sizeof(buf) - 1, &f, 5000, why, sizeof(why));
	if (rc != DICOM_OK) {
		snprintf(err, errlen, "no registration reply from dicomd on @%s: %s",
			 ep->daemon_name, why);
		close(fd);
		return rc == DICOM_EIO ? DICOM_ENODAEMON : rc;
	}
	if (f.type == DICOM_FT_ERROR) {
		snprintf(err, errlen, "dicomd on @%s refused registration: %.*s",
			 ep->daemon_name, (int)f.length, (const char *)f.payload);
		close(fd);
		return DICOM_EPROTO;
	}
	if (f.type != DICOM_FT_REGISTERED || f.dst.home_pid != (uint32_t)getpid()) {
		snprintf(err, errlen, "dicomd on @%s answered REGISTER with %s",
			 ep->daemon_name, dicom_frame_type_name(f.type));
		close(fd);
		return DICOM_EPROTO;
	}
	ep->self = f.dst;
	ep->node = f.loc.node;
	if (dicom_ep_open_listener(ep) < 0) {
		char node[INET_ADDRSTRLEN];
		format_node(ep->node, node, sizeof(node));
		snprintf(err, errlen, "cannot listen on node address %s: %s", node,
			 strerror(errno));
		close(fd);
		return DICOM_EIO;
	}
	if (dicom_set_nonblock(fd) < 0 || attach_sock(ep, fd) < 0) {
		snprintf(err, errlen, "daemon socket setup: %s", strerror(errno));
		close(fd);
		return DICOM_EIO;
	}
	ep->dl.state = DL_READY;
	if (send_location(ep) < 0) {
		snprintf(err, errlen, "out of memory");
		return DICOM_ENOMEM;
	}
	dicom_dl_flush(ep);
	if (ep->dl.state != DL_READY) {
		snprintf(err, errlen, "dicomd on @%s closed the connection", ep->daemon_name);
		return DICOM_ENODAEMON;
	}
	return DICOM_OK;
}

static void reattach(dicom_ep_t *ep, int64_t now)
{
	int fd = dicom_unix_connect(ep->daemon_name, 1);
	if (fd < 0 || attach_sock(ep, fd) < 0) {
		if (fd >= 0)
			close(fd);
		dl_lost(ep, now);
		return;
	}
	ep->dl.state = DL_REGISTERING;
	struct dicom_frame f = { .type = DICOM_FT_REREGISTER, .src = ep->self };
	dicom_dl_queue(ep, &f, NULL);
	dicom_dl_flush(ep);
}

void dicom_dl_maintain(dicom_ep_t *ep, int64_t now)
{
	if (ep->detached) {
		if (!dicom_migrate_should_reattach(ep, now))
			return;
		dicom_migrate_reattached(ep, now);
	}
	if (ep->dl.state != DL_DOWN)
		return;
	if (now >= ep->dl.retry_at)
		reattach(ep, now);
	else
		dicom_ep_timer_at(ep, ep->dl.retry_at);
}

void dicom_dl_request_resolve(dicom_ep_t *ep, struct out_peer *p)
{
	if (ep->dl.state != DL_READY || p->resolve_sent)
		return; /* sent once the link is (re)registered */
	struct dicom_frame f = { .type = DICOM_FT_RESOLVE,
				 .flags = p->bypass ? DICOM_FLAG_BYPASS_CACHE : 0,
				 .seq = ++ep->dl.next_req,
				 .src = ep->self,
				 .dst = p->st.dst };
	if (dicom_dl_queue(ep, &f, NULL) < 0)
		return; /* the resolve timeout asks again */
	p->resolve_sent = 1;
	ep->stats.resolves++;
	dicom_dl_flush(ep);
}

void dicom_dl_deregister(dicom_ep_t *ep)
{
	if (ep->dl.state != DL_READY)
		return;
	struct dicom_frame f = { .type = DICOM_FT_DEREGISTER, .src = ep->self };
	if (dicom_dl_queue(ep, &f, NULL) == 0)
		dicom_write_all(ep->dl.sock->fd, ep->dl.out, ep->dl.out_len, 200);
	ep->dl.out_len = 0;
}

static void on_registered(dicom_ep_t *ep, const struct dicom_frame *f, int64_t now)
{
	if (!dicom_addr_eq(f->dst, ep->self)) {
		dl_lost(ep, now);
		return;
	}
	if (!ep->listen || ep->node != f->loc.node) {
		/* New node after a migration (or sockets were dropped): the
		 * data listener must live on this node's address. */
		if (ep->listen) {
			dicom_ep_bury(ep, ep->listen);
			ep->listen = NULL;
		}
		ep->node = f->loc.node;
		if (dicom_ep_open_listener(ep) < 0) {
			dl_lost(ep, now);
			return;
		}
	}
	if (send_location(ep) < 0) {
		dl_lost(ep, now);
		return;
	}
	ep->dl.state = DL_READY;
	ep->dl.backoff = 0;
	for (struct out_peer *p = ep->outs; p; p = p->next)
		if (p->state == OUT_RESOLVING)
			dicom_dl_request_resolve(ep, p);
	dicom_dl_flush(ep);
}

/* The endpoint's stats as one JSON object (PONG, DICOM_STATS_LOG). */
int dicom_ep_stats_json(dicom_ep_t *ep, char *json, size_t len)
{
	char addr[32], node[INET_ADDRSTRLEN], mig[160];
	if (dicom_migrate_format(ep, mig, sizeof(mig)) >= (int)sizeof(mig))
		snprintf(mig, sizeof(mig), "\"detached\":%d", ep->detached);
	dicom_addr_format(&ep->self, addr, sizeof(addr));
	format_node(ep->node, node, sizeof(node));
	size_t outs = 0, unacked = 0;
	uint64_t re = 0;
	for (struct out_peer *p = ep->outs; p; p = p->next) {
		outs++;
		unacked += p->st.unacked_bytes;
		re += p->st.retransmitted;
	}
	const struct dicom_ep_stats *s = &ep->stats;
	int n = snprintf(json, len,
			 "{\"addr\":\"%s\",\"node\":\"%s\",\"port\":%u,\"pid\":%d,"
			 "\"streams_out\":%zu,\"streams_in\":%zu,\"unacked_bytes\":%zu,"
			 "\"held_bytes\":%zu,\"msgs_sent\":%llu,\"msgs_delivered\":%llu,"
			 "\"bytes_sent\":%llu,\"bytes_delivered\":%llu,\"retransmitted\":%llu,"
			 "\"duplicates_dropped\":%llu,\"reconnects\":%llu,\"resolves\":%llu,"
			 "\"control_requests\":%llu,\"kernel_mbox\":%d,"
			 "\"kernel_sent\":%llu,\"kernel_delivered\":%llu,"
			 "\"kernel_relayed_sent\":%llu,\"kernel_relayed_delivered\":%llu,%s}",
			 addr, node, ep->port, (int)getpid(), outs, ep->ins_by_src.count,
			 unacked, ep->held_bytes, (unsigned long long)s->msgs_sent,
			 (unsigned long long)s->msgs_delivered,
			 (unsigned long long)s->bytes_sent,
			 (unsigned long long)s->bytes_delivered, (unsigned long long)re,
			 (unsigned long long)s->duplicates_dropped,
			 (unsigned long long)s->reconnects, (unsigned long long)s->resolves,
			 (unsigned long long)s->control_requests, ep->kmbox != NULL,
			 (unsigned long long)s->kernel_sent,
			 (unsigned long long)s->kernel_delivered,
			 (unsigned long long)s->kernel_relayed_sent,
			 (unsigned long long)s->kernel_relayed_delivered, mig);
	if (n < 0 || (size_t)n >= len)
		n = snprintf(json, len, "{\"addr\":\"%s\"}", addr);
	return n;
}

static void send_pong(dicom_ep_t *ep, const struct dicom_frame *req)
{
	char json[DICOM_WIRE_MAX_PONG];
	int n = dicom_ep_stats_json(ep, json, sizeof(json));
	struct dicom_frame f = { .type = DICOM_FT_PONG, .length = (uint32_t)n,
				 .seq = req->seq, .src = ep->self, .dst = req->src };
	dicom_dl_queue(ep, &f, json);
	dicom_dl_flush(ep);
}

static void detach(dicom_ep_t *ep, const struct dicom_frame *req, int64_t now)
{
	/* The stub's tunnel closes first: once "ready" is read, the
	 * migration agent dumps the process, and every socket must be gone. */
	int tunnel_rc = ep->hooks.detach ? ep->hooks.detach() : 0;
	/* "Ready" must reach the daemon before the socket closes. */
	struct dicom_frame f = { .type = tunnel_rc == 0 ? DICOM_FT_DETACH_READY : DICOM_FT_ERROR,
				 .seq = req->seq, .src = ep->self, .dst = req->src };
	static const char why[] = "the home stub's tunnel did not drain";
	if (tunnel_rc != 0) {
		f.aux = (uint32_t)-DICOM_EIO;
		f.length = sizeof(why) - 1;
	}
	if (dicom_dl_queue(ep, &f, tunnel_rc == 0 ? NULL : why) == 0 && ep->dl.sock)
		dicom_write_all(ep->dl.sock->fd, ep->dl.out, ep->dl.out_len, 1000);
	ep->dl.out_len = 0;
	if (tunnel_rc != 0) {
		if (ep->hooks.reattach)
			ep->hooks.reattach();
		return;
	}
	dicom_ep_close_all_sockets(ep);
	/* CRIU cannot dump a driver's file; the rank uses sockets from now on. */
	dicom_kmbox_close(ep);
	dicom_migrate_detach(ep, req->aux, now);
}

/* Returns -1 once the link is gone. */
static int on_frame(dicom_ep_t *ep, const struct dicom_frame *f, int64_t now)
{
	switch (f->type) {
	case DICOM_FT_REGISTERED:
		if (ep->dl.state != DL_REGISTERING)
			break;
		on_registered(ep, f, now);
		return ep->dl.sock ? 0 : -1;
	case DICOM_FT_RESOLVED: {
		struct out_peer *p = dicom_addrmap_get(&ep->outs_by_dst, f->dst);
		if (p) {
			p->resolve_sent = 0;
			dicom_out_resolved(ep, p, &f->loc, now);
		}
		return ep->dl.sock ? 0 : -1;
	}
	case DICOM_FT_PING:
		ep->stats.control_requests++;
		send_pong(ep, f);
		return ep->dl.sock ? 0 : -1;
	case DICOM_FT_DETACH:
		ep->stats.control_requests++;
		detach(ep, f, now);
		return ep->dl.sock ? 0 : -1;
	case DICOM_FT_ERROR:
		if (ep->dl.state == DL_READY)
			return 0; /* informational */
		break;        /* registration refused: retry later */
	default:
		break;
	}
	dl_lost(ep, now);
	return -1;
}

void dicom_dl_event(dicom_ep_t *ep, uint32_t events)
{
	struct daemon_link *dl = &ep->dl;
	int64_t now = dicom_now_ns();
	if (events & EPOLLOUT)
		dicom_dl_flush(ep);
	if (!dl->sock || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	for (;;) {
		ssize_t r = recv(dl->sock->fd, dl->in + dl->in_len,
				 sizeof(dl->in) - dl->in_len, MSG_DONTWAIT);
		if (r == 0) {
			dl_lost(ep, now);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				dl_lost(ep, now);
			return;
		}
		dl->in_len += (size_t)r;
		size_t off = 0;
		for (;;) {
			struct dicom_frame f;
			int d = dicom_frame_decode(dl->in + off, dl->in_len - off, &f);
			if (d == DICOM_DECODE_NEED_MORE) {
				if (dicom_frame_decode_header(dl->in + off, dl->in_len - off,
							      &f) == DICOM_DECODE_OK &&
				    DICOM_WIRE_HDR_LEN + f.length > sizeof(dl->in)) {
					dl_lost(ep, now); /* nothing we expect is this big */
					return;
				}
				break;
			}
			if (d != DICOM_DECODE_OK) {
				dl_lost(ep, now);
				return;
			}
			off += DICOM_WIRE_HDR_LEN + f.length;
			if (on_frame(ep, &f, now) < 0)
				return;
		}
		memmove(dl->in, dl->in + off, dl->in_len - off);
		dl->in_len -= off;
	}
}
