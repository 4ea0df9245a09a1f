/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Other dicomds: we answer LOOKUPs for processes homed here and accept
 * LOCATION_UPDATEs about them; we ask a process's home dicomd (same port,
 * its home node's address) when a local endpoint resolves it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dicomd.h"
#include "sock.h"

static void node_text(uint32_t node, char *buf, size_t len)
{
	struct in_addr a = { .s_addr = htonl(node) };
	inet_ntop(AF_INET, &a, buf, (socklen_t)len);
}

void peers_accept(struct dicomd *d)
{
	for (;;) {
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		int fd = accept4(d->tcp_fd, (struct sockaddr *)&sa, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		char ip[INET_ADDRSTRLEN], peer[64];
		inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
		snprintf(peer, sizeof(peer), "tcp:%s:%u", ip, ntohs(sa.sin_port));
		dicom_tcp_tune(fd);
		struct dconn *c = dconn_add(d, fd, ROLE_PEER_IN, peer);
		if (c)
			c->remote_node = ntohl(sa.sin_addr.s_addr);
	}
}

struct pending *pending_add(struct dicomd *d, enum pending_kind kind, struct dconn *req,
			    const struct dicom_frame *f, int64_t timeout_ns)
{
	if (d->npending >= DICOMD_MAX_PENDING)
		return NULL;
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->id = ++d->next_pending_id;
	p->kind = kind;
	p->req_conn = req->id;
	p->req_seq = f->seq;
	p->req_type = f->type;
	p->dst = f->dst;
	p->deadline_ns = dicom_now_ns() + timeout_ns;
	p->next = d->pending;
	d->pending = p;
	d->npending++;
	return p;
}

struct pending *pending_take(struct dicomd *d, uint64_t id, enum pending_kind kind)
{
	for (struct pending **pp = &d->pending; *pp; pp = &(*pp)->next) {
		struct pending *p = *pp;
		if (p->id == id && p->kind == kind) {
			*pp = p->next;
			d->npending--;
			return p;
		}
	}
	return NULL;
}

void reply_resolved(struct dicomd *d, struct dconn *c, uint64_t seq, dicom_addr_t a,
		    const struct dicom_wire_loc *loc)
{
	uint8_t payload[DICOM_WIRE_LOC_LEN];
	dicom_wire_loc_encode(loc, payload);
	struct dicom_frame f = { .type = DICOM_FT_RESOLVED, .length = sizeof(payload),
				 .seq = seq, .dst = a };
	dconn_send(d, c, &f, payload);
}

static void fail_pending(struct dicomd *d, struct pending *p, const char *why)
{
	struct dconn *req = dconn_by_id(d, p->req_conn);
	struct logline l;
	log_begin(&l, LOG_WARN, "request_failed");
	log_str(&l, "request", dicom_frame_type_name(p->req_type));
	log_addr(&l, "addr", p->dst);
	log_str(&l, "error", why);
	log_end(&l);
	if (!req)
		return;
	if (p->kind == PENDING_LOOKUP) {
		struct dicom_wire_loc loc = { .state = DICOM_LOC_UNREACHABLE };
		reply_resolved(d, req, p->req_seq, p->dst, &loc);
	} else {
		dconn_send_error(d, req, DICOM_EIO, why);
	}
}

void pending_expire(struct dicomd *d, int64_t now)
{
	struct pending **pp = &d->pending;
	while (*pp) {
		struct pending *p = *pp;
		if (p->deadline_ns > now) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		d->npending--;
		fail_pending(d, p, p->kind == PENDING_LOOKUP ? "home dicomd did not answer in time"
							     : "endpoint did not answer in time");
		free(p);
	}
}

struct dconn *peer_conn(struct dicomd *d, uint32_t node)
{
	for (struct dconn *c = d->conns; c; c = c->next)
		if (c->role == ROLE_PEER_OUT && c->remote_node == node && !c->dead)
			return c;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	dicom_tcp_tune(fd);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(node),
				  .sin_port = htons(d->port) };
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	char ip[INET_ADDRSTRLEN], peer[64];
	node_text(node, ip, sizeof(ip));
	snprintf(peer, sizeof(peer), "tcp:%s:%u", ip, d->port);
	if (r < 0 && errno != EINPROGRESS) {
		struct logline l;
		log_begin(&l, LOG_WARN, "peer_unreachable");
		log_str(&l, "peer", peer);
		log_str(&l, "error", strerror(errno));
		log_end(&l);
		close(fd);
		return NULL;
	}
	struct dconn *c = dconn_add(d, fd, ROLE_PEER_OUT, peer);
	if (!c)
		return NULL;
	c->remote_node = node;
	c->connecting = r < 0;
	return c;
}

static void lookup_remote(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct dconn *out = peer_conn(d, f->dst.home_node);
	struct pending *p = out ? pending_add(d, PENDING_LOOKUP, c, f, DICOMD_LOOKUP_TIMEOUT_NS)
				: NULL;
	if (!p) {
		struct dicom_wire_loc loc = { .state = DICOM_LOC_UNREACHABLE };
		reply_resolved(d, c, f->seq, f->dst, &loc);
		return;
	}
	p->node = f->dst.home_node;
	struct dicom_frame q = { .type = DICOM_FT_LOOKUP,
				 .flags = f->flags & DICOM_FLAG_BYPASS_CACHE,
				 .seq = p->id, .src = { d->node, 0 }, .dst = f->dst };
	dconn_send(d, out, &q, NULL);
}

