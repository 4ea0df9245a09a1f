/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Local endpoints on the abstract unix socket: registration (checked
 * against the kernel's SO_PEERCRED, so a process can only claim its own
 * pid), location reports, deregistration, and relaying tools' control
 * requests (PING, DETACH) to an endpoint.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dicomd.h"
#include "sock.h"

void registry_accept(struct dicomd *d)
{
	for (;;) {
		int fd = accept4(d->unix_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		pid_t pid = -1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
			pid = cred.pid;
		char peer[64];
		snprintf(peer, sizeof(peer), "unix:pid %d", (int)pid);
		struct dconn *c = dconn_add(d, fd, ROLE_UNIX, peer);
		if (c)
			c->cred_pid = pid;
	}
}

void refuse(struct dicomd *d, struct dconn *c, const char *event, int code, const char *why)
{
	struct logline l;
	log_begin(&l, LOG_WARN, event);
	log_str(&l, "peer", c->peer);
	log_str(&l, "error", why);
	log_end(&l);
	dconn_send_error(d, c, code, why);
	dconn_close(d, c, why);
}

static void on_register(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	int rereg = f->type == DICOM_FT_REREGISTER;
	char why[160];
	if (c->ep) {
		refuse(d, c, "register_refused", DICOM_EPROTO,
		       "this connection already registered an endpoint");
		return;
	}
	if (c->cred_pid <= 0 || f->src.home_pid != (uint32_t)c->cred_pid) {
		snprintf(why, sizeof(why),
			 "claimed pid %u is not the connecting process (pid %d)",
			 f->src.home_pid, (int)c->cred_pid);
		refuse(d, c, "register_refused", DICOM_EINVAL, why);
		return;
	}
	dicom_addr_t addr = rereg ? f->src : (dicom_addr_t){ d->node, f->src.home_pid };
	if (addr.home_node == 0) {
		refuse(d, c, "register_refused", DICOM_EINVAL, "home node 0.0.0.0 is invalid");
		return;
	}
	struct endpoint *e = dicom_addrmap_get(&d->endpoints, addr);
	if (e) {
		/* Same pid, checked by the kernel: the process reconnected
		 * before we saw its old connection close.  The new one wins. */
		if (e->conn) {
			e->conn->ep = NULL;
			dconn_close(d, e->conn, "replaced by a new registration");
		}
	} else {
		e = calloc(1, sizeof(*e));
		if (!e || dicom_addrmap_put(&d->endpoints, addr, e) < 0) {
			free(e);
			refuse(d, c, "register_refused", DICOM_ENOMEM, "out of memory");
			return;
		}
	}
	e->addr = addr;
	e->conn = c;
	e->pid = c->cred_pid;
	e->node = d->node;
	e->port = 0;
	e->since_ns = dicom_now_ns();
	c->ep = e;
	if (addr.home_node == d->node) {
		/* Known from now on, reachable once it reports its listener. */
		struct dicom_wire_loc pending = { .node = d->node, .state = DICOM_LOC_DETACHED };
		directory_set(d, addr, &pending);
	}

	struct dicom_wire_loc reg = { .node = d->node, .port = d->port,
				      .state = DICOM_LOC_ACTIVE };
	uint8_t payload[DICOM_WIRE_LOC_LEN];
	dicom_wire_loc_encode(&reg, payload);
	struct dicom_frame rep = { .type = DICOM_FT_REGISTERED, .length = sizeof(payload),
				   .seq = f->seq, .dst = addr };
	dconn_send(d, c, &rep, payload);

	struct logline l;
	log_begin(&l, LOG_INFO, rereg ? "reregister" : "register");
	log_addr(&l, "addr", addr);
	log_int(&l, "pid", c->cred_pid);
	if (rereg && addr.home_node != d->node)
		log_str(&l, "home", "remote");
	log_end(&l);
}

static void on_location(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct endpoint *e = c->ep;
	if (!e) {
		refuse(d, c, "bad_request", DICOM_EPROTO, "LOCATION before REGISTER");
		return;
	}
	if (f->loc.state != DICOM_LOC_ACTIVE || f->loc.port == 0) {
		refuse(d, c, "bad_request", DICOM_EINVAL, "LOCATION needs an active node:port");
		return;
	}
	e->node = f->loc.node;
	e->port = f->loc.port;
	struct dicom_wire_loc loc = { .node = e->node, .port = e->port,
				      .state = DICOM_LOC_ACTIVE };
	if (e->addr.home_node == d->node)
		directory_set(d, e->addr, &loc);
	else
		peers_location_update(d, e->addr, &loc); /* its home must know */
	struct logline l;
	log_begin(&l, LOG_INFO, "location");
	log_addr(&l, "addr", e->addr);
	log_node(&l, "node", e->node);
	log_int(&l, "port", e->port);
	log_end(&l);
}

/* The endpoint left this node's unix socket: keep its directory entry,
 * marked detached, because a migration re-registers the same address. */
static void forget_endpoint(struct dicomd *d, struct endpoint *e, int gone_for_good)
{
	struct dicom_wire_loc loc = { .node = e->node, .port = e->port,
				      .state = gone_for_good ? DICOM_LOC_NOT_FOUND
							     : DICOM_LOC_DETACHED };
	if (e->addr.home_node == d->node) {
		if (gone_for_good)
			directory_remove(d, e->addr);
		else if (directory_get(d, e->addr))
			directory_set(d, e->addr, &loc);
	} else if (e->port) {
		peers_location_update(d, e->addr, &loc);
	}
	dicom_addrmap_del(&d->endpoints, e->addr);
	free(e);
}

void registry_conn_closed(struct dicomd *d, struct dconn *c)
{
	struct endpoint *e = c->ep;
	if (!e)
		return;
	c->ep = NULL;
	struct logline l;
	log_begin(&l, LOG_INFO, "endpoint_detached");
	log_addr(&l, "addr", e->addr);
	log_int(&l, "pid", e->pid);
	log_end(&l);
	forget_endpoint(d, e, 0);
}

static void on_deregister(struct dicomd *d, struct dconn *c)
{
	struct endpoint *e = c->ep;
	if (!e)
		return;
	c->ep = NULL;
	struct logline l;
	log_begin(&l, LOG_INFO, "deregister");
	log_addr(&l, "addr", e->addr);
	log_end(&l);
	forget_endpoint(d, e, 1);
}

static void forward_control(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct endpoint *e = dicom_addrmap_get(&d->endpoints, f->dst);
	char text[32];
	dicom_addr_format(&f->dst, text, sizeof(text));
	if (!e || !e->conn) {
		char why[96];
		snprintf(why, sizeof(why), "%s is not registered with this dicomd", text);
		struct logline l;
		log_begin(&l, LOG_WARN, "not_found");
		log_addr(&l, "addr", f->dst);
		log_str(&l, "request", dicom_frame_type_name(f->type));
		log_end(&l);
		dconn_send_error(d, c, DICOM_ENOENT, why);
		return;
	}
	struct pending *p = pending_add(d, PENDING_FORWARD, c, f, DICOMD_FORWARD_TIMEOUT_NS);
	if (!p) {
		dconn_send_error(d, c, DICOM_EAGAIN, "too many requests in flight");
		return;
	}
	struct dicom_frame fw = { .type = f->type, .aux = f->aux, .seq = p->id,
				  .src = { d->node, 0 }, .dst = e->addr };
	dconn_send(d, e->conn, &fw, NULL);
	struct logline l;
	log_begin(&l, LOG_INFO, "control_request");
	log_str(&l, "request", dicom_frame_type_name(f->type));
	log_addr(&l, "addr", e->addr);
	if (f->type == DICOM_FT_DETACH)
		log_int(&l, "hold_ms", f->aux);
	log_end(&l);
}

static void forward_reply(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct pending *p = pending_take(d, f->seq, PENDING_FORWARD);
	if (!p)
		return; /* the tool gave up; nothing to relay */
	struct dconn *tool = dconn_by_id(d, p->req_conn);
	if (tool) {
		struct dicom_frame rep = { .type = f->type, .length = f->length,
					   .seq = p->req_seq, .src = p->dst };
		dconn_send(d, tool, &rep, f->payload);
	}
	if (f->type == DICOM_FT_DETACH_READY) {
		struct logline l;
		log_begin(&l, LOG_INFO, "detach_ready");
		log_addr(&l, "addr", p->dst);
		log_str(&l, "peer", c->peer);
		log_end(&l);
	}
	free(p);
}

void registry_frame(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	switch (f->type) {
	case DICOM_FT_REGISTER:
	case DICOM_FT_REREGISTER:
		on_register(d, c, f);
		break;
	case DICOM_FT_LOCATION:
		on_location(d, c, f);
		break;
	case DICOM_FT_DEREGISTER:
		on_deregister(d, c);
		break;
	case DICOM_FT_RESOLVE:
		peers_resolve(d, c, f);
		break;
	case DICOM_FT_PING:
	case DICOM_FT_DETACH:
		forward_control(d, c, f);
		break;
	case DICOM_FT_PONG:
	case DICOM_FT_DETACH_READY:
		forward_reply(d, c, f);
		break;
	case DICOM_FT_STATUS:
		status_reply(d, c, f);
		break;
	case DICOM_FT_TRAFFIC:
		gossip_traffic(d, c, f);
		break;
	case DICOM_FT_VIEW:
		view_reply(d, c, f);
		break;
	case DICOM_FT_ERROR: {
		char text[DICOM_WIRE_MAX_TEXT + 1];
		memcpy(text, f->payload, f->length);
		text[f->length] = '\0';
		struct logline l;
		log_begin(&l, LOG_WARN, "client_error");
		log_str(&l, "peer", c->peer);
		log_str(&l, "error", text);
		log_end(&l);
		break;
	}
	default:
		break; /* the input parser admits nothing else here */
	}
}
