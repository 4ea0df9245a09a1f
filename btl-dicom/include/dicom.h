/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libdicom public API: the endpoint a process (an MPI rank, a test, the
 * control plane through ffi-rs) uses to talk DiCOM.  Nothing here depends on
 * Open MPI; the BTL in mca-templates/ is a thin adapter over this header.
 *
 * A process is named by where it was born, (home node, home pid), never by
 * where it runs now.  Messages between two endpoints arrive exactly once and
 * in order even when connections break (migration, daemon restart):
 * reliability is ours, TCP is only a carrier.
 */
#ifndef DICOM_H
#define DICOM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Only libdicom.so exports the API.  libdicom.a keeps every symbol hidden so
 * that a plugin linking it statically (mca_btl_dicom.so) still exports
 * exactly its component symbol. */
#if defined(DICOM_BUILDING_SHARED)
#define DICOM_API __attribute__((visibility("default")))
#else
#define DICOM_API
#endif

/* home_node is an IPv4 address in host byte order (MOSIX names nodes by IP). */
typedef struct dicom_addr {
	uint32_t home_node;
	uint32_t home_pid;
} dicom_addr_t;

enum dicom_status {
	DICOM_OK = 0,
	DICOM_EAGAIN = -1,    /* retransmit window full: progress, then retry */
	DICOM_ENODAEMON = -2, /* no dicomd reachable on the abstract socket */
	DICOM_EPROTO = -3,    /* peer or daemon violated the wire protocol */
	DICOM_EINVAL = -4,    /* bad argument from the caller */
	DICOM_ENOMEM = -5,
	DICOM_ENOENT = -6,    /* unknown (home, pid) */
	DICOM_EIO = -7,       /* a system call failed; see errno in the message */
	DICOM_ETOOBIG = -8,   /* message larger than DICOM_MAX_MSG */
	DICOM_ECLOSED = -9,   /* endpoint is closing */
};

/* Largest single message; callers fragment above this (the BTL's max_send_size). */
#define DICOM_MAX_MSG (64u << 20)

#define DICOM_DEFAULT_DAEMON "dicomd"  /* abstract unix socket @dicomd */
#define DICOM_DEFAULT_PORT 7470        /* dicomd's TCP port between nodes */

typedef struct dicom_ep dicom_ep_t;

struct dicom_ep_opts {
	/* Abstract socket name of the local dicomd; NULL means $DICOM_DAEMON or
	 * DICOM_DEFAULT_DAEMON. */
	const char *daemon_name;
	/* Unacknowledged bytes kept per stream before dicom_send says EAGAIN; 0 = default. */
	size_t window_bytes;
	/* Start the DiCOM progress thread, which answers the daemon's control
	 * requests (ping, detach) while the application computes. */
	int progress_thread;
	/* Run the delivery callback without the endpoint's lock held, on a
	 * copy of each message.  Needed when several threads may call
	 * dicom_send/dicom_progress and the callback takes locks of its own
	 * (an MPI library under MPI_THREAD_MULTIPLE): otherwise the two lock
	 * orders deadlock.  Costs one copy per message. */
	int deliver_unlocked;
};

/*
 * Migration.  A rank started by the home stub dicom-run has the stub's shim
 * preloaded; the shim keeps the rank's stdio and PMIx channel tunnelled home
 * and exports these hooks, which the endpoint finds with dlsym and calls
 * around a migration: detach before "ready" is answered (the tunnel drains
 * and closes its socket), reattach once the endpoint runs again after a
 * CRIU restore (on the target, or on the source after a rollback).
 */
struct dicom_migration_hooks {
	int (*detach)(void);   /* 0 when every tunnel socket is closed */
	void (*reattach)(void);
};
#define DICOM_MIGRATION_HOOKS_SYMBOL "dicom_stub_migration_hooks"

/* Delivery callback: data is valid only during the call. */
typedef void (*dicom_recv_fn)(void *ctx, const dicom_addr_t *src, uint8_t tag,
			      const void *data, size_t len);

