/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The kernel backend: streams between endpoints of one node travel through
 * the dicom_mbox driver's mailboxes (DICOM_MBOX_DEV) instead of TCP.
 *
 * Each mailbox message is one frame of the wire format (header and payload,
 * dicom_wire.h), so the stream logic is the sockets' own: a HELLO opens
 * the stream and its HELLO_ACK rewinds the sender to what the receiver
 * delivered, DATA is accepted only in sequence (duplicates dropped), ACKs
 * free the retransmit window.  A mailbox keeps one sender's messages in
 * order and loses them only when it closes, so retransmission is rare:
 * a gap makes the receiver ask for a new HELLO, and a sender whose acks
 * stall sends one as a probe (it queues behind the data it sent, so its
 * HELLO_ACK tells exactly what was lost).  A DATA frame above the driver's
 * msg_max travels as fragments (DICOM_FLAG_MORE).
 *
 * The kernel stamps every message with the sender's pid: a frame whose src
 * does not match the stamp is dropped, so no process can speak in another's
 * stream.  A peer without a mailbox (ESRCH), or a pid that is not the
 * endpoint we meant (NOT_HERE), gets the socket path for good.
 *
 * Peers homed on another node are reached the same way when this node's
 * dicomd holds the driver's relay open (DICOM_RELAY_DEV) and told the
 * driver this node's address: the message is addressed to (peer's home,
 * pid), the driver queues it on the relay, and the two dicomds carry it to
 * the peer's mailbox (dicomd/relay.c), stamped with our home and pid.  A
 * record is at most DICOM_WIRE_MAX_RELAY bytes, so remote DATA fragments
 * at that size.  Relayed frames can be lost (a full mailbox, a daemon
 * restart); the probes above recover them.  A peer the relay cannot reach
 * (no mailbox, no relay there) is answered NOT_HERE by a dicomd, with the
 * errno in aux, and the stream moves to sockets.
 *
 * Only an endpoint running at home uses its mailbox (the pid the kernel
 * stamps is then its home pid), and a detach for migration closes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/dicom_mbox.h>

#include "ep_internal.h"
#include "msgbuf.h"
#include "sock.h"

#define KM_PROBE_NS 200000000LL /* no ack progress this long: probe */
#define KM_PROBE_RELAYED_NS 1000000000LL /* the same through two daemons and a network */
#define KM_HELLO_TRIES 25       /* unanswered HELLOs (5 s): use sockets */
#define KM_FULL_RETRY_NS 1000000LL
#define KM_RECV_BUDGET 256      /* messages per event */

struct dicom_kmbox {
	struct dicom_sock sock; /* first: the graveyard frees through it */
	uint32_t msg_max;
	uint32_t relay_max;     /* records through the relay; 0: no relay */
	uint8_t *rbuf;          /* one received message */
	uint8_t *tbuf;          /* one fragment being sent */
};

/* A whole outgoing message sits in memory as header then payload. */
_Static_assert(offsetof(struct dicom_outmsg, data) ==
		       offsetof(struct dicom_outmsg, hdr) + DICOM_WIRE_HDR_LEN,
	       "an outmsg's header and payload must be contiguous");

static int mode_from_env(int *required, char *err, size_t errlen)
{
	const char *v = getenv(DICOM_KERNEL_MBOX_ENV);
	*required = 0;
	if (!v || !*v || !strcmp(v, "auto"))
		return 1;
	if (!strcmp(v, "off") || !strcmp(v, "0"))
		return 0;
	if (!strcmp(v, "on") || !strcmp(v, "1")) {
		*required = 1;
		return 1;
	}
	snprintf(err, errlen, "%s=%s: use auto, on or off", DICOM_KERNEL_MBOX_ENV, v);
	return -1;
}