static void log_not_found(struct dicomd *d, const char *peer, dicom_addr_t a)
{
	(void)d;
	struct logline l;
	log_begin(&l, LOG_WARN, "not_found");
	log_addr(&l, "addr", a);
	log_str(&l, "peer", peer);
	log_str(&l, "error", "no such (home, pid) in this node's directory");
	log_end(&l);
}

void peers_resolve(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct dicom_wire_loc loc;
	int64_t now = dicom_now_ns();
	if (directory_answer(d, f->dst, &loc)) {
		if (loc.state == DICOM_LOC_NOT_FOUND)
			log_not_found(d, c->peer, f->dst);
		reply_resolved(d, c, f->seq, f->dst, &loc);
		return;
	}
	const struct dicom_wire_loc *cached = NULL;
	if (!(f->flags & DICOM_FLAG_BYPASS_CACHE))
		cached = cache_get(d, f->dst, now);
	if (cached) {
		loc = *cached;
		reply_resolved(d, c, f->seq, f->dst, &loc);
		return;
	}
	lookup_remote(d, c, f);
}

void peers_location_update(struct dicomd *d, dicom_addr_t a, const struct dicom_wire_loc *loc)
{
	struct dconn *out = peer_conn(d, a.home_node);
	if (!out)
		return; /* logged by peer_conn; the home learns at the next report */
	uint8_t payload[DICOM_WIRE_LOC_LEN];
	dicom_wire_loc_encode(loc, payload);
	struct dicom_frame f = { .type = DICOM_FT_LOCATION_UPDATE, .length = sizeof(payload),
				 .src = { d->node, 0 }, .dst = a };
	dconn_send(d, out, &f, payload);
}

static void log_error_frame(struct dconn *c, const struct dicom_frame *f)
{
	char text[DICOM_WIRE_MAX_TEXT + 1];
	memcpy(text, f->payload, f->length);
	text[f->length] = '\0';
	struct logline l;
	log_begin(&l, LOG_WARN, "peer_error");
	log_str(&l, "peer", c->peer);
	log_str(&l, "error", text);
	log_end(&l);
}

void peers_frame_in(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	if (f->type == DICOM_FT_GOSSIP) {
		gossip_receive(d, c, f);
		return;
	}
	if (f->type == DICOM_FT_RELAY) {
		relay_frame(d, c, f);
		return;
	}
	if (f->type == DICOM_FT_LOOKUP) {
		struct dicom_wire_loc loc;
		if (!directory_answer(d, f->dst, &loc))
			loc = (struct dicom_wire_loc){ .state = DICOM_LOC_NOT_FOUND };
		if (loc.state == DICOM_LOC_NOT_FOUND)
			log_not_found(d, c->peer, f->dst);
		uint8_t payload[DICOM_WIRE_LOC_LEN];
		dicom_wire_loc_encode(&loc, payload);
		struct dicom_frame rep = { .type = DICOM_FT_LOOKUP_REPLY,
					   .length = sizeof(payload), .seq = f->seq,
					   .src = { d->node, 0 }, .dst = f->dst };
		dconn_send(d, c, &rep, payload);
		return;
	}
	if (f->type == DICOM_FT_LOCATION_UPDATE) {
		struct logline l;
		if (f->dst.home_node != d->node) {
			log_begin(&l, LOG_WARN, "location_update_ignored");
			log_addr(&l, "addr", f->dst);
			log_str(&l, "peer", c->peer);
			log_str(&l, "error", "this node is not the address's home");
			log_end(&l);
			return;
		}
		if (f->loc.state == DICOM_LOC_ACTIVE || f->loc.state == DICOM_LOC_DETACHED)
			directory_set(d, f->dst, &f->loc);
		else
			directory_remove(d, f->dst);
		log_begin(&l, LOG_INFO, "location_update");
		log_addr(&l, "addr", f->dst);
		log_node(&l, "node", f->loc.node);
		log_int(&l, "port", f->loc.port);
		log_int(&l, "state", f->loc.state);
		log_str(&l, "peer", c->peer);
		log_end(&l);
		return;
	}
	if (f->type == DICOM_FT_ERROR)
		log_error_frame(c, f);
}

void peers_frame_out(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	if (f->type == DICOM_FT_ERROR) {
		log_error_frame(c, f);
		return;
	}
	struct pending *p = pending_take(d, f->seq, PENDING_LOOKUP);
	if (!p)
		return; /* timed out already */
	cache_put(d, p->dst, &f->loc, dicom_now_ns());
	struct dconn *req = dconn_by_id(d, p->req_conn);
	if (req)
		reply_resolved(d, req, p->req_seq, p->dst, &f->loc);
	free(p);
}

void peers_conn_closed(struct dicomd *d, struct dconn *c)
{
	gossip_peer_lost(d, c->remote_node);
	struct pending **pp = &d->pending;
	while (*pp) {
		struct pending *p = *pp;
		if (p->kind != PENDING_LOOKUP || p->node != c->remote_node) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		d->npending--;
		fail_pending(d, p, "connection to the home dicomd failed");
		free(p);
	}
}
