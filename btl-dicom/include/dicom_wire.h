/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The DiCOM wire format: the one definition of every frame that crosses a
 * socket (endpoint<->endpoint data path, endpoint/tool<->dicomd on the
 * abstract unix socket, dicomd<->dicomd over TCP).
 *
 * Every frame is a fixed 48-byte header followed by `length` payload bytes.
 * All integers are little-endian and are encoded field by field; no code may
 * memcpy a C struct onto the wire, so padding and host byte order never leak.
 *
 *  off size field
 *    0    4 magic    DICOM_WIRE_MAGIC (bytes 'D','C','O','M')
 *    4    1 version  DICOM_WIRE_VERSION
 *    5    1 type     enum dicom_frame_type
 *    6    2 flags    DICOM_FLAG_*; unknown bits must be zero
 *    8    4 length   payload bytes after the header
 *   12    4 aux      type-specific (DATA: tag, HELLO: window KiB, DETACH: hold ms,
 *                    ERROR: error code)
 *   16    8 seq      DATA: message sequence number; requests: request id
 *   24    8 ack      HELLO_ACK/ACK: cumulative delivered sequence number
 *   32    4 src.home_node   (IPv4, host-order value encoded little-endian)
 *   36    4 src.home_pid
 *   40    4 dst.home_node
 *   44    4 dst.home_pid
 *
 * Frames carrying a location have an 8-byte fixed payload:
 *    0    4 node     IPv4 (host-order value, little-endian)
 *    4    2 port
 *    6    1 state    enum dicom_loc_state
 *    7    1 reserved (zero)
 */
#ifndef DICOM_WIRE_H
#define DICOM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "dicom.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DICOM_WIRE_MAGIC 0x4d4f4344u /* "DCOM" read as little-endian u32 */
#define DICOM_WIRE_VERSION 1
#define DICOM_WIRE_HDR_LEN 48
#define DICOM_WIRE_LOC_LEN 8

/* Payload limits for frames that are not DATA. */
#define DICOM_WIRE_MAX_TEXT 1024        /* ERROR message */
#define DICOM_WIRE_MAX_PONG 4096        /* PONG stats JSON */
#define DICOM_WIRE_MAX_STATUS (1u << 20) /* STATUS_REPLY JSON */
#define DICOM_WIRE_MAX_GOSSIP 4096       /* GOSSIP load vector */
#define DICOM_WIRE_MAX_TRAFFIC 4096      /* TRAFFIC report */
#define DICOM_WIRE_MAX_VIEW (1u << 20)   /* VIEW_REPLY JSON */
#define DICOM_WIRE_MAX_STUB (1u << 20)   /* STUB_DATA chunk, STUB_OPEN address */
/* RELAY: one kernel mailbox message.  Senders fragment above it, whatever the
 * driver's msg_max (lib/kbackend.c), so every record a dicomd reads from its
 * relay fits in one frame. */
#define DICOM_WIRE_MAX_RELAY (64u << 10)

enum dicom_frame_type {
	/* endpoint <-> endpoint: the data path */
	DICOM_FT_HELLO = 1,     /* sender opens a stream: src, dst, aux = window KiB;
				   seq = probe number in a kernel mailbox, else 0 */
	DICOM_FT_HELLO_ACK = 2, /* receiver: ack = delivered seq of stream src->dst,
				   seq = the HELLO's */
	DICOM_FT_DATA = 3,      /* seq, aux = tag, payload = message */
	DICOM_FT_ACK = 4,       /* receiver: cumulative ack */
	DICOM_FT_NOT_HERE = 5,  /* receiver is not dst: re-resolve */

	/* endpoint or tool <-> local dicomd (abstract unix socket) */
	DICOM_FT_REGISTER = 16,   /* src = {0, getpid()} */
	DICOM_FT_REREGISTER = 17, /* src = existing home address (after detach/migration) */
	DICOM_FT_REGISTERED = 18, /* dst = home address, loc = daemon node + peer port */
	DICOM_FT_LOCATION = 19,   /* endpoint reports loc = its listener (node, port) */
	DICOM_FT_DEREGISTER = 20, /* endpoint closes for good */
	DICOM_FT_RESOLVE = 21,    /* seq = request id, dst = target, flags BYPASS_CACHE */
	DICOM_FT_RESOLVED = 22,   /* seq, dst, loc (state tells found or not) */
	DICOM_FT_PING = 23,       /* seq, dst = endpoint (tool -> dicomd -> endpoint) */
	DICOM_FT_PONG = 24,       /* seq, payload = stats JSON */
	DICOM_FT_DETACH = 25,     /* seq, dst, aux = hold ms before reattaching */
	DICOM_FT_DETACH_READY = 26, /* seq: every external socket is about to close */
	DICOM_FT_STATUS = 27,     /* seq: tool asks for the daemon's state */
	DICOM_FT_STATUS_REPLY = 28, /* seq, payload = status JSON */

