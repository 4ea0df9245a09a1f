/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libdicom-stub-shim.so: preloaded into a rank by dicom-run, its home stub.
 *
 * A rank can be dumped by CRIU only while it holds no socket or pipe that
 * leads outside itself.  So the channels that must stay at home (stdout,
 * stderr, the PMIx connection to the local server) are, inside the rank,
 * one end of a pipe or socketpair whose other end this shim holds too, and
 * the shim's thread tunnels them to dicom-run over one TCP connection.
 * Before a dump the tunnel drains and closes (the endpoint calls our detach
 * hook); after the restore it reconnects home (the reattach hook).
 *
 * Interposed: connect (a connect to the PMIx server becomes a tunnelled
 * socketpair), setsockopt (TCP options on such a socket are accepted),
 * exit/_exit and __libc_start_main (the exit status travels home).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dicom.h"
#include "framebuf.h"
#include "shim_env.h"

#define SHIM_API __attribute__((visibility("default")))
#define MAX_CHANNELS 32
#define OUT_HIGH_WATER (4u << 20) /* stop reading the app while this much waits */
#define CHUNK 65536

struct channel {
	uint32_t id;
	int fd;
	int from_app;      /* read fd, frame what the app writes */
	int to_app;        /* write what home sends */
	int home_closed;
	struct framebuf pending; /* home -> app bytes not yet written */
};

enum tunnel_state { T_RUNNING, T_LEAVING, T_AWAY, T_RETURNING, T_DONE };

static struct shim {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int active;
	char stub[64];
	dicom_addr_t self;
	int sock, wake;
	struct framebuf out, in;
	struct channel ch[MAX_CHANNELS];
	uint32_t next_id;
	enum tunnel_state state;
	int drain_sent, drained;
	int exiting, exit_status, exit_sent;
	struct shim_pmix pmix;
	int tunnelled[MAX_CHANNELS];
} S = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
	.sock = -1, .wake = -1 };

static void wake_thread(void)
{
	uint64_t one = 1;
	if (write(S.wake, &one, sizeof(one)) < 0) {
		/* the eventfd is saturated, the thread wakes anyway */
	}
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits on the condition until pred holds or ms pass; lock held. */
static int wait_until(int (*pred)(void), int ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	while (!pred())
		if (pthread_cond_timedwait(&S.cond, &S.lock, &dl) == ETIMEDOUT)
			return pred();
	return 1;
}

static struct channel *channel_add(int fd, int from_app, int to_app)
{
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (S.ch[i].fd < 0) {
			struct channel *c = &S.ch[i];
			memset(c, 0, sizeof(*c));
			c->id = S.next_id++;
			c->fd = fd;
			c->from_app = from_app;
			c->to_app = to_app;
			return c;
		}
	return NULL;
}

static struct channel *channel_get(uint32_t id)
{
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (S.ch[i].fd >= 0 && S.ch[i].id == id)
			return &S.ch[i];
	return NULL;
}

static void channel_close(struct channel *c)
{
	close(c->fd);
	c->fd = -1;
	framebuf_free(&c->pending);
}

/* The stub is gone while we are not leaving: like a MOSIX process whose
 * deputy died, the rank cannot go on. */
static void lost_home(const char *why)
{
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "dicom shim: lost the home stub (%s); the rank ends\n", why);
	ssize_t w = write(2, msg, n > 0 ? (size_t)n : 0);
	(void)w;
	kill(getpid(), SIGKILL);
}

static void on_frame(const struct dicom_frame *f)
{
	struct channel *c;
	switch (f->type) {
	case DICOM_FT_STUB_DATA:
		c = channel_get(f->aux);
		if (c && c->to_app && framebuf_append(&c->pending, f->payload, f->length) < 0)
			lost_home("out of memory");
		break;
	case DICOM_FT_STUB_CLOSE:
		c = channel_get(f->aux);
		if (c)
			c->home_closed = 1;
		break;
	case DICOM_FT_STUB_DRAINED:
		S.drained = 1;
		pthread_cond_broadcast(&S.cond);
		break;
	case DICOM_FT_STUB_SIGNAL:
		pthread_mutex_unlock(&S.lock);
		kill(getpid(), (int)f->aux);
		pthread_mutex_lock(&S.lock);
		break;
	default:
		break;
	}
}

