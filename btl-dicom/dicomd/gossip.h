/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Gossip of load between dicomds, in the manner of MOSIX infod: each period
 * this node samples its load vector and sends it, with the freshest entries
 * it knows about other nodes (up to a window), to one random peer.  Every
 * entry carries its age; an entry older than the maximum age is dropped, so
 * a dead node disappears from every view.
 */
#ifndef DICOMD_GOSSIP_H
#define DICOMD_GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#include "addrmap.h"
#include "dicom_wire.h"
#include "load.h"

#define GOSSIP_DEFAULT_PERIOD_MS 500
#define GOSSIP_DEFAULT_WINDOW 16
#define GOSSIP_DEFAULT_AGE_PERIODS 20 /* default maximum age, in periods */
#define GOSSIP_MAX_PEERS 1024
#define GOSSIP_MAX_ENTRIES 4096
#define GOSSIP_MAX_WINDOW 1024

struct dicomd;
struct dconn;

struct gossip_config {
	int64_t period_ns;
	unsigned window;
	int64_t max_age_ns; /* 0: GOSSIP_DEFAULT_AGE_PERIODS periods */
	size_t npeers;
	uint32_t peers[GOSSIP_MAX_PEERS];
};

/* One node's load vector as this node knows it. */
struct gossip_entry {
	uint32_t node;
	uint64_t sample;    /* the origin's sample number: its realtime clock, ns */
	int64_t age_at_rx;  /* its age when it arrived, ns */
	int64_t rx_ns;
	int64_t expired_ns; /* nonzero: aged out; kept so older copies stay out */
	uint32_t len;
	uint8_t payload[DICOM_WIRE_MAX_GOSSIP];
};

/* What a local endpoint reported (TRAFFIC), plus its CPU use. */
struct ep_pair {
	dicom_addr_t dst;
	uint64_t bytes;
	uint64_t rate; /* bytes/s, averaged */
};

struct ep_state {
	dicom_addr_t addr;
	uint32_t rank;
	char job[DICOM_JOB_MAX + 1];
	int64_t report_ns;
	uint16_t npairs;
	struct ep_pair *pairs;
	uint64_t cpu_ticks;
	int64_t cpu_ns;
	uint16_t cpu_permille;
};

struct gossip_peer {
	uint32_t node;
	unsigned failures;
	int64_t retry_ns; /* skipped as a target until then */
};

struct gossip {
	struct gossip_config cfg;
	struct gossip_peer *peers;
	size_t npeers;
	struct gossip_entry self;
	struct gossip_entry *entries;
	size_t nentries;
	struct dicom_addrmap eps; /* addr -> struct ep_state */
	struct load_sampler sampler;
	struct dicom_wire_load *scratch;
	int64_t next_tick_ns;
	uint64_t rng;
	uint64_t frames_sent, frames_received, rounds, stale, expired, rejected;
};

/* Defaults into cfg. */
void gossip_config_default(struct gossip_config *cfg);
/* "a.b.c.d,a.b.c.d,..." into cfg->peers; 0, or -1 with the reason in why. */
int gossip_parse_peers(const char *list, struct gossip_config *cfg, char *why, size_t len);

int gossip_init(struct dicomd *d, const struct gossip_config *cfg);
void gossip_destroy(struct dicomd *d);
/* Runs a round when one is due; returns when the next one is. */
int64_t gossip_tick(struct dicomd *d, int64_t now);
/* GOSSIP from another dicomd. */
void gossip_receive(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
/* TRAFFIC from a registered endpoint. */
void gossip_traffic(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);
/* The connection to node's dicomd failed or closed. */
void gossip_peer_lost(struct dicomd *d, uint32_t node);
/* Current age of an entry. */
int64_t gossip_age(const struct gossip_entry *e, int64_t now);

/* view.c: VIEW from a tool */
void view_reply(struct dicomd *d, struct dconn *c, const struct dicom_frame *f);

#endif
