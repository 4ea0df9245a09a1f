/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The kernel relay: with the dicom_mbox driver loaded, dicomd holds
 * /dev/dicom/relay open.  Messages local processes send to mailboxes homed
 * elsewhere are read from it and carried to the destination's home dicomd
 * as RELAY frames; RELAY frames from other dicomds are written into it and
 * land in local mailboxes, stamped with the sender the frame names.
 *
 * We vouch for what we carry: a record read from the device is sent only
 * if the kernel stamped it with this node's home, and a frame from another
 * dicomd is delivered only if its sender is homed at the address the
 * connection comes from.
 *
 * Nothing is dropped for lack of room on our side: a congested connection
 * to a peer stops us reading the device (local senders then see a full
 * relay and retry), and a full destination mailbox stops us reading that
 * peer's connection (TCP then pushes back).  What cannot be delivered at
 * all is answered with NOT_HERE, as the destination would, so the sender's
 * libdicom moves that stream to sockets at once instead of timing out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/dicom_mbox.h>

#include "dicomd.h"
#include "jbuf.h"
#include "relay.h"
#include "sock.h"

#define RELAY_REC_MAX (sizeof(struct dicom_relay_hdr) + DICOM_WIRE_MAX_RELAY)
#define RELAY_READ_BUDGET 64            /* records per event, as for sockets */
#define RELAY_OUT_HIGH (1u << 20)       /* a peer connection this full holds us */
#define RELAY_OUT_LOW (256u << 10)      /* ... until it drains to this */
#define RELAY_RETRY_NS 1000000LL        /* a full mailbox is tried again after */
#define RELAY_HOLD_MAX_NS 2000000000LL  /* a mailbox full this long loses the record */

struct relay {
	int fd;
	int reading; /* EPOLLIN wanted on fd */
	uint8_t rec[RELAY_REC_MAX];
	/* Outbound: a record waiting for room on its peer connection. */
	size_t out_held_len;
	uint64_t out_held_conn;
	/* Inbound records waiting for room in their mailbox, one per paused
	 * connection (struct dconn's relay_held). */
	unsigned in_held;
	struct relay_counters n;
};

static void log_relay(enum log_level level, const char *event, const char *key,
		      const char *val, int err)
{
	struct logline l;
	log_begin(&l, level, event);
	if (key)
		log_str(&l, key, val);
	if (err)
		log_str(&l, "error", strerror(err));
	log_end(&l);
}

int relay_open(struct dicomd *d, enum relay_mode mode)
{
	if (mode == RELAY_OFF)
		return 0;
	int fd = open(DICOM_RELAY_DEV, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (mode == RELAY_AUTO && e == ENOENT)
			return 0; /* no driver: endpoints use sockets */
		log_relay(mode == RELAY_ON ? LOG_ERROR : LOG_WARN, "relay_unavailable", "device",
			  DICOM_RELAY_DEV, e);
		return mode == RELAY_ON ? -1 : 0;
	}
	uint32_t home = htonl(d->node);
	struct relay *r = calloc(1, sizeof(*r));
	if (!r || ioctl(fd, DICOM_RELAY_IOC_SET_HOME, &home) < 0) {
		int e = r ? errno : ENOMEM;
		log_relay(LOG_ERROR, "relay_unavailable", "device", DICOM_RELAY_DEV, e);
		free(r);
		close(fd);
		return mode == RELAY_ON ? -1 : 0;
	}
	r->fd = fd;
	r->reading = 1;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = RELAY_EPOLL_TAG };
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_relay(LOG_ERROR, "relay_unavailable", "device", DICOM_RELAY_DEV, errno);
		free(r);
		close(fd);
		return -1;
	}
	d->relay = r;
	log_relay(LOG_INFO, "relay_open", "device", DICOM_RELAY_DEV, 0);
	return 0;
}

void relay_close(struct dicomd *d)
{
	if (!d->relay)
		return;
	close(d->relay->fd);
	free(d->relay);
	d->relay = NULL;
}

static void set_reading(struct dicomd *d, int on)
{
	struct relay *r = d->relay;
	if (r->reading == on)
		return;
	struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.u64 = RELAY_EPOLL_TAG };
	epoll_ctl(d->epfd, EPOLL_CTL_MOD, r->fd, &ev);
	r->reading = on;
}

/* Writes one inbound record into the device: 0, or the errno. */
static int deliver(struct relay *r, const uint8_t *rec, size_t len)
{
	for (;;) {
		ssize_t w = write(r->fd, rec, len);
		if (w == (ssize_t)len)
			return 0;
		if (w >= 0)
			return EIO;
		if (errno != EINTR)
			return errno;
	}
}

static void fill_hdr(struct dicom_relay_hdr *h, dicom_addr_t from, dicom_addr_t to, uint32_t uid,
		     uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->len = len;
	h->from.home = htonl(from.home_node);
	h->from.pid = (int32_t)from.home_pid;
	h->to.home = htonl(to.home_node);
	h->to.pid = (int32_t)to.home_pid;
	h->uid = uid;
}