int dicom_kmbox_open(dicom_ep_t *ep, char *err, size_t errlen)
{
	int required;
	int use = mode_from_env(&required, err, errlen);
	if (use <= 0)
		return use < 0 ? DICOM_EINVAL : DICOM_OK;
	if (ep->self.home_node != ep->node || ep->self.home_pid != (uint32_t)getpid())
		return DICOM_OK; /* away from home: the kernel would stamp another pid */
	int fd = open(DICOM_MBOX_DEV, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	struct dicom_mbox_stats st;
	if (fd >= 0 && ioctl(fd, DICOM_MBOX_IOC_STATS, &st) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		if (!required)
			return DICOM_OK;
		snprintf(err, errlen,
			 "%s=on but %s cannot be used: %s (load the dicom_mbox module, or set %s=auto)",
			 DICOM_KERNEL_MBOX_ENV, DICOM_MBOX_DEV, strerror(errno),
			 DICOM_KERNEL_MBOX_ENV);
		return DICOM_EIO;
	}
	struct dicom_kmbox *km = calloc(1, sizeof(*km));
	if (km && st.msg_max > DICOM_WIRE_HDR_LEN) {
		km->msg_max = st.msg_max;
		km->rbuf = malloc(st.msg_max);
		km->tbuf = malloc(st.msg_max);
	}
	/* The relay carries our messages only if the kernel stamps them with
	 * the home our frames name. */
	if (km && st.relay_attached && st.home == htonl(ep->node))
		km->relay_max = st.msg_max < DICOM_WIRE_MAX_RELAY ? st.msg_max : DICOM_WIRE_MAX_RELAY;
	if (!km || !km->rbuf || !km->tbuf) {
		if (km) {
			free(km->rbuf);
			free(km->tbuf);
		}
		free(km);
		close(fd);
		snprintf(err, errlen, "kernel mailbox: out of memory (msg_max %u)", st.msg_max);
		return DICOM_ENOMEM;
	}
	km->sock.kind = SK_MBOX;
	km->sock.fd = fd;
	km->sock.owner = km;
	if (dicom_ep_watch(ep, &km->sock, EPOLLIN) < 0) {
		snprintf(err, errlen, "epoll on %s: %s", DICOM_MBOX_DEV, strerror(errno));
		close(fd);
		free(km->rbuf);
		free(km->tbuf);
		free(km);
		return DICOM_EIO;
	}
	ep->kmbox = km;
	return DICOM_OK;
}

/* Messages still queued are lost with the mailbox; their senders find out
 * (ESRCH, or a probe) and resend over sockets. */
void dicom_kmbox_close(dicom_ep_t *ep)
{
	struct dicom_kmbox *km = ep->kmbox;
	if (!km)
		return;
	ep->kmbox = NULL;
	free(km->rbuf);
	free(km->tbuf);
	km->rbuf = km->tbuf = NULL;
	for (struct out_peer *p = ep->outs; p; p = p->next)
		if (p->kstate != KM_NONE) {
			p->kstate = KM_NONE;
			dicom_outstream_disconnect(&p->st);
			p->state = OUT_IDLE;
		}
	struct dicom_addrmap_iter it = { 0 };
	struct in_peer *ip;
	while ((ip = dicom_addrmap_next(&ep->ins_by_src, &it, NULL)))
		ip->kcur = 0;
	dicom_ep_timer_at(ep, 0);
	dicom_ep_bury(ep, &km->sock); /* frees km once the pass is over */
}

void dicom_kmbox_in_free(struct in_peer *p)
{
	free(p->kpart);
	p->kpart = NULL;
	p->kpart_have = p->kpart_cap = 0;
}

/* 0 sent, else the errno of DICOM_MBOX_IOC_SEND. */
static int ksend(dicom_ep_t *ep, dicom_addr_t to, const void *buf, size_t len)
{
	struct dicom_mbox_send s = {
		.to = { .home = to.home_node == ep->node ? 0 : htonl(to.home_node),
			.pid = (int32_t)to.home_pid },
		.buf = (uint64_t)(uintptr_t)buf,
		.len = (uint32_t)len,
	};
	for (;;) {
		if (ioctl(ep->kmbox->sock.fd, DICOM_MBOX_IOC_SEND, &s) == 0)
			return 0;
		if (errno != EINTR)
			return errno;
	}
}

static int ksend_ctrl(dicom_ep_t *ep, const struct dicom_frame *f)
{
	uint8_t hdr[DICOM_WIRE_HDR_LEN];
	dicom_frame_encode_header(f, hdr);
	return ksend(ep, f->dst, hdr, sizeof(hdr));
}

/* The peer cannot be reached through its mailbox: the socket path takes
 * over, and its HELLO_ACK rewinds the stream to what was delivered. */
static void fall_back(dicom_ep_t *ep, struct out_peer *p)
{
	p->kernel_refused = KR_FOR_GOOD;
	p->kstate = KM_NONE;
	dicom_outstream_disconnect(&p->st);
	p->state = OUT_IDLE;
	dicom_ep_timer_at(ep, 0);
}

/* What a failed send means.  Returns -1 once the stream left the mailbox. */
static int send_failed(dicom_ep_t *ep, struct out_peer *p, int e)
{
	int opening = p->kstate == KM_HELLO;
	if (e == EAGAIN) {
		/* The peer's mailbox is full; it drains as the peer progresses. */
		p->kretry_at = dicom_now_ns() + KM_FULL_RETRY_NS;
		dicom_ep_timer_at(ep, p->kretry_at);
		return 0;
	}
	fall_back(ep, p);
	/* No mailbox yet: the peer may still be starting.  Its daemon knows;
	 * once it says the peer runs, the mailbox gets one more chance. */
	if (e == ESRCH && opening && !p->kpeer_active)
		p->kernel_refused = KR_UNTIL_ACTIVE;
	return -1;
}

static int64_t probe_ns(const dicom_ep_t *ep, const struct out_peer *p)
{
	return p->st.dst.home_node == ep->node ? KM_PROBE_NS : KM_PROBE_RELAYED_NS;
}

static int send_hello(dicom_ep_t *ep, struct out_peer *p)
{
	struct dicom_frame f = dicom_out_hello(ep, p);
	if (p->kstate == KM_HELLO && ++p->khellos > KM_HELLO_TRIES) {
		/* That pid has a mailbox but never answers: not an endpoint. */
		fall_back(ep, p);
		return -1;
	}
	/* Numbered, so that the answer to an older probe, still on its way
	 * when this one left, is not taken for this one's. */
	f.seq = ++p->kprobe_id;
	p->kprobe_seq = p->st.high_sent;
	p->kprobe_at = dicom_now_ns() + probe_ns(ep, p);
	dicom_ep_timer_at(ep, p->kprobe_at);
	int e = ksend_ctrl(ep, &f);
	return e ? send_failed(ep, p, e) : 0;
}

/* Sends from the stream's cursor until everything is written or the peer's
 * mailbox is full.  -1 once the stream left the mailbox. */
static int flush(dicom_ep_t *ep, struct out_peer *p)
{
	struct dicom_kmbox *km = ep->kmbox;
	int remote = p->st.dst.home_node != ep->node;
	size_t room = (remote ? km->relay_max : km->msg_max) - DICOM_WIRE_HDR_LEN;
	if (p->kretry_at)
		return 0; /* waiting for room in the peer's mailbox */
	while (p->st.cursor) {
		struct dicom_outmsg *m = p->st.cursor;
		size_t off = p->st.cursor_off;
		int e;
		if (off == 0 && m->len <= room) {
			e = ksend(ep, p->st.dst, m->hdr, DICOM_WIRE_HDR_LEN + m->len);
			if (e)
				return send_failed(ep, p, e);
			dicom_outstream_advance(&p->st, DICOM_WIRE_HDR_LEN + m->len);
			ep->stats.kernel_sent++;
			ep->stats.kernel_relayed_sent += remote;
			continue;
		}
		size_t done = off ? off - DICOM_WIRE_HDR_LEN : 0;
		size_t piece = m->len - done < room ? m->len - done : room;
		struct dicom_frame f;
		if (dicom_frame_decode_header(m->hdr, DICOM_WIRE_HDR_LEN, &f) != DICOM_DECODE_OK)
			return send_failed(ep, p, EPROTO);
		f.length = (uint32_t)piece;
		f.ack = done;
		f.flags = done + piece < m->len ? DICOM_FLAG_MORE : 0;
		dicom_frame_encode_header(&f, km->tbuf);
		memcpy(km->tbuf + DICOM_WIRE_HDR_LEN, m->data + done, piece);
		e = ksend(ep, p->st.dst, km->tbuf, DICOM_WIRE_HDR_LEN + piece);
		if (e)
			return send_failed(ep, p, e);
		dicom_outstream_advance(&p->st, off ? piece : DICOM_WIRE_HDR_LEN + piece);
		if (!(f.flags & DICOM_FLAG_MORE)) {
			ep->stats.kernel_sent++;
			ep->stats.kernel_relayed_sent += remote;
		}
	}
	if (!dicom_outstream_idle(&p->st) && !p->kprobe_at) {
		p->kacked = p->st.acked;
		p->kprobe_at = dicom_now_ns() + probe_ns(ep, p);
		dicom_ep_timer_at(ep, p->kprobe_at);
	}
	return 0;
}

/* Called for every kick of an idle stream: 1 when the mailbox carries it
 * (the socket path stays idle), 0 for the socket path. */
void dicom_kmbox_peer_active(dicom_ep_t *ep, struct out_peer *p)
{
	(void)ep;
	p->kpeer_active = 1;
	if (p->kernel_refused == KR_UNTIL_ACTIVE)
		p->kernel_refused = 0;
}

int dicom_kmbox_claims(dicom_ep_t *ep, struct out_peer *p, int64_t now)
{
	(void)now;
	if (!ep->kmbox || p->kernel_refused || p->st.dst.home_pid == 0 ||
	    p->st.dst.home_pid > INT32_MAX || p->st.dst.home_node == 0 ||
	    (p->st.dst.home_node != ep->node && !ep->kmbox->relay_max))
		return 0;
	if (p->kstate == KM_NONE) {
		p->kstate = KM_HELLO;
		p->khellos = 0;
		return send_hello(ep, p) == 0;
	}
	if (p->kstate == KM_ON)
		return flush(ep, p) == 0;
	return 1; /* HELLO outstanding */
}

int dicom_kmbox_send_ack(dicom_ep_t *ep, struct in_peer *p)
{
	if (!ep->kmbox)
		return -1;
	struct dicom_frame f = { .type = DICOM_FT_ACK, .ack = p->st.delivered,
				 .src = ep->self, .dst = p->st.peer };
	return ksend_ctrl(ep, &f) ? -1 : 0;
}

/* A gap or a lost message: ask the sender for a HELLO, once until it comes. */
static void ask_resync(dicom_ep_t *ep, struct in_peer *p, dicom_addr_t src)
{
	if (p && p->kresync_sent)
		return;
	struct dicom_frame f = { .type = DICOM_FT_ERROR, .aux = (uint32_t)-DICOM_EPROTO,
				 .src = ep->self, .dst = src };
	if (ksend_ctrl(ep, &f) == 0 && p)
		p->kresync_sent = 1;
}

static void on_hello(dicom_ep_t *ep, const struct dicom_frame *f)
{
	struct dicom_frame r = { .src = ep->self, .dst = f->src };
	if (!dicom_addr_eq(f->dst, ep->self)) {
		r.type = DICOM_FT_NOT_HERE; /* the pid is ours, the address is not */
		ksend_ctrl(ep, &r);
		return;
	}
	struct in_peer *p = dicom_in_peer_get(ep, f->src);
	if (!p)
		return; /* the sender probes again */
	dicom_instream_set_sender_window(&p->st, (size_t)f->aux * 1024);
	p->cur = NULL;
	p->kcur = 1;
	p->kresync_sent = 0;
	r.type = DICOM_FT_HELLO_ACK;
	r.ack = p->st.delivered;
	r.seq = f->seq;
	if (ksend_ctrl(ep, &r) == 0)
		dicom_instream_ack_done(&p->st, dicom_now_ns());
}

/* Adds a fragment; 1 when data/len now hold the whole message, 0 when more
 * must come, -1 when the fragments do not fit together. */
static int reassemble(struct in_peer *p, struct dicom_frame *f, const uint8_t **data)
{
	if (f->ack == 0) {
		p->kpart_have = 0;
		p->kpart_seq = f->seq;
	} else if (f->seq != p->kpart_seq || f->ack != p->kpart_have) {
		dicom_kmbox_in_free(p);
		return -1;
	}
	size_t need = p->kpart_have + f->length;
	if (need > DICOM_MAX_MSG) {
		dicom_kmbox_in_free(p);
		return -1;
	}
	if (need > p->kpart_cap) {
		size_t cap = p->kpart_cap ? p->kpart_cap : (size_t)f->length;
		while (cap < need)
			cap *= 2;
		uint8_t *b = realloc(p->kpart, cap);
		if (!b) {
			dicom_kmbox_in_free(p);
			return -1;
		}
		p->kpart = b;
		p->kpart_cap = cap;
	}
	memcpy(p->kpart + p->kpart_have, *data, f->length);
	p->kpart_have = need;
	if (f->flags & DICOM_FLAG_MORE)
		return 0;
	f->length = (uint32_t)p->kpart_have;
	f->ack = 0;
	f->flags = 0;
	*data = p->kpart;
	p->kpart_have = 0;
	return 1;
}

static void on_data(dicom_ep_t *ep, struct dicom_frame *f, const uint8_t *data, int relayed)
{
	struct in_peer *p = dicom_addrmap_get(&ep->ins_by_src, f->src);
	if (!p) {
		ask_resync(ep, NULL, f->src); /* DATA before any HELLO */
		return;
	}
	if (f->ack || (f->flags & DICOM_FLAG_MORE)) {
		int r = reassemble(p, f, &data);
		if (r == 0)
			return;
		if (r < 0) {
			if (p->kcur)
				ask_resync(ep, p, f->src);
			return;
		}
	}
	/* A stream that moved to sockets may still find older DATA here:
	 * in sequence it counts, otherwise the socket brings it again. */
	int d = dicom_in_deliver(ep, p, f, data, NULL);
	if (d > 0) {
		ep->stats.kernel_delivered++;
		ep->stats.kernel_relayed_delivered += relayed != 0;
	}
	else if (d < 0 && p->kcur)
		ask_resync(ep, p, f->src);
	if (p->kpart_cap > (4u << 20) && !p->kpart_have)
		dicom_kmbox_in_free(p); /* do not keep a huge buffer idle */
}

static void on_reply(dicom_ep_t *ep, const struct dicom_frame *f)
{
	struct out_peer *p = dicom_addrmap_get(&ep->outs_by_dst, f->src);
	if (!p || p->kstate == KM_NONE)
		return;
	switch (f->type) {
	case DICOM_FT_HELLO_ACK:
		if (p->kstate == KM_ON && f->seq != p->kprobe_id) {
			/* An older probe's answer: an ack, nothing more. */
			if (dicom_outstream_ack(&p->st, f->ack) < 0)
				fall_back(ep, p);
			return;
		}
		if (p->kstate == KM_HELLO || f->ack < p->kprobe_seq) {
			/* Everything sent before the HELLO was read; what is
			 * beyond the ack was lost: send it again. */
			if (dicom_outstream_rewind(&p->st, f->ack) < 0) {
				fall_back(ep, p);
				return;
			}
			p->kstate = KM_ON;
		} else if (dicom_outstream_ack(&p->st, f->ack) < 0) {
			fall_back(ep, p);
			return;
		}
		p->kprobe_seq = 0;
		p->kprobe_at = 0;
		flush(ep, p);
		return;
	case DICOM_FT_ACK:
		if (p->kstate == KM_ON && dicom_outstream_ack(&p->st, f->ack) < 0)
			fall_back(ep, p);
		return;
	case DICOM_FT_ERROR:
		send_hello(ep, p);
		return;
	default: /* NOT_HERE; from a dicomd, aux says why */
		if (f->aux == ESRCH)
			send_failed(ep, p, ESRCH);
		else
			fall_back(ep, p);
		return;
	}
}

static void on_message(dicom_ep_t *ep, const struct dicom_mbox_info *info, const uint8_t *buf)
{
	struct dicom_frame f;
	if (info->len < DICOM_WIRE_HDR_LEN ||
	    dicom_frame_decode_header(buf, info->len, &f) != DICOM_DECODE_OK ||
	    DICOM_WIRE_HDR_LEN + (size_t)f.length != info->len)
		return; /* not ours to understand */
	/* The kernel vouches for the pid of a sender at home here, a dicomd
	 * for the home and pid of a relayed one. */
	int relayed = (info->flags & DICOM_MBOX_INFO_RELAYED) != 0;
	if (f.src.home_pid != (uint32_t)info->from.pid ||
	    f.src.home_node != (relayed ? ntohl(info->from.home) : ep->node))
		return;
	if (f.type != DICOM_FT_HELLO && !dicom_addr_eq(f.dst, ep->self))
		return;
	const uint8_t *payload = buf + DICOM_WIRE_HDR_LEN;
	switch (f.type) {
	case DICOM_FT_HELLO:
		on_hello(ep, &f);
		break;
	case DICOM_FT_DATA:
		on_data(ep, &f, payload, relayed);
		break;
	case DICOM_FT_HELLO_ACK:
	case DICOM_FT_ACK:
	case DICOM_FT_NOT_HERE:
	case DICOM_FT_ERROR:
		on_reply(ep, &f);
		break;
	default:
		break;
	}
}

void dicom_kmbox_event(dicom_ep_t *ep, int may_read)
{
	for (int i = 0; may_read && i < KM_RECV_BUDGET && ep->kmbox; i++) {
		struct dicom_kmbox *km = ep->kmbox;
		struct dicom_mbox_recv r = { .buf = (uint64_t)(uintptr_t)km->rbuf,
					     .buf_len = km->msg_max };
		if (ioctl(km->sock.fd, DICOM_MBOX_IOC_RECV, &r) < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN: empty */
		}
		on_message(ep, &r.info, km->rbuf);
	}
}

void dicom_kmbox_timers(dicom_ep_t *ep, int64_t now)
{
	if (!ep->kmbox)
		return;
	for (struct out_peer *p = ep->outs; p && ep->kmbox; p = p->next) {
		if (p->kstate == KM_NONE)
			continue;
		if (p->kretry_at) {
			if (now < p->kretry_at) {
				dicom_ep_timer_at(ep, p->kretry_at);
				continue;
			}
			p->kretry_at = 0;
			if (p->kstate == KM_ON && flush(ep, p) < 0)
				continue;
		}
		if (p->kstate == KM_ON) {
			if (dicom_outstream_idle(&p->st)) {
				p->kprobe_at = 0;
				continue;
			}
			if (p->st.acked != p->kacked || !p->kprobe_at) {
				p->kacked = p->st.acked; /* acks flow: restart the clock */
				p->kprobe_at = now + probe_ns(ep, p);
			}
		}
		if (p->kprobe_at && now >= p->kprobe_at && send_hello(ep, p) < 0)
			continue;
		if (p->kprobe_at)
			dicom_ep_timer_at(ep, p->kprobe_at);
	}
}