	/* gossip of load between dicomds (MOSIX infod-like), and what feeds it */
	DICOM_FT_GOSSIP = 40,     /* dicomd -> dicomd (TCP): src = {origin node, 0}, seq = origin's
				     sample number, aux = entry age in ms, payload = load vector */
	DICOM_FT_TRAFFIC = 41,    /* endpoint -> local dicomd: payload = traffic report */
	DICOM_FT_VIEW = 42,       /* seq: tool asks for the daemon's gossip view */
	DICOM_FT_VIEW_REPLY = 43, /* seq, payload = view JSON */

	/* dicomd <-> dicomd (TCP) */
	DICOM_FT_LOOKUP = 32,          /* seq, dst, flags: ask dst's home daemon */
	DICOM_FT_LOOKUP_REPLY = 33,    /* seq, dst, loc */
	DICOM_FT_LOCATION_UPDATE = 34, /* dst, loc: dst moved, told to its home */
	/* One mailbox message for a process homed at the receiving node, read
	 * from the sending node's /dev/dicom/relay: src = sender (its node is
	 * the sending dicomd's, which vouches for it), dst = destination mailbox,
	 * aux = sender's uid, payload = the message (1..DICOM_WIRE_MAX_RELAY). */
	DICOM_FT_RELAY = 35,

	/* rank <-> its home stub dicom-run (TCP), the tunnel that keeps a
	 * migrated rank's stdio and PMIx channel at home.  aux = channel:
	 * 1 stdout, 2 stderr, >= 3 a socket the rank opened to a home service. */
	DICOM_FT_STUB_HELLO = 48,   /* src = rank's home address, aux = 1 when reattaching */
	DICOM_FT_STUB_OPEN = 49,    /* aux = channel, payload = "a.b.c.d:port" to connect at home */
	DICOM_FT_STUB_DATA = 50,    /* aux = channel, payload = bytes */
	DICOM_FT_STUB_CLOSE = 51,   /* aux = channel: that side closed */
	DICOM_FT_STUB_DRAIN = 52,   /* rank: I am leaving, send nothing more */
	DICOM_FT_STUB_DRAINED = 53, /* stub: nothing more follows until the next HELLO */
	DICOM_FT_STUB_EXIT = 54,    /* rank: aux = exit status (wait(2) encoding) */
	DICOM_FT_STUB_SIGNAL = 55,  /* stub: deliver signal aux to the rank */

	/* anywhere */
	DICOM_FT_ERROR = 63, /* aux = error code (negated DICOM_E*), payload = text */
};

#define DICOM_FLAG_BYPASS_CACHE 0x0001u
/* DATA carried by a kernel mailbox (lib/kbackend.c) whose message exceeds
 * the driver's msg_max travels as fragments, each a DATA frame of its own:
 * length = this fragment's bytes, ack = their offset in the message, and
 * MORE set on every fragment but the last.  Never valid on a socket. */
#define DICOM_FLAG_MORE 0x0002u
#define DICOM_FLAGS_KNOWN 0x0003u

enum dicom_loc_state {
	DICOM_LOC_NONE = 0,
	DICOM_LOC_ACTIVE = 1,      /* reachable at node:port */
	DICOM_LOC_DETACHED = 2,    /* known, momentarily unreachable (migrating) */
	DICOM_LOC_NOT_FOUND = 3,   /* the home daemon has never heard of it */
	DICOM_LOC_UNREACHABLE = 4, /* the home daemon did not answer */
	DICOM_LOC_STATE_MAX = 4,
};

struct dicom_wire_loc {
	uint32_t node;
	uint16_t port;
	uint8_t state;
};

struct dicom_frame {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t length;
	uint32_t aux;
	uint64_t seq;
	uint64_t ack;
	dicom_addr_t src;
	dicom_addr_t dst;
	/* Filled by dicom_frame_decode only: points into the decoded buffer. */
	const uint8_t *payload;
	/* Decoded fixed part, for frame types that carry a location. */
	struct dicom_wire_loc loc;
};