static void read_home(void)
{
	int r = framebuf_recv(&S.in, S.sock);
	struct dicom_frame f;
	int got;
	while ((got = framebuf_next(&S.in, &f)) == 1)
		on_frame(&f);
	if (got < 0)
		lost_home("the stub sent a bad frame");
	if (r < 0) {
		close(S.sock);
		S.sock = -1;
		if (S.exit_sent) {
			S.state = T_DONE;
			pthread_cond_broadcast(&S.cond);
		} else {
			lost_home("connection closed");
		}
	}
}

static void read_app(struct channel *c)
{
	uint8_t buf[CHUNK];
	ssize_t r = read(c->fd, buf, sizeof(buf));
	if (r > 0) {
		framebuf_put(&S.out, DICOM_FT_STUB_DATA, c->id, S.self, buf, (size_t)r);
	} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
		framebuf_put(&S.out, DICOM_FT_STUB_CLOSE, c->id, S.self, NULL, 0);
		c->from_app = 0;
		if (!c->to_app)
			channel_close(c);
	}
}

static void write_app(struct channel *c)
{
	struct framebuf *p = &c->pending;
	while (p->off < p->len) {
		ssize_t w = send(c->fd, p->buf + p->off, p->len - p->off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			p->off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		p->off = p->len; /* the app closed its end */
	}
	p->off = p->len = 0;
	if (c->home_closed)
		shutdown(c->fd, SHUT_WR);
}

/* Everything the app already wrote to stdout/stderr goes home before EXIT. */
static void drain_app_output(void)
{
	for (int i = 0; i < MAX_CHANNELS; i++) {
		struct channel *c = &S.ch[i];
		if (c->fd < 0 || !c->from_app || c->to_app)
			continue;
		int fl = fcntl(c->fd, F_GETFL);
		fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
		while (c->fd >= 0 && c->from_app) {
			uint8_t buf[CHUNK];
			ssize_t r = read(c->fd, buf, sizeof(buf));
			if (r <= 0)
				break;
			framebuf_put(&S.out, DICOM_FT_STUB_DATA, c->id, S.self, buf, (size_t)r);
		}
	}
}

static void step_state(void)
{
	if (S.state == T_LEAVING && !S.drain_sent && S.sock >= 0) {
		framebuf_put(&S.out, DICOM_FT_STUB_DRAIN, 0, S.self, NULL, 0);
		S.drain_sent = 1;
	}
	if (S.exiting && !S.exit_sent && S.state == T_RUNNING && S.sock >= 0) {
		drain_app_output();
		framebuf_put(&S.out, DICOM_FT_STUB_EXIT, (uint32_t)S.exit_status, S.self, NULL, 0);
		S.exit_sent = 1;
	}
	if (S.sock >= 0 && framebuf_send(&S.out, S.sock) < 0 && !S.exit_sent)
		lost_home("send failed");
	if (S.exit_sent && S.sock >= 0 && !framebuf_pending(&S.out))
		shutdown(S.sock, SHUT_WR); /* the stub closes after EXIT */
	if (S.state == T_LEAVING && S.drained && !framebuf_pending(&S.out)) {
		close(S.sock);
		S.sock = -1;
		framebuf_clear(&S.in);
		S.state = T_AWAY;
		pthread_cond_broadcast(&S.cond);
	}
}

static void reconnect_home(void)
{
	int64_t give_up = now_ms() + 30000;
	int fd;
	pthread_mutex_unlock(&S.lock);
	while ((fd = stub_tcp_connect(S.stub, 2000)) < 0 && now_ms() < give_up) {
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&S.lock);
	if (fd < 0)
		lost_home("cannot reconnect after the migration");
	S.sock = fd;
	S.drain_sent = S.drained = 0;
	framebuf_clear(&S.out);
	framebuf_clear(&S.in);
	framebuf_put(&S.out, DICOM_FT_STUB_HELLO, 1, S.self, NULL, 0);
	S.state = T_RUNNING;
	pthread_cond_broadcast(&S.cond);
}

static void *tunnel_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&S.lock);
	for (;;) {
		if (S.state == T_DONE)
			break;
		if (S.state == T_RETURNING)
			reconnect_home();
		step_state();

		struct pollfd pf[2 + MAX_CHANNELS];
		struct channel *who[2 + MAX_CHANNELS];
		int n = 0;
		pf[n] = (struct pollfd){ .fd = S.wake, .events = POLLIN };
		who[n++] = NULL;
		int sock_at = -1;
		if (S.sock >= 0) {
			sock_at = n;
			pf[n] = (struct pollfd){ .fd = S.sock,
						 .events = (short)(POLLIN | (framebuf_pending(&S.out) ? POLLOUT : 0)) };
			who[n++] = NULL;
		}
		int reading = S.state == T_RUNNING && framebuf_pending(&S.out) < OUT_HIGH_WATER;
		for (int i = 0; i < MAX_CHANNELS; i++) {
			struct channel *c = &S.ch[i];
			short ev = 0;
			if (c->fd < 0)
				continue;
			if (c->from_app && reading)
				ev |= POLLIN;
			if (c->to_app && (framebuf_pending(&c->pending) || c->home_closed))
				ev |= POLLOUT;
			if (!ev)
				continue;
			pf[n] = (struct pollfd){ .fd = c->fd, .events = ev };
			who[n++] = c;
		}
		pthread_mutex_unlock(&S.lock);
		int r = poll(pf, (nfds_t)n, 1000);
		pthread_mutex_lock(&S.lock);
		if (r <= 0)
			continue;
		if (pf[0].revents) {
			uint64_t v;
			ssize_t rr = read(S.wake, &v, sizeof(v));
			(void)rr;
		}
		if (sock_at >= 0 && S.sock == pf[sock_at].fd && (pf[sock_at].revents & (POLLIN | POLLHUP | POLLERR)))
			read_home();
		for (int i = 1; i < n; i++) {
			struct channel *c = who[i];
			if (!c || c->fd != pf[i].fd)
				continue;
			if (pf[i].revents & POLLOUT)
				write_app(c);
			if (c->fd >= 0 && (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) && c->from_app && reading)
				read_app(c);
		}
	}
	pthread_mutex_unlock(&S.lock);
	return NULL;
}

