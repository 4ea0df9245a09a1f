/* SPDX-License-Identifier: BSD-3-Clause */
/* Endpoint lifecycle, the public send/progress calls and the progress pass. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ep_internal.h"
#include "msgbuf.h"
#include "sock.h"

int dicom_ep_watch(dicom_ep_t *ep, struct dicom_sock *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };
	s->events = events;
	return epoll_ctl(ep->epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

void dicom_ep_set_events(dicom_ep_t *ep, struct dicom_sock *s, uint32_t events)
{
	if (s->events == events)
		return;
	struct epoll_event ev = { .events = events, .data.ptr = s };
	s->events = events;
	epoll_ctl(ep->epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

void dicom_ep_bury(dicom_ep_t *ep, struct dicom_sock *s)
{
	if (s->fd >= 0) {
		epoll_ctl(ep->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
		s->fd = -1;
	}
	s->dead = 1;
	s->grave_next = ep->graveyard;
	ep->graveyard = s;
}

static void free_graveyard(dicom_ep_t *ep)
{
	while (ep->graveyard) {
		struct dicom_sock *s = ep->graveyard;
		ep->graveyard = s->grave_next;
		if (s->kind == SK_CONN) {
			struct conn *c = (struct conn *)s;
			free(c->buf);
			dicom_msgbuf_free(c->big);
		}
		free(s);
	}
}

void dicom_ep_timer_at(dicom_ep_t *ep, int64_t when)
{
	if (when < ep->next_timer)
		ep->next_timer = when;
}

int dicom_ep_open_listener(dicom_ep_t *ep)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(ep->node),
				  .sin_port = 0 };
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 256) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	struct dicom_sock *s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	s->kind = SK_LISTEN;
	s->fd = fd;
	s->owner = ep;
	if (dicom_ep_watch(ep, s, EPOLLIN) < 0) {
		int e = errno;
		close(fd);
		free(s);
		errno = e;
		return -1;
	}
	ep->listen = s;
	ep->port = ntohs(sa.sin_port);
	return 0;
}

/* Closes every external socket, as a migration or a broken network would.
 * Stream state survives; the next pass reconnects and retransmits. */
void dicom_ep_close_all_sockets(dicom_ep_t *ep)
{
	for (struct out_peer *p = ep->outs; p; p = p->next)
		dicom_out_close(ep, p);
	while (ep->conns)
		dicom_conn_close(ep, ep->conns);
	if (ep->listen) {
		dicom_ep_bury(ep, ep->listen);
		ep->listen = NULL;
	}
	dicom_dl_close(ep);
	ep->dl.retry_at = 0;
	ep->dl.backoff = 0;
	ep->next_timer = 0;
}

struct held_msg *dicom_held_pop(dicom_ep_t *ep)
{
	struct held_msg *m = ep->held_head;
	if (m) {
		ep->held_head = m->next;
		if (!ep->held_head)
			ep->held_tail = NULL;
		ep->held_bytes -= m->len;
	}
	return m;
}

static void deliver_held(dicom_ep_t *ep)
{
	while (ep->held_head && ep->cb) {
		struct held_msg *m = dicom_held_pop(ep);
		ep->cb_calls++;
		ep->cb(ep->cb_ctx, &m->src, m->tag, m->data, m->len);
		dicom_msgbuf_free(m);
	}
}

/* One progress pass.  app: the application's dicom_progress (callbacks run
 * now) rather than the progress thread (deliveries are held). */
int dicom_ep_pass(dicom_ep_t *ep, int app)
{
	uint64_t before = ep->cb_calls;
	int64_t now = dicom_now_ns();
	if (app) {
		ep->last_app_progress = now;
		deliver_held(ep);
	}
	if (ep->break_requested) {
		ep->break_requested = 0;
		dicom_ep_close_all_sockets(ep);
	}
	if (now >= ep->next_timer) {
		ep->next_timer = INT64_MAX;
		dicom_dl_maintain(ep, now);
		dicom_kmbox_timers(ep, now);
		dicom_out_timers(ep, now);
		dicom_traffic_maintain(ep, now);
	}

	struct epoll_event evs[64];
	int n = epoll_wait(ep->epfd, evs, 64, 0);
	for (int i = 0; i < n; i++) {
		struct dicom_sock *s = evs[i].data.ptr;
		if (s->dead)
			continue;
		switch (s->kind) {
		case SK_LISTEN:
			dicom_conn_accept(ep);
			break;
		case SK_DAEMON:
			dicom_dl_event(ep, evs[i].events);
			break;
		case SK_CONN:
			/* Without an application draining them, held messages
			 * must not grow without bound: leave the data in the
			 * socket and let the senders' windows push back. */
			dicom_conn_event(ep, s->owner, evs[i].events,
					 app || ep->held_bytes <= DICOM_HELD_MAX);
			break;
		case SK_MBOX:
			dicom_kmbox_event(ep, app || ep->held_bytes <= DICOM_HELD_MAX);
			break;
		case SK_WAKE: {
			uint64_t v;
			if (read(s->fd, &v, sizeof(v)) < 0) {
				/* nothing to do: the wakeup only ends a wait */
			}
			break;
		}
		}
	}
	if (ep->ack_list)
		dicom_in_send_acks(ep, dicom_now_ns());
	if (ep->depth == 1)
		free_graveyard(ep);
	uint64_t calls = ep->cb_calls - before;
	return calls > INT32_MAX ? INT32_MAX : (int)calls;
}