enum dicom_decode_result {
	DICOM_DECODE_OK = 0,
	DICOM_DECODE_NEED_MORE = 1,   /* valid so far, the frame is incomplete */
	DICOM_DECODE_BAD_MAGIC = -1,
	DICOM_DECODE_BAD_VERSION = -2,
	DICOM_DECODE_UNKNOWN_TYPE = -3,
	DICOM_DECODE_TOO_BIG = -4,    /* length over DICOM_MAX_MSG or the type's limit */
	DICOM_DECODE_TRUNCATED = -5,  /* length shorter than the type's fixed part */
	DICOM_DECODE_BAD_FIELD = -6,  /* unknown flag bits, bad reserved/state byte */
};

/* Pure decoder: never reads outside buf[0..len).  On OK the whole frame
 * (header + payload) is in buf and out->payload points at it; the frame
 * occupies DICOM_WIRE_HDR_LEN + out->length bytes.  Checks are made on the
 * bytes present, so garbage is rejected before a full header arrives. */
int dicom_frame_decode(const uint8_t *buf, size_t len, struct dicom_frame *out);

/* Like dicom_frame_decode, but OK as soon as the header is complete and
 * valid; the payload may still be missing (out->payload is NULL).  Lets a
 * receiver read a large DATA payload straight into its final buffer. */
int dicom_frame_decode_header(const uint8_t *buf, size_t len,
			      struct dicom_frame *out);

/* Validates and decodes the type-specific fixed part once the payload is
 * present (dicom_frame_decode does this itself). */
int dicom_frame_decode_fixed(const uint8_t *payload, struct dicom_frame *f);

/* Largest payload a frame of this type may carry; 0 for unknown types
 * (use dicom_frame_type_known). */
uint32_t dicom_frame_max_len(uint8_t type);
uint32_t dicom_frame_fixed_len(uint8_t type);
int dicom_frame_type_known(uint8_t type);
const char *dicom_frame_type_name(uint8_t type);

/* Writes the 48-byte header for f (f->length must be set). */
void dicom_frame_encode_header(const struct dicom_frame *f,
			       uint8_t out[DICOM_WIRE_HDR_LEN]);
/* Header + payload into out; returns bytes written or 0 if cap is short. */
size_t dicom_frame_encode(const struct dicom_frame *f, const void *payload,
			  uint8_t *out, size_t cap);
void dicom_wire_loc_encode(const struct dicom_wire_loc *loc,
			   uint8_t out[DICOM_WIRE_LOC_LEN]);

/*
 * Gossip.  Each period every dicomd sends one random peer its own load
 * vector and the freshest entries it holds about other nodes, up to a
 * window, one GOSSIP frame per entry.  Receivers keep the youngest entry
 * per origin and drop entries older than their maximum age, so a dead
 * node ages out of every view.
 *
 * GOSSIP payload: the load vector of the origin node.
 *  off size field
 *    0    4 runnable      tasks in state R on the node when sampled
 *    4    4 load_milli    runnable tasks, averaged over a few seconds, x1000
 *    8    4 cpu_milli     CPU capacity in thousandths of a CPU: the size of
 *                         the node's cpuset x1000, less under a CPU quota
 *   12    2 nprocs        process records that follow
 *   14    2 npairs        pair records that follow the process records
 *   16    8 mem_free_kib  MemAvailable
 *   24    8 mem_total_kib
 *   32      nprocs process records (DiCOM endpoints running on the node):
 *             0 8 addr          (home node, home pid)
 *             8 4 pid           its pid on this node
 *            12 4 rank          MPI rank, DICOM_RANK_UNKNOWN if not an MPI rank
 *            16 2 cpu_permille  CPU time used recently, 1000 = one CPU
 *            18 1 job_len       <= DICOM_JOB_MAX
 *            19 1 reserved      zero
 *            20   job label     job_len bytes of printable ASCII, no '"' or '\'
 *           then npairs pair records of 32 bytes (traffic from an endpoint
 *           running on the node):
 *             0 8 src addr, 8 8 dst addr
 *            16 8 bytes         sent from src to dst since src opened
 *            24 8 rate          bytes per second, recently
 *           A sender fits what it can: pairs are sent heaviest first.
 *
 * TRAFFIC payload: an endpoint tells its local dicomd what it sent.
 *    0    4 rank      DICOM_RANK_UNKNOWN if not an MPI rank
 *    4    1 job_len
 *    5    1 reserved  zero
 *    6    2 npairs
 *    8      job label, then npairs x (dst addr 8, bytes sent to it 8)
 */
