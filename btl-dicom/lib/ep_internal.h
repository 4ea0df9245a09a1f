/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The endpoint's private state, shared by ep.c (API and progress pass),
 * conn_out.c / conn_in.c (data path), daemon_client.c and progress_thread.c.
 * Every field is protected by ep->lock, a recursive mutex because the
 * delivery callback runs under it and may call dicom_send.
 */
#ifndef DICOM_EP_INTERNAL_H
#define DICOM_EP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "addrmap.h"
#include "dicom.h"
#include "dicom_wire.h"
#include "stream.h"

#define DICOM_DEFAULT_WINDOW (64u << 20)
#define DICOM_IN_BUF (256u << 10)       /* per accepted connection */
#define DICOM_BIG_FRAME (64u << 10)     /* payloads above this are read in place */
#define DICOM_HELD_MAX (64u << 20)      /* progress-thread deliveries waiting for the app */
#define DICOM_ACK_DELAY_NS 1000000      /* 1 ms */
#define DICOM_BACKOFF_MAX_NS 100000000  /* 100 ms */
#define DICOM_RESOLVE_TIMEOUT_NS 3000000000LL
#define DICOM_DAEMON_BACKOFF_MAX_NS 1000000000LL
#define DICOM_THREAD_TICK_MS 10
#define DICOM_APP_IDLE_NS 20000000      /* thread steps in after 20 ms without the app */
#define DICOM_MAX_IOV 64
#define DICOM_DL_IN_CAP 8192
#define DICOM_DL_OUT_CAP (1u << 20)

enum dicom_sock_kind { SK_LISTEN, SK_DAEMON, SK_CONN, SK_WAKE, SK_MBOX };

/* One per open socket instance.  epoll events carry a pointer to it; after
 * close it is marked dead and freed only once the progress pass ends, so a
 * stale event never touches freed memory or a recycled fd number. */
struct dicom_sock {
	enum dicom_sock_kind kind;
	int fd;
	int dead;
	uint32_t events;
	void *owner;
	struct dicom_sock *grave_next;
};

enum out_state {
	OUT_IDLE,       /* no connection; connect lazily when data waits */
	OUT_RESOLVING,  /* RESOLVE outstanding (or waiting for the daemon link) */
	OUT_WAIT_RETRY, /* backing off after a failure */
	OUT_CONNECTING, /* nonblocking connect in flight */
	OUT_HELLO,      /* HELLO sent, waiting for HELLO_ACK */
	OUT_ESTABLISHED,
};

enum kernel_refusal {
	KR_NONE,
	KR_UNTIL_ACTIVE, /* no mailbox while the peer may still be starting */
	KR_FOR_GOOD,     /* no mailbox there, or not dst: sockets from now on */
};

/* The mailbox side of a stream (kbackend.c); while it is not KM_NONE the
 * socket side stays OUT_IDLE. */
enum kmbox_state {
	KM_NONE,  /* sockets, or not decided yet */
	KM_HELLO, /* HELLO sent through the mailbox, waiting for HELLO_ACK */
	KM_ON,    /* DATA goes through the mailbox */
};

struct conn;

/* Sender side of the stream self -> dst and the connection it uses. */
struct out_peer {
	struct dicom_outstream st;
	enum out_state state;
	struct conn *conn;
	uint8_t hello[DICOM_WIRE_HDR_LEN];
	size_t hello_off;
	int have_loc;
	uint32_t node;
	uint16_t port;
	int bypass;          /* next resolve must skip the daemons' caches */
	int resolve_sent;    /* RESOLVE written on the current daemon link */
	int ever_connected;
	uint64_t bytes_sent; /* since open; dicomd gossips it per rank pair */
	int64_t retry_at;
	int64_t backoff;
	enum kmbox_state kstate;
	int kernel_refused;  /* enum kernel_refusal */
	int kpeer_active;    /* the daemons reported the peer registered */
	int khellos;         /* HELLOs sent without an answer */
	uint64_t kprobe_seq; /* high_sent when the last probe HELLO went out */
	uint64_t kprobe_id;  /* that HELLO's seq, echoed by its HELLO_ACK */
	uint64_t kacked;     /* st.acked when the probe clock last restarted */
	int64_t kprobe_at;   /* probe when no ack arrives by then */
	int64_t kretry_at;   /* the peer's mailbox was full: send again then */
	struct out_peer *next;
};

