/* SPDX-License-Identifier: BSD-3-Clause */
/* dicomd: command line, sockets, signals and the event loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/dicom_mbox.h>

#include "dicomd.h"
#include "sock.h"

/* epoll tags for the three non-connection fds; connections use pointers. */
#define TAG_UNIX 1u
#define TAG_TCP 2u
#define TAG_SIGNAL 3u
/* RELAY_EPOLL_TAG (relay.h) is 4. */

static void usage(FILE *to)
{
	fprintf(to,
		"Usage: dicomd [OPTIONS]\n"
		"DiCOM node daemon: registers local endpoints on an abstract unix socket,\n"
		"keeps the home directory of processes born on this node, and answers\n"
		"other nodes' lookups on a TCP port.\n"
		"\n"
		"Options:\n"
		"  --node-addr A      this node's IPv4 address (default 127.0.0.1); endpoints\n"
		"                     listen on it and it is the home of local processes\n"
		"  --port P           TCP port for other dicomds, same on every node (default %d)\n"
		"  --name N           abstract unix socket name @N (default %s;\n"
		"                     endpoints use $DICOM_DAEMON to pick another)\n"
		"  --log FILE         append JSON-lines logs to FILE (default stderr)\n"
		"  --detached-ttl S   forget a detached process after S seconds (default 600)\n"
		"  --peers LIST       the other nodes' dicomds, comma-separated IPv4 addresses\n"
		"                     (this node's own address may be listed); gossip goes\n"
		"                     only to these\n"
		"  --gossip-period-ms MS  send the load vector to one random peer every MS ms\n"
		"                     (default %d, 10-60000)\n"
		"  --gossip-window N  at most N entries per round: this node's, then the\n"
		"                     freshest others (default %d, 1-%d)\n"
		"  --gossip-max-age-ms MS  forget a node not heard of for MS ms\n"
		"                     (default %d gossip periods)\n"
		"  --relay MODE       auto, on or off (default auto): carry kernel mailbox\n"
		"                     messages between nodes through " DICOM_RELAY_DEV "\n"
		"                     (auto: when the dicom_mbox driver is loaded; on: fail\n"
		"                     to start without it)\n"
		"  --help             show this help and exit\n"
		"\n"
		"SIGTERM or SIGINT shuts down cleanly (exit status 0).\n",
		DICOM_DEFAULT_PORT, DICOM_DEFAULT_DAEMON, GOSSIP_DEFAULT_PERIOD_MS,
		GOSSIP_DEFAULT_WINDOW, GOSSIP_MAX_WINDOW, GOSSIP_DEFAULT_AGE_PERIODS);
}