DICOM_API int dicom_ep_open(const struct dicom_ep_opts *opts, dicom_ep_t **out,
			    char *err, size_t errlen)
{
	char dummy[1];
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!out) {
		snprintf(err, errlen, "dicom_ep_open: out is NULL");
		return DICOM_EINVAL;
	}
	*out = NULL;
	const char *name = dicom_daemon_name(opts ? opts->daemon_name : NULL);
	if (strlen(name) >= sizeof(((dicom_ep_t *)0)->daemon_name)) {
		snprintf(err, errlen, "daemon name too long: %s", name);
		return DICOM_EINVAL;
	}
	dicom_ep_t *ep = calloc(1, sizeof(*ep));
	if (!ep) {
		snprintf(err, errlen, "out of memory");
		return DICOM_ENOMEM;
	}
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&ep->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	strcpy(ep->daemon_name, name);
	ep->window = opts && opts->window_bytes ? opts->window_bytes : DICOM_DEFAULT_WINDOW;
	ep->deliver_unlocked = opts && opts->deliver_unlocked;
	ep->epfd = -1;
	ep->wake.fd = -1;
	ep->wake.kind = SK_WAKE;
	ep->next_timer = INT64_MAX;
	int rc;
	if (dicom_addrmap_init(&ep->outs_by_dst) < 0 ||
	    dicom_addrmap_init(&ep->ins_by_src) < 0) {
		snprintf(err, errlen, "out of memory");
		rc = DICOM_ENOMEM;
		goto fail;
	}
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	ep->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ep->epfd < 0 || ep->wake.fd < 0 || dicom_ep_watch(ep, &ep->wake, EPOLLIN) < 0) {
		snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
		rc = DICOM_EIO;
		goto fail;
	}
	dicom_migrate_find_hooks(ep);
	dicom_traffic_identify(ep);
	rc = dicom_dl_register_blocking(ep, err, errlen);
	if (rc != DICOM_OK)
		goto fail;
	rc = dicom_kmbox_open(ep, err, errlen);
	if (rc != DICOM_OK)
		goto fail;
	ep->last_app_progress = dicom_now_ns();
	if (opts && opts->progress_thread && dicom_thread_start(ep) != 0) {
		snprintf(err, errlen, "cannot start the progress thread: %s", strerror(errno));
		rc = DICOM_EIO;
		goto fail;
	}
	*out = ep;
	return DICOM_OK;
fail:
	dicom_ep_close(ep);
	return rc;
}

/* One JSON line per endpoint, appended whole (O_APPEND) so the ranks of a
 * job can share the file. */
static void log_stats(dicom_ep_t *ep)
{
	const char *path = getenv(DICOM_STATS_LOG_ENV);
	if (!path || !*path || ep->self.home_pid == 0)
		return;
	char line[DICOM_WIRE_MAX_PONG + 1];
	int n = dicom_ep_stats_json(ep, line, sizeof(line) - 1);
	if (n <= 0)
		return;
	line[n++] = '\n';
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n) {
		/* best effort: the endpoint is closing either way */
	}
	close(fd);
}

DICOM_API void dicom_ep_close(dicom_ep_t *ep)
{
	if (!ep)
		return;
	dicom_thread_stop(ep);
	pthread_mutex_lock(&ep->lock);
	log_stats(ep);
	dicom_dl_deregister(ep);
	dicom_kmbox_close(ep);
	dicom_ep_close_all_sockets(ep);
	free_graveyard(ep);
	struct out_peer *p = ep->outs;
	while (p) {
		struct out_peer *n = p->next;
		dicom_outstream_destroy(&p->st);
		free(p);
		p = n;
	}
	struct dicom_addrmap_iter it = { 0 };
	struct in_peer *ip;
	if (ep->ins_by_src.buckets)
		while ((ip = dicom_addrmap_next(&ep->ins_by_src, &it, NULL))) {
			dicom_kmbox_in_free(ip);
			free(ip);
		}
	dicom_addrmap_destroy(&ep->outs_by_dst);
	dicom_addrmap_destroy(&ep->ins_by_src);
	dicom_held_free_all(ep);
	free(ep->dl.out);
	if (ep->wake.fd >= 0)
		close(ep->wake.fd);
	if (ep->epfd >= 0)
		close(ep->epfd);
	pthread_mutex_unlock(&ep->lock);
	pthread_mutex_destroy(&ep->lock);
	free(ep);
}