/* ---- migration hooks, found by libdicom's endpoint with dlsym ---- */

static int is_away(void) { return S.state == T_AWAY; }
static int is_running(void) { return S.state == T_RUNNING || S.state == T_DONE; }

static int hook_detach(void)
{
	pthread_mutex_lock(&S.lock);
	if (S.state != T_RUNNING || S.exiting) {
		pthread_mutex_unlock(&S.lock);
		return -1;
	}
	S.state = T_LEAVING;
	S.drain_sent = S.drained = 0;
	wake_thread();
	int ok = wait_until(is_away, 3000);
	if (!ok && S.state == T_LEAVING)
		S.state = T_RUNNING; /* the stub did not answer: stay, nothing was lost */
	pthread_mutex_unlock(&S.lock);
	return ok ? 0 : -1;
}

static void hook_reattach(void)
{
	pthread_mutex_lock(&S.lock);
	if (S.state == T_AWAY) {
		S.state = T_RETURNING;
		wake_thread();
	}
	pthread_mutex_unlock(&S.lock);
}

SHIM_API const struct dicom_migration_hooks dicom_stub_migration_hooks = {
	.detach = hook_detach,
	.reattach = hook_reattach,
};

/* ---- interposed libc calls ---- */

static int is_tunnelled(int fd)
{
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (S.tunnelled[i] == fd + 1)
			return 1;
	return 0;
}