/* A decimal integer in [min, max] for option name; -1 with a message if not. */
static long long option_number(const char *name, const char *arg, long long min, long long max)
{
	char *end;
	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (errno || *end || end == arg || v < min || v > max) {
		fprintf(stderr, "dicomd: --%s %s is not a number from %lld to %lld\n", name, arg,
			min, max);
		return -1;
	}
	return v;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof(((struct dicomd *)0)->name))
		return 0;
	for (; *s; s++)
		if (!(*s == '-' || *s == '_' || *s == '.' || (*s >= '0' && *s <= '9') ||
		      (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

static int parse_args(int argc, char **argv, struct dicomd *d, const char **log_path,
		      struct gossip_config *gc, enum relay_mode *relay)
{
	static const struct option opts[] = {
		{ "node-addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "log", required_argument, NULL, 'l' },
		{ "detached-ttl", required_argument, NULL, 't' },
		{ "peers", required_argument, NULL, 'P' },
		{ "gossip-period-ms", required_argument, NULL, 'g' },
		{ "gossip-window", required_argument, NULL, 'w' },
		{ "gossip-max-age-ms", required_argument, NULL, 'm' },
		{ "relay", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	d->node = INADDR_LOOPBACK;
	d->port = DICOM_DEFAULT_PORT;
	snprintf(d->name, sizeof(d->name), "%s", DICOM_DEFAULT_DAEMON);
	d->detached_ttl_ns = 600LL * 1000000000;
	gossip_config_default(gc);
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'a': {
			struct in_addr ia;
			if (inet_pton(AF_INET, optarg, &ia) != 1 || ia.s_addr == 0) {
				fprintf(stderr, "dicomd: --node-addr %s is not an IPv4 address\n", optarg);
				return 2;
			}
			d->node = ntohl(ia.s_addr);
			break;
		}
		case 'p': {
			errno = 0;
			unsigned long p = strtoul(optarg, &end, 10);
			if (errno || *end || p == 0 || p > 65535) {
				fprintf(stderr, "dicomd: --port %s is not a port number (1-65535)\n", optarg);
				return 2;
			}
			d->port = (uint16_t)p;
			break;
		}
		case 'n':
			if (!valid_name(optarg)) {
				fprintf(stderr,
					"dicomd: --name %s: use 1-99 characters from [A-Za-z0-9._-]\n",
					optarg);
				return 2;
			}
			snprintf(d->name, sizeof(d->name), "%s", optarg);
			break;
		case 'l':
			*log_path = optarg;
			break;
		case 't': {
			errno = 0;
			unsigned long s = strtoul(optarg, &end, 10);
			if (errno || *end || s > 86400 * 365) {
				fprintf(stderr, "dicomd: --detached-ttl %s is not a number of seconds\n",
					optarg);
				return 2;
			}
			d->detached_ttl_ns = (int64_t)s * 1000000000;
			break;
		}
		case 'P': {
			char why[128];
			if (gossip_parse_peers(optarg, gc, why, sizeof(why)) < 0) {
				fprintf(stderr, "dicomd: %s\n", why);
				return 2;
			}
			break;
		}
		case 'g': {
			long long v = option_number("gossip-period-ms", optarg, 10, 60000);
			if (v < 0)
				return 2;
			gc->period_ns = v * 1000000;
			break;
		}
		case 'w': {
			long long v = option_number("gossip-window", optarg, 1, GOSSIP_MAX_WINDOW);
			if (v < 0)
				return 2;
			gc->window = (unsigned)v;
			break;
		}
		case 'm': {
			long long v = option_number("gossip-max-age-ms", optarg, 10, 86400000);
			if (v < 0)
				return 2;
			gc->max_age_ns = v * 1000000;
			break;
		}
		case 'r':
			if (!strcmp(optarg, "auto"))
				*relay = RELAY_AUTO;
			else if (!strcmp(optarg, "on"))
				*relay = RELAY_ON;
			else if (!strcmp(optarg, "off"))
				*relay = RELAY_OFF;
			else {
				fprintf(stderr, "dicomd: --relay %s: use auto, on or off\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dicomd: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return 0;
}

static void log_fatal(const char *what, const char *detail)
{
	struct logline l;
	log_begin(&l, LOG_ERROR, "fatal");
	log_str(&l, "error", what);
	log_str(&l, "detail", detail);
	log_end(&l);
}

static int watch(struct dicomd *d, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int open_unix(struct dicomd *d)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(d->name);
	memcpy(sa.sun_path + 1, d->name, n);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 256) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	d->unix_fd = fd;
	return 0;
}

static int open_tcp(struct dicomd *d)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(d->node),
				  .sin_port = htons(d->port) };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 256) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	d->tcp_fd = fd;
	return 0;
}

static int open_signals(struct dicomd *d)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return d->sig_fd < 0 ? -1 : 0;
}

static void free_map_values(struct dicom_addrmap *m)
{
	struct dicom_addrmap_iter it = { 0 };
	void *v;
	while ((v = dicom_addrmap_next(m, &it, NULL)))
		free(v);
	dicom_addrmap_destroy(m);
}

/* Shutdown closes sockets directly: telling other nodes that our
 * endpoints detached is pointless when the daemon itself goes away. */
static void teardown(struct dicomd *d)
{
	while (d->conns) {
		struct dconn *c = d->conns;
		d->conns = c->next;
		close(c->fd);
		free(c->in);
		free(c->out);
		free(c);
	}
	dconn_free_dead(d);
	while (d->pending) {
		struct pending *p = d->pending;
		d->pending = p->next;
		free(p);
	}
	free_map_values(&d->endpoints);
	free_map_values(&d->directory);
	free_map_values(&d->cache);
	gossip_destroy(d);
	relay_close(d);
	if (d->unix_fd >= 0)
		close(d->unix_fd);
	if (d->tcp_fd >= 0)
		close(d->tcp_fd);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->epfd >= 0)
		close(d->epfd);
}

static int run(struct dicomd *d)
{
	int64_t next_sweep = dicom_now_ns() + 1000000000;
	for (;;) {
		struct epoll_event evs[128];
		int64_t now0 = dicom_now_ns();
		int64_t next = gossip_tick(d, now0);
		int64_t relay_next = relay_tick(d, now0);
		if (relay_next < next)
			next = relay_next;
		int64_t until = next - dicom_now_ns();
		/* Round up: waking a little early would spin until the deadline. */
		int timeout = until <= 0 ? 0 : until < 100000000 ? (int)((until + 999999) / 1000000) : 100;
		int n = epoll_wait(d->epfd, evs, 128, timeout);
		if (n < 0 && errno != EINTR) {
			log_fatal("epoll_wait failed", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			if (tag == TAG_UNIX) {
				registry_accept(d);
			} else if (tag == TAG_TCP) {
				peers_accept(d);
			} else if (tag == RELAY_EPOLL_TAG) {
				relay_readable(d);
			} else if (tag == TAG_SIGNAL) {
				struct signalfd_siginfo si;
				if (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					struct logline l;
					log_begin(&l, LOG_INFO, "shutdown");
					log_str(&l, "signal", strsignal((int)si.ssi_signo));
					log_int(&l, "pid", getpid());
					log_end(&l);
					return 0;
				}
			} else {
				struct dconn *c = evs[i].data.ptr;
				if (!c->dead)
					dconn_event(d, c, evs[i].events);
			}
		}
		int64_t now = dicom_now_ns();
		if (d->pending)
			pending_expire(d, now);
		if (now >= next_sweep) {
			directory_sweep(d, now);
			next_sweep = now + 1000000000;
		}
		dconn_free_dead(d);
	}
}

int main(int argc, char **argv)
{
	struct dicomd d = { .epfd = -1, .unix_fd = -1, .tcp_fd = -1, .sig_fd = -1 };
	const char *log_path = NULL;
	static struct gossip_config gc;
	enum relay_mode relay = RELAY_AUTO;
	int r = parse_args(argc, argv, &d, &log_path, &gc, &relay);
	if (r == 1)
		return 0; /* --help */
	if (r)
		return r;
	if (log_open(log_path) < 0) {
		fprintf(stderr, "dicomd: cannot open log file %s: %s\n", log_path, strerror(errno));
		return 1;
	}
	d.started_ns = dicom_now_ns();
	if (dicom_addrmap_init(&d.endpoints) < 0 || dicom_addrmap_init(&d.directory) < 0 ||
	    dicom_addrmap_init(&d.cache) < 0 || gossip_init(&d, &gc) < 0) {
		log_fatal("out of memory", "");
		return 1;
	}
	char detail[160], node[INET_ADDRSTRLEN];
	struct in_addr ia = { .s_addr = htonl(d.node) };
	inet_ntop(AF_INET, &ia, node, sizeof(node));
	int rc = 1;
	d.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d.epfd < 0 || open_signals(&d) < 0) {
		log_fatal("cannot set up epoll/signals", strerror(errno));
		goto out;
	}
	if (open_unix(&d) < 0) {
		snprintf(detail, sizeof(detail), "@%s: %s%s", d.name, strerror(errno),
			 errno == EADDRINUSE ? " (another dicomd is running with this --name)" : "");
		log_fatal("cannot listen on the abstract unix socket", detail);
		goto out;
	}
	if (open_tcp(&d) < 0) {
		snprintf(detail, sizeof(detail), "%s:%u: %s", node, d.port, strerror(errno));
		log_fatal("cannot listen on the peer port", detail);
		goto out;
	}
	if (watch(&d, d.unix_fd, TAG_UNIX) < 0 || watch(&d, d.tcp_fd, TAG_TCP) < 0 ||
	    watch(&d, d.sig_fd, TAG_SIGNAL) < 0) {
		log_fatal("epoll_ctl failed", strerror(errno));
		goto out;
	}
	if (relay_open(&d, relay) < 0)
		goto out; /* logged */
	struct logline l;
	log_begin(&l, LOG_INFO, "start");
	log_str(&l, "node", node);
	log_int(&l, "port", d.port);
	log_str(&l, "socket", d.name);
	log_int(&l, "pid", getpid());
	log_int(&l, "peers", (long long)d.gossip->npeers);
	log_int(&l, "gossip_period_ms", gc.period_ns / 1000000);
	log_int(&l, "relay", d.relay != NULL);
	log_end(&l);
	rc = run(&d);
out:
	teardown(&d);
	log_close();
	return rc;
}