DICOM_API dicom_addr_t dicom_ep_addr(const dicom_ep_t *ep)
{
	return ep->self;
}

DICOM_API int dicom_send(dicom_ep_t *ep, const dicom_addr_t *dst, uint8_t tag,
			 const struct iovec *iov, int iovcnt)
{
	if (!ep || !dst || iovcnt < 0 || (iovcnt > 0 && !iov))
		return DICOM_EINVAL;
	size_t len = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && !iov[i].iov_base)
			return DICOM_EINVAL;
		len += iov[i].iov_len;
		if (len > DICOM_MAX_MSG)
			return DICOM_ETOOBIG;
	}
	pthread_mutex_lock(&ep->lock);
	int rc = DICOM_OK;
	if (__atomic_load_n(&ep->stop, __ATOMIC_RELAXED)) {
		rc = DICOM_ECLOSED;
		goto out;
	}
	struct out_peer *p = dicom_out_get(ep, *dst);
	if (!p) {
		rc = DICOM_ENOMEM;
		goto out;
	}
	if (!dicom_outstream_has_room(&p->st, len)) {
		rc = DICOM_EAGAIN;
		goto out;
	}
	if (!dicom_outstream_push(&p->st, tag, iov, iovcnt, len)) {
		rc = DICOM_ENOMEM;
		goto out;
	}
	ep->stats.msgs_sent++;
	ep->stats.bytes_sent += len;
	p->bytes_sent += len;
	if (p->state == OUT_ESTABLISHED)
		dicom_out_flush(ep, p); /* latency: write now, not at the next progress */
	else if (p->state == OUT_IDLE)
		dicom_out_kick(ep, p, dicom_now_ns());
out:
	pthread_mutex_unlock(&ep->lock);
	return rc;
}

DICOM_API int dicom_progress(dicom_ep_t *ep, dicom_recv_fn cb, void *ctx)
{
	if (!ep)
		return DICOM_EINVAL;
	pthread_mutex_lock(&ep->lock);
	if (ep->depth > 0) {
		/* called from inside the delivery callback: the outer pass
		 * is still parsing, so this one has nothing safe to do */
		pthread_mutex_unlock(&ep->lock);
		return 0;
	}
	ep->depth++;
	if (ep->deliver_unlocked && cb) {
		/* The pass only queues (cb stays NULL); delivery happens
		 * below, one message at a time, with the lock released. */
		dicom_ep_pass(ep, 1);
		ep->depth--;
		int r = 0;
		struct held_msg *m;
		while ((m = dicom_held_pop(ep))) {
			pthread_mutex_unlock(&ep->lock);
			cb(ctx, &m->src, m->tag, m->data, m->len);
			dicom_msgbuf_free(m);
			r += r < INT32_MAX;
			pthread_mutex_lock(&ep->lock);
		}
		pthread_mutex_unlock(&ep->lock);
		return r;
	}
	ep->cb = cb;
	ep->cb_ctx = ctx;
	int r = dicom_ep_pass(ep, cb != NULL);
	ep->cb = NULL;
	ep->cb_ctx = NULL;
	ep->depth--;
	pthread_mutex_unlock(&ep->lock);
	return r;
}

DICOM_API int dicom_ep_busy(dicom_ep_t *ep)
{
	int busy = 0;
	pthread_mutex_lock(&ep->lock);
	for (struct out_peer *p = ep->outs; p && !busy; p = p->next)
		busy = !dicom_outstream_idle(&p->st);
	pthread_mutex_unlock(&ep->lock);
	return busy;
}

DICOM_API void dicom_ep_stats(dicom_ep_t *ep, struct dicom_ep_stats *out)
{
	pthread_mutex_lock(&ep->lock);
	*out = ep->stats;
	uint64_t re = 0;
	for (struct out_peer *p = ep->outs; p; p = p->next)
		re += p->st.retransmitted;
	out->retransmitted = re;
	pthread_mutex_unlock(&ep->lock);
}

DICOM_API void dicom_ep_break_connections(dicom_ep_t *ep)
{
	pthread_mutex_lock(&ep->lock);
	if (ep->depth > 0)
		ep->break_requested = 1; /* inside a pass: sockets are in use */
	else
		dicom_ep_close_all_sockets(ep);
	pthread_mutex_unlock(&ep->lock);
}
