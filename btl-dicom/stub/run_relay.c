/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicom-run's side of the tunnel: one rank connects (again after every
 * migration), and its channels are served here, at home: stdout and stderr
 * go to our own, and each socket the rank opened to a home service (PMIx)
 * is a real connection made from here.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "run.h"

static struct home_channel *channel_get(struct relay *r, uint32_t id)
{
	for (int i = 0; i < RELAY_MAX_CHANNELS; i++)
		if (r->ch[i].fd >= 0 && r->ch[i].id == id)
			return &r->ch[i];
	return NULL;
}

void relay_init(struct relay *r)
{
	memset(r, 0, sizeof(*r));
	r->conn = -1;
	for (int i = 0; i < RELAY_MAX_CHANNELS; i++)
		r->ch[i].fd = -1;
}

static void open_channel(struct relay *r, const struct dicom_frame *f)
{
	char target[65];
	memcpy(target, f->payload, f->length);
	target[f->length] = '\0';
	int fd = stub_tcp_connect(target, 5000);
	struct home_channel *c = NULL;
	for (int i = 0; fd >= 0 && i < RELAY_MAX_CHANNELS; i++)
		if (r->ch[i].fd < 0) {
			c = &r->ch[i];
			break;
		}
	if (!c) {
		run_log("cannot open channel %u to %s: %s", f->aux, target,
			fd < 0 ? strerror(errno) : "too many channels");
		if (fd >= 0)
			close(fd);
		framebuf_put(&r->out, DICOM_FT_STUB_CLOSE, f->aux, r->self, NULL, 0);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->id = f->aux;
	c->fd = fd;
}

static void close_channel(struct home_channel *c)
{
	close(c->fd);
	c->fd = -1;
	framebuf_free(&c->pending);
}

static int write_local(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void on_frame(struct relay *r, const struct dicom_frame *f)
{
	struct home_channel *c;
	switch (f->type) {
	case DICOM_FT_STUB_HELLO:
		r->hellos++;
		break;
	case DICOM_FT_STUB_OPEN:
		open_channel(r, f);
		break;
	case DICOM_FT_STUB_DATA:
		if (f->aux == 1 || f->aux == 2) {
			if (write_local(f->aux, f->payload, f->length) < 0 && !r->stdio_lost) {
				r->stdio_lost = 1; /* mpirun went away; keep the rank's state anyway */
			}
		} else if ((c = channel_get(r, f->aux)) && framebuf_append(&c->pending, f->payload, f->length) < 0) {
			run_log("out of memory buffering channel %u", f->aux);
			close_channel(c);
		}
		break;
	case DICOM_FT_STUB_CLOSE:
		if ((c = channel_get(r, f->aux)) != NULL)
			shutdown(c->fd, SHUT_WR);
		break;
	case DICOM_FT_STUB_DRAIN:
		/* Nothing more goes to the rank until it says HELLO again:
		 * what home services send meanwhile waits in their sockets. */
		framebuf_put(&r->out, DICOM_FT_STUB_DRAINED, 0, r->self, NULL, 0);
		r->draining = 1;
		r->migrations++;
		break;
	case DICOM_FT_STUB_EXIT:
		r->exit_status = (int)f->aux;
		r->exited = 1;
		break;
	default:
		break;
	}
}

int relay_accept(struct relay *r, int listen_fd)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return -1;
	if (r->conn >= 0) { /* a rank returning after a migration replaces a stale link */
		close(r->conn);
		framebuf_clear(&r->in);
	}
	r->conn = fd;
	r->draining = 0;
	framebuf_clear(&r->out);
	if (r->pending_signal) {
		framebuf_put(&r->out, DICOM_FT_STUB_SIGNAL, (uint32_t)r->pending_signal, r->self, NULL, 0);
		r->pending_signal = 0;
	}
	return 0;
}

/* The rank's link closed: expected after DRAIN or EXIT, a death otherwise. */
static void conn_closed(struct relay *r)
{
	close(r->conn);
	r->conn = -1;
	framebuf_clear(&r->in);
	framebuf_clear(&r->out);
	if (!r->draining && !r->exited)
		r->lost = 1;
}

int relay_poll_fds(struct relay *r, struct pollfd *pf, int max)
{
	int n = 0;
	if (r->conn >= 0 && n < max)
		pf[n++] = (struct pollfd){ .fd = r->conn,
					   .events = (short)(POLLIN | (framebuf_pending(&r->out) ? POLLOUT : 0)) };
	for (int i = 0; i < RELAY_MAX_CHANNELS && n < max; i++) {
		struct home_channel *c = &r->ch[i];
		short ev = 0;
		if (c->fd < 0)
			continue;
		if (r->conn >= 0 && !r->draining && framebuf_pending(&r->out) < (4u << 20))
			ev |= POLLIN;
		if (framebuf_pending(&c->pending))
			ev |= POLLOUT;
		if (ev)
			pf[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
	}
	return n;
}

void relay_handle(struct relay *r, const struct pollfd *pf, int n)
{
	for (int k = 0; k < n; k++) {
		if (!pf[k].revents)
			continue;
		if (pf[k].fd == r->conn) {
			if (pf[k].revents & POLLOUT && framebuf_send(&r->out, r->conn) < 0) {
				conn_closed(r);
				continue;
			}
			if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int got = framebuf_recv(&r->in, r->conn);
			struct dicom_frame f;
			int more;
			while ((more = framebuf_next(&r->in, &f)) == 1)
				on_frame(r, &f);
			if (more < 0) {
				run_log("the rank sent a malformed frame; dropping its link");
				got = -1;
			}
			if (got < 0)
				conn_closed(r);
			continue;
		}
		for (int i = 0; i < RELAY_MAX_CHANNELS; i++) {
			struct home_channel *c = &r->ch[i];
			if (c->fd != pf[k].fd)
				continue;
			if (pf[k].revents & POLLOUT) {
				if (framebuf_send(&c->pending, c->fd) < 0)
					framebuf_clear(&c->pending);
			}
			if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) {
				uint8_t buf[65536];
				ssize_t got = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
				if (got > 0) {
					framebuf_put(&r->out, DICOM_FT_STUB_DATA, c->id, r->self, buf, (size_t)got);
				} else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
					framebuf_put(&r->out, DICOM_FT_STUB_CLOSE, c->id, r->self, NULL, 0);
					close_channel(c);
				}
			}
			break;
		}
	}
	if (r->conn >= 0 && framebuf_pending(&r->out) && framebuf_send(&r->out, r->conn) < 0)
		conn_closed(r);
}

void relay_signal(struct relay *r, int sig)
{
	if (r->conn >= 0 && !r->draining) {
		framebuf_put(&r->out, DICOM_FT_STUB_SIGNAL, (uint32_t)sig, r->self, NULL, 0);
		if (framebuf_send(&r->out, r->conn) < 0)
			conn_closed(r);
	} else {
		r->pending_signal = sig; /* delivered when the rank reattaches */
	}
}