/* Receiver side of the stream src -> self. */
struct in_peer {
	struct dicom_instream st;
	struct conn *cur; /* the connection acks go out on */
	int kcur;         /* ... or, without one, the mailbox (kbackend.c) */
	int kresync_sent; /* asked the sender for a HELLO after a gap */
	uint8_t *kpart;   /* a fragmented DATA being reassembled */
	size_t kpart_have, kpart_cap;
	uint64_t kpart_seq;
	int on_ack_list;
	struct in_peer *ack_next;
};

/* A message delivered while no application callback was running. */
struct held_msg {
	struct held_msg *next;
	dicom_addr_t src;
	uint8_t tag;
	size_t len;
	uint8_t data[];
};

/*
 * A data connection to one peer endpoint.  It carries up to two streams:
 * rx (peer -> self, opened by the peer's HELLO) and tx (self -> peer, our
 * HELLO).  Whoever connects first opens it; the other side sends its own
 * stream back over the same socket, so acks ride on data and the kernel
 * sees request/response traffic, as with one socket per peer in btl/tcp.
 * Frames never interleave: a control frame (HELLO_ACK, ACK, NOT_HERE)
 * waits while a tx frame is half written, and the reverse.
 * (sock must stay the first member: the graveyard frees the struct
 * through it.)
 */
struct conn {
	struct dicom_sock sock;
	int connecting;       /* our nonblocking connect is in flight */
	struct in_peer *rx;
	struct out_peer *tx;
	uint8_t *buf;
	size_t start, end;
	struct held_msg *big; /* large DATA payload being read in place */
	int after_big;        /* read the next header alone: likely big again */
	size_t big_have;
	struct dicom_frame big_hdr;
	uint8_t wbuf[DICOM_WIRE_HDR_LEN * 4]; /* queued control frames */
	size_t wlen, woff;
	int close_after_write;
	struct conn *prev, *next;
};

enum daemon_link_state { DL_DOWN, DL_REGISTERING, DL_READY };

struct daemon_link {
	struct dicom_sock *sock;
	enum daemon_link_state state;
	uint8_t in[DICOM_DL_IN_CAP];
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_cap;
	int64_t retry_at;
	int64_t backoff;
	uint64_t next_req;
};

struct dicom_ep {
	pthread_mutex_t lock;
	dicom_addr_t self;
	uint32_t node; /* current node, may differ from self.home_node after migration */
	uint16_t port;
	char daemon_name[108];
	size_t window;
	int epfd;
	struct dicom_sock wake;
	struct dicom_sock *listen;
	struct daemon_link dl;
	struct dicom_kmbox *kmbox; /* NULL: no kernel mailbox */
	struct dicom_addrmap outs_by_dst;
	struct dicom_addrmap ins_by_src;
	struct out_peer *outs;
	struct conn *conns;
	struct in_peer *ack_list;
	struct held_msg *held_head, *held_tail;
	size_t held_bytes;
	struct dicom_sock *graveyard;
	int depth;          /* progress passes running (nested via the callback) */
	int break_requested;
	int detached;
	int64_t detached_until;
	pid_t detach_ppid;        /* a different parent means CRIU restored us */
	int64_t reattached_ns, first_data_after_ns;
	struct dicom_migration_hooks hooks; /* the home stub's shim, if preloaded */
	int64_t next_timer;
	int64_t last_app_progress;
	int deliver_unlocked;
	dicom_recv_fn cb;   /* set only while the application's progress runs */
	void *cb_ctx;
	uint64_t cb_calls;
	struct dicom_ep_stats stats;
	int64_t traffic_next;          /* next TRAFFIC report to dicomd */
	uint32_t rank;                 /* MPI rank, DICOM_RANK_UNKNOWN if not a rank */
	char job[DICOM_JOB_MAX + 1];   /* job label */
	pthread_t thread;
	int thread_running;
	int stop;           /* atomic */
};

/* migrate.c */
void dicom_migrate_find_hooks(dicom_ep_t *ep);
void dicom_migrate_detach(dicom_ep_t *ep, uint32_t hold_ms, int64_t now);
int dicom_migrate_should_reattach(dicom_ep_t *ep, int64_t now);
void dicom_migrate_reattached(dicom_ep_t *ep, int64_t now);
int dicom_migrate_format(dicom_ep_t *ep, char *out, size_t len);

