/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicomd connections: bounded input and output buffers, frame dispatch by
 * role, and the rule that a bad frame costs its sender the connection and
 * nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dicomd.h"
#include "sock.h"

#define READ_FRAMES_PER_EVENT 256 /* fairness: a chatty client yields to others */

static void set_events(struct dicomd *d, struct dconn *c, uint32_t events)
{
	if (c->in_paused)
		events &= ~(uint32_t)EPOLLIN;
	if (c->events == events)
		return;
	struct epoll_event ev = { .events = events, .data.ptr = c };
	c->events = events;
	epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

struct dconn *dconn_add(struct dicomd *d, int fd, enum dicomd_role role, const char *peer)
{
	if (d->nconns >= DICOMD_MAX_CONNS) {
		struct logline l;
		log_begin(&l, LOG_WARN, "conn_refused");
		log_str(&l, "peer", peer);
		log_str(&l, "error", "too many connections");
		log_end(&l);
		close(fd);
		return NULL;
	}
	struct dconn *c = calloc(1, sizeof(*c));
	if (c) {
		c->in_cap = dicomd_input_cap(role);
		c->in = malloc(c->in_cap);
	}
	if (!c || !c->in) {
		if (c)
			free(c);
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->role = role;
	c->id = ++d->next_conn_id;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->events = EPOLLIN;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		free(c->in);
		free(c);
		return NULL;
	}
	c->next = d->conns;
	if (c->next)
		c->next->prev = c;
	d->conns = c;
	d->nconns++;
	return c;
}

struct dconn *dconn_by_id(struct dicomd *d, uint64_t id)
{
	for (struct dconn *c = d->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

void dconn_close(struct dicomd *d, struct dconn *c, const char *reason)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->role == ROLE_UNIX)
		registry_conn_closed(d, c);
	else if (c->role == ROLE_PEER_OUT)
		peers_conn_closed(d, c);
	else
		relay_conn_closed(d, c);
	if (c->role != ROLE_UNIX || strcmp(reason, "eof") != 0) {
		struct logline l;
		log_begin(&l, LOG_INFO, "conn_closed");
		log_str(&l, "peer", c->peer);
		log_str(&l, "reason", reason);
		log_end(&l);
	}
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->nconns--;
	c->grave_next = d->graveyard;
	d->graveyard = c;
}

void dconn_free_dead(struct dicomd *d)
{
	while (d->graveyard) {
		struct dconn *c = d->graveyard;
		d->graveyard = c->grave_next;
		free(c->in);
		free(c->out);
		free(c->relay_held);
		free(c);
	}
}

static void flush(struct dicomd *d, struct dconn *c)
{
	size_t off = 0;
	while (off < c->out_len) {
		ssize_t w = send(c->fd, c->out + off, c->out_len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		dconn_close(d, c, w < 0 ? strerror(errno) : "write returned 0");
		return;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
	set_events(d, c, c->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

void dconn_send(struct dicomd *d, struct dconn *c, const struct dicom_frame *f,
		const void *payload)
{
	if (c->dead)
		return;
	size_t need = c->out_len + DICOM_WIRE_HDR_LEN + f->length;
	if (need > DICOMD_OUT_CAP) {
		dconn_close(d, c, "output buffer full (client does not read)");
		return;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 1024;
		while (cap < need)
			cap *= 2;
		uint8_t *n = realloc(c->out, cap);
		if (!n) {
			dconn_close(d, c, "out of memory");
			return;
		}
		c->out = n;
		c->out_cap = cap;
	}
	c->out_len += dicom_frame_encode(f, payload, c->out + c->out_len,
					 c->out_cap - c->out_len);
	if (!c->connecting)
		flush(d, c);
	else
		set_events(d, c, EPOLLOUT);
}

void dconn_send_error(struct dicomd *d, struct dconn *c, int code, const char *msg)
{
	size_t n = strlen(msg);
	if (n > DICOM_WIRE_MAX_TEXT)
		n = DICOM_WIRE_MAX_TEXT;
	struct dicom_frame f = { .type = DICOM_FT_ERROR, .length = (uint32_t)n,
				 .aux = (uint32_t)(code < 0 ? -code : code) };
	dconn_send(d, c, &f, msg);
}

static void dispatch(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	switch (c->role) {
	case ROLE_UNIX:
		registry_frame(d, c, f);
		break;
	case ROLE_PEER_IN:
		peers_frame_in(d, c, f);
		break;
	case ROLE_PEER_OUT:
		peers_frame_out(d, c, f);
		break;
	}
}

static void bad_frame(struct dicomd *d, struct dconn *c, const char *why)
{
	struct logline l;
	log_begin(&l, LOG_WARN, "bad_frame");
	log_str(&l, "peer", c->peer);
	log_str(&l, "error", why);
	log_end(&l);
	dconn_send_error(d, c, DICOM_EPROTO, why);
	dconn_close(d, c, "bad frame");
}

/* Dispatches the whole frames in c's buffer; -1 when c died of one. */
static int parse_input(struct dicomd *d, struct dconn *c, int *frames)
{
	size_t off = 0;
	while (!c->dead && !c->in_paused) {
		struct dicom_frame f;
		size_t used;
		char why[200];
		int res = dicomd_input_next(c->in + off, c->in_len - off, c->role, &f, &used, why,
					    sizeof(why));
		if (res == DICOMD_IN_MORE)
			break;
		if (res == DICOMD_IN_ERROR) {
			bad_frame(d, c, why);
			return -1;
		}
		off += used;
		(*frames)++;
		dispatch(d, c, &f);
	}
	if (c->dead)
		return -1;
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static void read_input(struct dicomd *d, struct dconn *c)
{
	int frames = 0;
	while (!c->dead && !c->in_paused && frames < READ_FRAMES_PER_EVENT) {
		ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
				 MSG_DONTWAIT);
		if (r == 0) {
			if (c->in_len) {
				char why[96];
				snprintf(why, sizeof(why),
					 "connection closed inside a frame (%zu bytes of it received)",
					 c->in_len);
				struct logline l;
				log_begin(&l, LOG_WARN, "bad_frame");
				log_str(&l, "peer", c->peer);
				log_str(&l, "error", why);
				log_end(&l);
			}
			dconn_close(d, c, "eof");
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				dconn_close(d, c, strerror(errno));
			return;
		}
		c->in_len += (size_t)r;
		if (parse_input(d, c, &frames) < 0)
			return;
	}
}

void dconn_pause_input(struct dicomd *d, struct dconn *c, int paused)
{
	if (c->dead || c->in_paused == paused)
		return;
	c->in_paused = paused;
	set_events(d, c, c->out_len || c->connecting ? EPOLLIN | EPOLLOUT : EPOLLIN);
	int frames = 0;
	if (!paused)
		parse_input(d, c, &frames);
}

void dconn_event(struct dicomd *d, struct dconn *c, uint32_t events)
{
	if (c->connecting) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			dconn_close(d, c, strerror(err));
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		c->connecting = 0;
	}
	if (events & EPOLLOUT)
		flush(d, c);
	if (!c->dead && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		read_input(d, c);
}