/*
 * A message from @from to @to cannot be delivered (@err), here or (without
 * a relay, d->relay NULL) anywhere on this node: if it opened or
 * carried a stream, tell the sender as the destination would, with NOT_HERE
 * (aux = err), so its endpoint moves the stream to sockets.  Replies are
 * not answered, so two nodes never bounce refusals.
 */
static void refuse_record(struct dicomd *d, dicom_addr_t from, dicom_addr_t to, const uint8_t *msg,
		   size_t len, int err)
{
	struct dicom_frame f;
	static uint64_t refusals; /* counted even without a relay */
	if (d->relay)
		d->relay->n.refused++;
	/* The first refusals are logged, then one in a thousand: a peer that
	 * keeps probing a mailbox that is gone must not flood the log. */
	if (refusals++ % 1000 < 10) {
		struct logline l;
		log_begin(&l, LOG_INFO, "relay_refused");
		log_addr(&l, "from", from);
		log_addr(&l, "to", to);
		log_str(&l, "error", strerror(err));
		log_int(&l, "count", (long long)refusals);
		log_end(&l);
	}
	if (dicom_frame_decode_header(msg, len, &f) != DICOM_DECODE_OK ||
	    (f.type != DICOM_FT_HELLO && f.type != DICOM_FT_DATA) ||
	    !dicom_addr_eq(f.src, from) || !dicom_addr_eq(f.dst, to))
		return;
	struct dicom_frame nh = { .type = DICOM_FT_NOT_HERE, .aux = (uint32_t)err,
				  .src = to, .dst = from };
	uint8_t hdr[DICOM_WIRE_HDR_LEN];
	dicom_frame_encode_header(&nh, hdr);
	if (from.home_node == d->node) {
		uint8_t rec[sizeof(struct dicom_relay_hdr) + DICOM_WIRE_HDR_LEN];
		fill_hdr((struct dicom_relay_hdr *)rec, to, from, 0, sizeof(hdr));
		memcpy(rec + sizeof(struct dicom_relay_hdr), hdr, sizeof(hdr));
		if (d->relay)
			deliver(d->relay, rec, sizeof(rec)); /* its probe covers a loss */
		return;
	}
	struct dconn *c = peer_conn(d, from.home_node);
	if (!c)
		return;
	struct dicom_frame out = { .type = DICOM_FT_RELAY, .length = sizeof(hdr), .src = to,
				   .dst = from };
	dconn_send(d, c, &out, hdr);
}

/* Sends the outbound record in r->rec; 1 when it must wait for room. */
static int forward(struct dicomd *d, size_t len)
{
	struct relay *r = d->relay;
	const struct dicom_relay_hdr *h = (const struct dicom_relay_hdr *)r->rec;
	const uint8_t *msg = r->rec + sizeof(*h);
	dicom_addr_t from = { ntohl(h->from.home), (uint32_t)h->from.pid };
	dicom_addr_t to = { ntohl(h->to.home), (uint32_t)h->to.pid };
	if (len != sizeof(*h) + h->len || from.home_node != d->node) {
		r->n.dropped++; /* not stamped by this node: not ours to vouch for */
		return 0;
	}
	struct dconn *c = peer_conn(d, to.home_node);
	if (!c) {
		refuse_record(d, from, to, msg, h->len, EHOSTUNREACH);
		return 0;
	}
	if (c->out_len > RELAY_OUT_HIGH) {
		r->out_held_len = len;
		r->out_held_conn = c->id;
		r->n.paused_out++;
		return 1;
	}
	struct dicom_frame f = { .type = DICOM_FT_RELAY, .length = h->len, .aux = h->uid,
				 .src = from, .dst = to };
	dconn_send(d, c, &f, msg);
	r->n.out_records++;
	r->n.out_bytes += h->len;
	return 0;
}

void relay_readable(struct dicomd *d)
{
	struct relay *r = d->relay;
	for (int i = 0; r && i < RELAY_READ_BUDGET && !r->out_held_len; i++) {
		ssize_t n = read(r->fd, r->rec, sizeof(r->rec));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EMSGSIZE) {
				r->n.too_big++; /* the driver dropped it; the sender's probe resends */
				continue;
			}
			if (errno != EAGAIN)
				log_relay(LOG_WARN, "relay_read_failed", NULL, NULL, errno);
			return;
		}
		if ((size_t)n < sizeof(struct dicom_relay_hdr))
			return;
		if (forward(d, (size_t)n))
			set_reading(d, 0);
	}
}

static dicom_addr_t hdr_from(const struct dicom_relay_hdr *h)
{
	return (dicom_addr_t){ ntohl(h->from.home), (uint32_t)h->from.pid };
}

static dicom_addr_t hdr_to(const struct dicom_relay_hdr *h)
{
	return (dicom_addr_t){ ntohl(h->to.home), (uint32_t)h->to.pid };
}

