/* SPDX-License-Identifier: BSD-3-Clause */
/* dicomd's side of the kernel relay (/dev/dicom/relay); see relay.c. */
#ifndef DICOMD_RELAY_H
#define DICOMD_RELAY_H

#include <stdint.h>

#include "dicom_wire.h"

/* The epoll tag of the relay device (connections are tagged by pointer). */
#define RELAY_EPOLL_TAG 4u

enum relay_mode {
	RELAY_AUTO, /* open it when the driver is loaded */
	RELAY_ON,   /* fail to start without it */
	RELAY_OFF,
};

struct relay_counters {
	uint64_t out_records, out_bytes; /* carried to other nodes */
	uint64_t in_records, in_bytes;   /* delivered into local mailboxes */
	uint64_t refused;                /* answered NOT_HERE (no mailbox, no relay, no peer) */
	uint64_t dropped;                /* lost: a peer gone, a mailbox full too long, a forgery */
	uint64_t too_big;                /* over DICOM_WIRE_MAX_RELAY, dropped by the driver */
	uint64_t paused_out;             /* a congested peer connection stopped reading the device */
	uint64_t paused_in;              /* a full mailbox paused a peer's connection */
};

struct dicomd;
struct dconn;
struct jbuf;

/* 0 when opened or not needed; -1 when mode is RELAY_ON and it cannot be. */
int relay_open(struct dicomd *d, enum relay_mode mode);
void relay_close(struct dicomd *d);
/* The device has outbound records. */
void relay_readable(struct dicomd *d);
/* A RELAY frame from another dicomd. */
void relay_frame(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
/* The connection goes away with a record still held for a full mailbox. */
void relay_conn_closed(struct dicomd *d, struct dconn *c);
/* Retries what waits; returns when it next needs to run (INT64_MAX: never). */
int64_t relay_tick(struct dicomd *d, int64_t now);
/* The "relay" member of the STATUS object, with its trailing comma. */
void relay_status(const struct dicomd *d, struct jbuf *j);

#endif