#define DICOM_JOB_MAX 32
#define DICOM_RANK_UNKNOWN 0xffffffffu
#define DICOM_LOAD_FIXED_LEN 32
#define DICOM_LOAD_PROC_LEN 20
#define DICOM_LOAD_PAIR_LEN 32
#define DICOM_LOAD_MAX_PROCS ((DICOM_WIRE_MAX_GOSSIP - DICOM_LOAD_FIXED_LEN) / DICOM_LOAD_PROC_LEN)
#define DICOM_LOAD_MAX_PAIRS ((DICOM_WIRE_MAX_GOSSIP - DICOM_LOAD_FIXED_LEN) / DICOM_LOAD_PAIR_LEN)
#define DICOM_TRAFFIC_FIXED_LEN 8
#define DICOM_TRAFFIC_PAIR_LEN 16
#define DICOM_TRAFFIC_MAX_PAIRS \
	((DICOM_WIRE_MAX_TRAFFIC - DICOM_TRAFFIC_FIXED_LEN - DICOM_JOB_MAX) / DICOM_TRAFFIC_PAIR_LEN)

struct dicom_wire_proc {
	dicom_addr_t addr;
	uint32_t pid;
	uint32_t rank;
	uint16_t cpu_permille;
	char job[DICOM_JOB_MAX + 1]; /* NUL-terminated */
};

struct dicom_wire_pair {
	dicom_addr_t src, dst;
	uint64_t bytes, rate;
};

struct dicom_wire_load {
	uint32_t runnable, load_milli, cpu_milli;
	uint64_t mem_free_kib, mem_total_kib;
	uint16_t nprocs, npairs;
	struct dicom_wire_proc procs[DICOM_LOAD_MAX_PROCS];
	struct dicom_wire_pair pairs[DICOM_LOAD_MAX_PAIRS];
};

struct dicom_wire_traffic_pair {
	dicom_addr_t dst;
	uint64_t bytes;
};

struct dicom_wire_traffic {
	uint32_t rank;
	char job[DICOM_JOB_MAX + 1];
	uint16_t npairs;
	struct dicom_wire_traffic_pair pairs[DICOM_TRAFFIC_MAX_PAIRS];
};

/* Encodes as many process records, then pair records, as fit in cap
 * (callers order pairs heaviest first); the counts in the payload say how
 * many went.  Returns the payload length, 0 if cap cannot hold the fixed part. */
size_t dicom_load_encode(const struct dicom_wire_load *l, uint8_t *out, size_t cap);
/* DICOM_DECODE_OK, or TRUNCATED / BAD_FIELD / TOO_BIG naming what is wrong
 * with the payload; never reads outside p[0..len). */
int dicom_load_decode(const uint8_t *p, size_t len, struct dicom_wire_load *out);
size_t dicom_traffic_encode(const struct dicom_wire_traffic *t, uint8_t *out, size_t cap);
int dicom_traffic_decode(const uint8_t *p, size_t len, struct dicom_wire_traffic *out);
/* Copies a job label from arbitrary text (an environment variable), keeping
 * what the wire allows and replacing the rest with '_'. */
void dicom_job_label(const char *in, char out[DICOM_JOB_MAX + 1]);

const char *dicom_decode_strerror(int result);
/* Human-readable reason naming the offending value, e.g.
 * "wrong version 9 (expected 1)". */
void dicom_decode_describe(const uint8_t *buf, size_t len, int result,
			   char *out, size_t outlen);

/* Little-endian helpers shared by the encoder, decoder and tests. */
static inline void dicom_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void dicom_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void dicom_put_le64(uint8_t *p, uint64_t v)
{
	dicom_put_le32(p, (uint32_t)v);
	dicom_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t dicom_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t dicom_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
static inline uint64_t dicom_get_le64(const uint8_t *p)
{
	return (uint64_t)dicom_get_le32(p) | ((uint64_t)dicom_get_le32(p + 4) << 32);
}

#ifdef __cplusplus
}
#endif

#endif /* DICOM_WIRE_H */