/* The record c holds leaves, delivered (e == 0) or not; c reads again. */
static void release(struct dicomd *d, struct dconn *c, int e)
{
	struct relay *r = d->relay;
	const struct dicom_relay_hdr *h = (const struct dicom_relay_hdr *)c->relay_held;
	if (e == EAGAIN)
		r->n.dropped++; /* a receiver that reads nothing; its sender probes */
	else if (e)
		refuse_record(d, hdr_from(h), hdr_to(h), c->relay_held + sizeof(*h), h->len, e);
	else {
		r->n.in_records++;
		r->n.in_bytes += h->len;
	}
	free(c->relay_held);
	c->relay_held = NULL;
	r->in_held--;
	if (!c->dead)
		dconn_pause_input(d, c, 0);
}

/* Tries c's held record; 1 while it stays held. */
static int retry_inbound(struct dicomd *d, struct dconn *c, int64_t now)
{
	const struct dicom_relay_hdr *h = (const struct dicom_relay_hdr *)c->relay_held;
	int e = deliver(d->relay, c->relay_held, sizeof(*h) + h->len);
	if (e == EAGAIN && now - c->relay_held_since < RELAY_HOLD_MAX_NS) {
		c->relay_retry_at = now + RELAY_RETRY_NS;
		return 1;
	}
	release(d, c, e);
	return 0;
}

void relay_frame(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct relay *r = d->relay;
	if (f->src.home_node != c->remote_node || f->dst.home_node != d->node ||
	    !f->src.home_pid || !f->dst.home_pid || f->src.home_pid > INT32_MAX ||
	    f->dst.home_pid > INT32_MAX || !f->length) {
		struct logline l;
		log_begin(&l, LOG_WARN, "relay_refused");
		log_str(&l, "peer", c->peer);
		log_addr(&l, "from", f->src);
		log_addr(&l, "to", f->dst);
		log_str(&l, "error", f->src.home_node != c->remote_node
					     ? "sender is not homed where the connection comes from"
					     : "not a process homed at this node");
		log_end(&l);
		if (r)
			r->n.dropped++;
		return;
	}
	if (!r) {
		refuse_record(d, f->src, f->dst, f->payload, f->length, EHOSTUNREACH);
		return;
	}
	size_t len = sizeof(struct dicom_relay_hdr) + f->length;
	c->relay_held = malloc(len);
	if (!c->relay_held) {
		r->n.dropped++;
		return;
	}
	fill_hdr((struct dicom_relay_hdr *)c->relay_held, f->src, f->dst, f->aux, f->length);
	memcpy(c->relay_held + sizeof(struct dicom_relay_hdr), f->payload, f->length);
	c->relay_held_since = dicom_now_ns();
	r->in_held++;
	if (retry_inbound(d, c, c->relay_held_since)) {
		r->n.paused_in++;
		dconn_pause_input(d, c, 1); /* in order: nothing behind it goes first */
	}
}

void relay_conn_closed(struct dicomd *d, struct dconn *c)
{
	if (d->relay && c->relay_held)
		release(d, c, deliver(d->relay, c->relay_held,
				      sizeof(struct dicom_relay_hdr) +
					      ((const struct dicom_relay_hdr *)c->relay_held)->len));
}

int64_t relay_tick(struct dicomd *d, int64_t now)
{
	struct relay *r = d->relay;
	if (!r)
		return INT64_MAX;
	int64_t next = INT64_MAX;
	for (struct dconn *c = d->conns; r->in_held && c; c = c->next) {
		if (!c->relay_held)
			continue;
		if (now >= c->relay_retry_at && !retry_inbound(d, c, now))
			continue;
		if (c->relay_retry_at < next)
			next = c->relay_retry_at;
	}
	if (r->out_held_len) {
		struct dconn *c = dconn_by_id(d, r->out_held_conn);
		if (!c) {
			r->n.dropped++; /* the peer went away; the sender's probe tells */
			r->out_held_len = 0;
		} else if (c->out_len <= RELAY_OUT_LOW && !forward(d, r->out_held_len)) {
			r->out_held_len = 0;
		}
		if (!r->out_held_len) {
			set_reading(d, 1);
			relay_readable(d);
		}
	}
	return next;
}

void relay_status(const struct dicomd *d, struct jbuf *j)
{
	const struct relay *r = d->relay;
	if (!r) {
		jprintf(j, "\"relay\":{\"attached\":false},");
		return;
	}
	const struct relay_counters *n = &r->n;
	jprintf(j,
		"\"relay\":{\"attached\":true,\"out_records\":%llu,\"out_bytes\":%llu,"
		"\"in_records\":%llu,\"in_bytes\":%llu,\"refused\":%llu,\"dropped\":%llu,"
		"\"too_big\":%llu,\"paused_out\":%llu,\"paused_in\":%llu,\"held_out\":%s,"
		"\"held_in\":%u},",
		(unsigned long long)n->out_records, (unsigned long long)n->out_bytes,
		(unsigned long long)n->in_records, (unsigned long long)n->in_bytes,
		(unsigned long long)n->refused, (unsigned long long)n->dropped,
		(unsigned long long)n->too_big, (unsigned long long)n->paused_out,
		(unsigned long long)n->paused_in, r->out_held_len ? "true" : "false",
		r->in_held);
}