struct dicom_ep_stats {
	uint64_t msgs_sent, msgs_delivered;
	uint64_t bytes_sent, bytes_delivered;
	uint64_t retransmitted, duplicates_dropped;
	uint64_t reconnects, resolves;
	uint64_t control_requests;
	/* Messages that went through the kernel mailbox (/dev/dicom/mbox)
	 * rather than a socket: sent whole, and delivered. */
	uint64_t kernel_sent, kernel_delivered;
	/* Of those, the ones between nodes through dicomd's relay. */
	uint64_t kernel_relayed_sent, kernel_relayed_delivered;
};

/* Registers with the local dicomd.  On failure returns a DICOM_E* code and
 * writes a human-readable reason (naming the fix) into err. */
DICOM_API int dicom_ep_open(const struct dicom_ep_opts *opts, dicom_ep_t **out,
		  char *err, size_t errlen);
DICOM_API void dicom_ep_close(dicom_ep_t *ep);
DICOM_API dicom_addr_t dicom_ep_addr(const dicom_ep_t *ep);

/* Queues one message (gathered from iov) to dst; the data is copied, so the
 * caller's buffers are free on return.  DICOM_EAGAIN when the stream's
 * window is full. */
DICOM_API int dicom_send(dicom_ep_t *ep, const dicom_addr_t *dst, uint8_t tag,
	       const struct iovec *iov, int iovcnt);

/* Moves bytes and delivers in-order messages to cb.  Never blocks.
 * Returns the number of messages delivered, or a DICOM_E* code. */
DICOM_API int dicom_progress(dicom_ep_t *ep, dicom_recv_fn cb, void *ctx);

/* Nonzero while any sent message is not yet acknowledged by its receiver. */
DICOM_API int dicom_ep_busy(dicom_ep_t *ep);

DICOM_API void dicom_ep_stats(dicom_ep_t *ep, struct dicom_ep_stats *out);

/*
 * The kernel backend.  When the dicom_mbox module is loaded, streams to
 * endpoints on the same node go through kernel mailboxes instead of TCP,
 * with the same exactly-once, in-order delivery.  $DICOM_KERNEL_MBOX picks:
 * "auto" (the default: when the uapi's DICOM_MBOX_DEV exists), "off", or "on"
 * (dicom_ep_open fails without the device).
 */
#define DICOM_KERNEL_MBOX_ENV "DICOM_KERNEL_MBOX"
/* When set, dicom_ep_close appends the endpoint's stats as one JSON line
 * to this file (how a finished MPI job shows which path its messages took). */
#define DICOM_STATS_LOG_ENV "DICOM_STATS_LOG"

/* Drops every connection (data and daemon), as a migration or a broken
 * network would; the next dicom_progress reconnects and retransmits. */
DICOM_API void dicom_ep_break_connections(dicom_ep_t *ep);

DICOM_API const char *dicom_strerror(int status);

/* Text forms: "10.77.0.1:4242"; parse returns DICOM_EINVAL on bad input. */
DICOM_API int dicom_addr_format(const dicom_addr_t *a, char *buf, size_t len);
DICOM_API int dicom_addr_parse(const char *s, dicom_addr_t *out);

/*
 * Daemon queries for tools (the control plane calls these through ffi-rs).
 * Each writes one JSON object into out and returns its length, or a
 * DICOM_E* code with {"error": "..."} in out.  daemon_name may be
 * "netns:NS:NAME": the dicomd NAME inside network namespace /run/netns/NS.
 */
DICOM_API int dicom_query_status(const char *daemon_name, char *out, size_t len);
/* The daemon's gossip view: its own load vector and those of the nodes it
 * has heard of, each with its age. */
DICOM_API int dicom_query_view(const char *daemon_name, char *out, size_t len);
DICOM_API int dicom_query_resolve(const char *daemon_name, const char *addr,
				  char *out, size_t len);
/* Asks the daemon to relay a PING to a registered endpoint; out gets the
 * endpoint's stats JSON. */
DICOM_API int dicom_query_ping(const char *daemon_name, const char *addr,
			       char *out, size_t len);
/* Asks the endpoint to detach (close every external socket) and stay
 * detached for hold_ms before reattaching; out gets {"ready":true,...}. */
DICOM_API int dicom_query_detach(const char *daemon_name, const char *addr,
				 uint32_t hold_ms, char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* DICOM_H */