/* ep.c */
int dicom_ep_watch(dicom_ep_t *ep, struct dicom_sock *s, uint32_t events);
void dicom_ep_set_events(dicom_ep_t *ep, struct dicom_sock *s, uint32_t events);
void dicom_ep_bury(dicom_ep_t *ep, struct dicom_sock *s);
void dicom_ep_timer_at(dicom_ep_t *ep, int64_t when);
void dicom_ep_close_all_sockets(dicom_ep_t *ep);
int dicom_ep_pass(dicom_ep_t *ep, int app);
int dicom_ep_open_listener(dicom_ep_t *ep);

/* conn_out.c */
struct out_peer *dicom_out_get(dicom_ep_t *ep, dicom_addr_t dst);
void dicom_out_kick(dicom_ep_t *ep, struct out_peer *p, int64_t now);
void dicom_out_flush(dicom_ep_t *ep, struct out_peer *p);
struct dicom_frame dicom_out_hello(dicom_ep_t *ep, struct out_peer *p);
void dicom_out_connected(dicom_ep_t *ep, struct out_peer *p);
void dicom_out_conn_lost(dicom_ep_t *ep, struct out_peer *p, int failed);
int dicom_out_on_frame(dicom_ep_t *ep, struct out_peer *p, const struct dicom_frame *f);
void dicom_out_resolved(dicom_ep_t *ep, struct out_peer *p,
			const struct dicom_wire_loc *loc, int64_t now);
void dicom_out_close(dicom_ep_t *ep, struct out_peer *p);
void dicom_out_timers(dicom_ep_t *ep, int64_t now);
void dicom_out_retry_later(dicom_ep_t *ep, struct out_peer *p, int64_t now);

/* conn.c */
void dicom_conn_accept(dicom_ep_t *ep);
struct conn *dicom_conn_connect(dicom_ep_t *ep, uint32_t node, uint16_t port);
void dicom_conn_event(dicom_ep_t *ep, struct conn *c, uint32_t events, int may_read);
void dicom_conn_flush(dicom_ep_t *ep, struct conn *c);
int dicom_conn_queue_ctrl(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f);
void dicom_conn_close(dicom_ep_t *ep, struct conn *c);

/* conn_in.c */
struct in_peer *dicom_in_peer_get(dicom_ep_t *ep, dicom_addr_t src);
int dicom_in_deliver(dicom_ep_t *ep, struct in_peer *p, const struct dicom_frame *f,
		     const uint8_t *data, struct held_msg *big);
int dicom_in_on_hello(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f);
int dicom_in_on_data(dicom_ep_t *ep, struct conn *c, const struct dicom_frame *f,
		     const uint8_t *data, struct held_msg *big);
void dicom_in_send_acks(dicom_ep_t *ep, int64_t now);
void dicom_held_free_all(dicom_ep_t *ep);
struct held_msg *dicom_held_pop(dicom_ep_t *ep);

/* daemon_client.c */
int dicom_dl_register_blocking(dicom_ep_t *ep, char *err, size_t errlen);
void dicom_dl_maintain(dicom_ep_t *ep, int64_t now);
void dicom_dl_event(dicom_ep_t *ep, uint32_t events);
void dicom_dl_close(dicom_ep_t *ep);
void dicom_dl_request_resolve(dicom_ep_t *ep, struct out_peer *p);
void dicom_dl_deregister(dicom_ep_t *ep);
int dicom_dl_queue(dicom_ep_t *ep, const struct dicom_frame *f, const void *payload);
void dicom_dl_flush(dicom_ep_t *ep);

/* kbackend.c: streams between endpoints of one node through /dev/dicom/mbox */
int dicom_kmbox_open(dicom_ep_t *ep, char *err, size_t errlen);
void dicom_kmbox_close(dicom_ep_t *ep);
void dicom_kmbox_peer_active(dicom_ep_t *ep, struct out_peer *p);
int dicom_kmbox_claims(dicom_ep_t *ep, struct out_peer *p, int64_t now);
void dicom_kmbox_event(dicom_ep_t *ep, int may_read);
int dicom_kmbox_send_ack(dicom_ep_t *ep, struct in_peer *p);
void dicom_kmbox_timers(dicom_ep_t *ep, int64_t now);
void dicom_kmbox_in_free(struct in_peer *p);

/* daemon_client.c */
int dicom_ep_stats_json(dicom_ep_t *ep, char *out, size_t len);

/* progress_thread.c */
int dicom_thread_start(dicom_ep_t *ep);
void dicom_thread_stop(dicom_ep_t *ep);

/* traffic.c */
void dicom_traffic_identify(dicom_ep_t *ep);
void dicom_traffic_maintain(dicom_ep_t *ep, int64_t now);

#endif
