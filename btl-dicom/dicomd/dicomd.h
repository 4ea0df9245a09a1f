/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicomd: the node daemon.  One thread, one epoll loop, nonblocking
 * sockets, bounded buffers.  Tables:
 *   endpoints  – processes registered on this node's unix socket now;
 *   directory  – authoritative location of processes whose home is this
 *                node, wherever they run (kept, marked detached, while they
 *                migrate);
 *   cache      – answers from other nodes' directories.
 */
#ifndef DICOMD_H
#define DICOMD_H

#include <stdint.h>
#include <sys/types.h>

#include "addrmap.h"
#include "dicom_wire.h"
#include "gossip.h"
#include "input.h"
#include "log.h"
#include "relay.h"

#define DICOMD_OUT_CAP (4u << 20)    /* a client that reads nothing is dropped */
#define DICOMD_MAX_CONNS 4096
#define DICOMD_MAX_PENDING 4096
#define DICOMD_LOOKUP_TIMEOUT_NS 2000000000LL
#define DICOMD_FORWARD_TIMEOUT_NS 3000000000LL
#define DICOMD_CACHE_TTL_NS 30000000000LL
#define DICOMD_MAX_DIRECTORY 65536

struct endpoint;

struct dconn {
	int fd;
	enum dicomd_role role;
	uint64_t id; /* pending replies find their requester by id, never by pointer */
	char peer[64];
	pid_t cred_pid;
	uint8_t *in; /* dicomd_input_cap(role) bytes */
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_cap;
	uint32_t events;
	int connecting;
	int dead;
	int in_paused; /* input waits (a relayed record for a full mailbox) */
	struct endpoint *ep;  /* registered endpoint on a unix connection */
	uint32_t remote_node; /* ROLE_PEER_*: the other dicomd's node */
	uint8_t *relay_held;  /* ROLE_PEER_IN: a relayed record for a full mailbox */
	int64_t relay_held_since, relay_retry_at;
	struct dconn *prev, *next;
	struct dconn *grave_next;
};

struct endpoint {
	dicom_addr_t addr;
	struct dconn *conn;
	pid_t pid;
	uint32_t node;
	uint16_t port; /* 0 until the endpoint reports its listener */
	int64_t since_ns;
};

struct dir_entry {
	dicom_addr_t addr;
	struct dicom_wire_loc loc; /* state ACTIVE or DETACHED */
	int64_t changed_ns;
};

struct cache_entry {
	struct dicom_wire_loc loc;
	int64_t expires_ns;
};

enum pending_kind { PENDING_LOOKUP, PENDING_FORWARD };

struct pending {
	struct pending *next;
	uint64_t id;
	enum pending_kind kind;
	uint64_t req_conn;
	uint64_t req_seq;
	uint8_t req_type;
	dicom_addr_t dst;
	uint32_t node; /* PENDING_LOOKUP: home dicomd asked */
	int64_t deadline_ns;
};

struct dicomd {
	uint32_t node;
	uint16_t port;
	char name[100];
	int64_t detached_ttl_ns;
	int epfd, unix_fd, tcp_fd, sig_fd;
	int64_t started_ns;
	uint64_t next_conn_id, next_pending_id;
	struct dconn *conns;
	size_t nconns;
	struct dconn *graveyard;
	struct dicom_addrmap endpoints;
	struct dicom_addrmap directory;
	struct dicom_addrmap cache;
	struct pending *pending;
	size_t npending;
	struct gossip *gossip;
	struct relay *relay; /* NULL without the kernel driver */
};

/* conn.c */
struct dconn *dconn_add(struct dicomd *d, int fd, enum dicomd_role role, const char *peer);
void dconn_send(struct dicomd *d, struct dconn *c, const struct dicom_frame *f,
		const void *payload);
void dconn_send_error(struct dicomd *d, struct dconn *c, int code, const char *msg);
void dconn_close(struct dicomd *d, struct dconn *c, const char *reason);
void dconn_event(struct dicomd *d, struct dconn *c, uint32_t events);
struct dconn *dconn_by_id(struct dicomd *d, uint64_t id);
void dconn_free_dead(struct dicomd *d);
/* Stops (1) or resumes (0) reading c; resuming parses what is buffered. */
void dconn_pause_input(struct dicomd *d, struct dconn *c, int paused);

/* registry.c: frames from endpoints and tools on the unix socket */
void registry_accept(struct dicomd *d);
void registry_frame(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
void registry_conn_closed(struct dicomd *d, struct dconn *c);

/* directory.c */
struct dir_entry *directory_get(struct dicomd *d, dicom_addr_t a);
void directory_set(struct dicomd *d, dicom_addr_t a, const struct dicom_wire_loc *loc);
void directory_remove(struct dicomd *d, dicom_addr_t a);
int directory_answer(struct dicomd *d, dicom_addr_t a, struct dicom_wire_loc *out);
const struct dicom_wire_loc *cache_get(struct dicomd *d, dicom_addr_t a, int64_t now);
void cache_put(struct dicomd *d, dicom_addr_t a, const struct dicom_wire_loc *loc, int64_t now);
void cache_drop(struct dicomd *d, dicom_addr_t a);
void directory_sweep(struct dicomd *d, int64_t now);

/* peers.c: other dicomds */
void peers_accept(struct dicomd *d);
void peers_frame_in(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
void peers_frame_out(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
void peers_conn_closed(struct dicomd *d, struct dconn *c);
void peers_resolve(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
void peers_location_update(struct dicomd *d, dicom_addr_t a, const struct dicom_wire_loc *loc);
/* The connection to node's dicomd, opened on first use; NULL if it cannot be. */
struct dconn *peer_conn(struct dicomd *d, uint32_t node);
struct pending *pending_add(struct dicomd *d, enum pending_kind kind, struct dconn *req,
			    const struct dicom_frame *f, int64_t timeout_ns);
struct pending *pending_take(struct dicomd *d, uint64_t id, enum pending_kind kind);
void pending_expire(struct dicomd *d, int64_t now);
void reply_resolved(struct dicomd *d, struct dconn *c, uint64_t seq, dicom_addr_t a,
		    const struct dicom_wire_loc *loc);

/* status.c */
void status_reply(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
/* A reply that is one JSON object of at most max bytes ending in an array:
 * begin allocates (or answers ENOMEM and returns -1), end closes the array
 * and the object, saying whether anything was left out, sends and frees. */
struct jbuf;
int json_reply_begin(struct dicomd *d, struct dconn *c, struct jbuf *j, size_t max);
void json_reply_end(struct dicomd *d, struct dconn *c, struct jbuf *j, size_t max,
		    uint8_t type, uint64_t seq);

/* registry.c: logs why, tells the client, and drops its connection */
void refuse(struct dicomd *d, struct dconn *c, const char *event, int code, const char *why);

#endif