SHIM_API int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	static int (*real)(int, const struct sockaddr *, socklen_t);
	if (!real)
		real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
	if (!S.active || !sa || sa->sa_family != AF_INET || len < sizeof(struct sockaddr_in))
		return real(fd, sa, len);
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
	char target[32];
	if (!shim_pmix_match(&S.pmix, ntohl(in->sin_addr.s_addr), ntohs(in->sin_port), target,
			     sizeof(target)))
		return real(fd, sa, len);

	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	if (dup3(sp[0], fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	close(sp[0]);
	fcntl(fd, F_SETFL, fl);
	fcntl(sp[1], F_SETFL, O_NONBLOCK);
	pthread_mutex_lock(&S.lock);
	struct channel *c = channel_add(sp[1], 1, 1);
	if (!c) {
		pthread_mutex_unlock(&S.lock);
		close(sp[1]);
		errno = EMFILE;
		return -1;
	}
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (!S.tunnelled[i]) {
			S.tunnelled[i] = fd + 1;
			break;
		}
	framebuf_put(&S.out, DICOM_FT_STUB_OPEN, c->id, S.self, target, strlen(target));
	wake_thread();
	pthread_mutex_unlock(&S.lock);
	return 0;
}

SHIM_API int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	static int (*real)(int, int, int, const void *, socklen_t);
	if (!real)
		real = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
	/* TCP options asked of a socket we made a socketpair: moot, accept. */
	if (S.active && level == IPPROTO_TCP && is_tunnelled(fd))
		return 0;
	return real(fd, level, name, val, len);
}

static int exit_done(void) { return S.state == T_DONE; }

/* Sends the exit status home and waits (bounded) until the stub has it. */
static void tunnel_exit(int status)
{
	if (!S.active)
		return;
	pthread_mutex_lock(&S.lock);
	/* A migration in flight finishes first: the status must go home. */
	wait_until(is_running, 30000);
	if (!S.exiting) {
		S.exiting = 1;
		S.exit_status = (status & 0xff) << 8;
		wake_thread();
	}
	wait_until(exit_done, 5000);
	pthread_mutex_unlock(&S.lock);
}

SHIM_API void exit(int status)
{
	static void (*real)(int);
	if (!real)
		real = (void (*)(int))dlsym(RTLD_NEXT, "exit");
	fflush(NULL);
	tunnel_exit(status);
	real(status);
	abort(); /* libc's exit does not return */
}

SHIM_API void _exit(int status)
{
	static void (*real)(int);
	if (!real)
		real = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
	tunnel_exit(status);
	real(status);
	abort(); /* libc's _exit does not return */
}

typedef int (*main_fn)(int, char **, char **);
static main_fn app_main;

/* main's return reaches exit() inside libc, past our interposed exit. */
static int main_wrapper(int argc, char **argv, char **envp)
{
	int r = app_main(argc, argv, envp);
	exit(r);
}

SHIM_API int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
			       void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
	int (*real)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *) =
		(int (*)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
			 void *))dlsym(RTLD_NEXT, "__libc_start_main");
	app_main = main;
	return real(S.active ? main_wrapper : main, argc, argv, init, fini, rtld_fini, stack_end);
}

/* ---- start: before the application's own constructors ---- */

static int pipe_channel(int target_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if (dup2(p[1], target_fd) < 0)
		return -1;
	close(p[1]);
	return channel_add(p[0], 1, 0) ? 0 : -1;
}

__attribute__((constructor)) static void shim_start(void)
{
	char why[160];
	if (shim_env_take(S.stub, sizeof(S.stub), &S.pmix, why, sizeof(why)) <= 0) {
		if (why[0])
			fprintf(stderr, "dicom shim: %s; running without the home stub\n", why);
		return;
	}
	for (int i = 0; i < MAX_CHANNELS; i++)
		S.ch[i].fd = -1;
	S.next_id = 1;
	uint32_t node = 0;
	uint16_t port = 0;
	stub_parse_hostport(S.stub, &node, &port);
	S.self = (dicom_addr_t){ node, (uint32_t)getpid() };
	S.sock = stub_tcp_connect(S.stub, 5000);
	S.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* stdin stays at home: a pipe from orted could not be dumped. */
	if (S.sock < 0 || S.wake < 0 || devnull < 0 || dup2(devnull, 0) < 0 ||
	    pipe_channel(1) < 0 || pipe_channel(2) < 0) {
		fprintf(stderr, "dicom shim: cannot reach the home stub at %s: %s\n", S.stub,
			strerror(errno));
		_exit(127);
	}
	close(devnull);
	framebuf_put(&S.out, DICOM_FT_STUB_HELLO, 0, S.self, NULL, 0);
	S.state = T_RUNNING;
	S.active = 1;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	int rc = pthread_create(&t, NULL, tunnel_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		fprintf(stderr, "dicom shim: cannot start the tunnel thread\n");
		_exit(127);
	}
	pthread_detach(t);
}
