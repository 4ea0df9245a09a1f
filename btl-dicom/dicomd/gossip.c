/* SPDX-License-Identifier: BSD-3-Clause */
/* Gossip rounds, merging what peers send, ageing out, and the per-endpoint
 * traffic that goes into this node's load vector (see gossip.h). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dicomd.h"
#include "sock.h"

/* Averaging time of per-pair byte rates, as for the load. */
#define RATE_TAU_NS 2000000000LL
#define BACKOFF_MAX_SHIFT 4 /* a failing peer is retried at most 16 periods later */

void gossip_config_default(struct gossip_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->period_ns = (int64_t)GOSSIP_DEFAULT_PERIOD_MS * 1000000;
	cfg->window = GOSSIP_DEFAULT_WINDOW;
}

int gossip_parse_peers(const char *list, struct gossip_config *cfg, char *why, size_t len)
{
	char buf[GOSSIP_MAX_PEERS * 16 + 1];
	if (strlen(list) >= sizeof(buf)) {
		snprintf(why, len, "--peers is too long (at most %d addresses)", GOSSIP_MAX_PEERS);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", list);
	cfg->npeers = 0;
	char *save;
	for (char *t = strtok_r(buf, ", \t\n", &save); t; t = strtok_r(NULL, ", \t\n", &save)) {
		struct in_addr ia;
		if (inet_pton(AF_INET, t, &ia) != 1 || ia.s_addr == 0 || ia.s_addr == 0xffffffffu) {
			snprintf(why, len, "--peers: \"%.40s\" is not a node's IPv4 address", t);
			return -1;
		}
		uint32_t node = ntohl(ia.s_addr);
		int dup = 0;
		for (size_t i = 0; i < cfg->npeers; i++)
			dup |= cfg->peers[i] == node;
		if (dup)
			continue;
		if (cfg->npeers == GOSSIP_MAX_PEERS) {
			snprintf(why, len, "--peers: more than %d addresses", GOSSIP_MAX_PEERS);
			return -1;
		}
		cfg->peers[cfg->npeers++] = node;
	}
	return 0;
}

static uint64_t rnd(struct gossip *g)
{
	/* xorshift64*: the choice of target only has to be spread evenly */
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 0x2545f4914f6cdd1dULL;
}

int gossip_init(struct dicomd *d, const struct gossip_config *cfg)
{
	struct gossip *g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->cfg = *cfg;
	if (!g->cfg.max_age_ns)
		g->cfg.max_age_ns = g->cfg.period_ns * GOSSIP_DEFAULT_AGE_PERIODS;
	g->peers = calloc(cfg->npeers ? cfg->npeers : 1, sizeof(*g->peers));
	g->scratch = malloc(sizeof(*g->scratch));
	if (!g->peers || !g->scratch || dicom_addrmap_init(&g->eps) < 0) {
		free(g->peers);
		free(g->scratch);
		free(g);
		return -1;
	}
	for (size_t i = 0; i < cfg->npeers; i++)
		if (cfg->peers[i] != d->node)
			g->peers[g->npeers++].node = cfg->peers[i];
	load_sampler_init(&g->sampler);
	g->rng = (uint64_t)dicom_now_ns() ^ ((uint64_t)getpid() << 32) ^ d->node;
	if (!g->rng)
		g->rng = 1;
	g->self.node = d->node;
	d->gossip = g;
	return 0;
}

static void free_ep_state(struct ep_state *s)
{
	if (s) {
		free(s->pairs);
		free(s);
	}
}

void gossip_destroy(struct dicomd *d)
{
	struct gossip *g = d->gossip;
	if (!g)
		return;
	struct dicom_addrmap_iter it = { 0 };
	struct ep_state *s;
	while ((s = dicom_addrmap_next(&g->eps, &it, NULL)))
		free_ep_state(s);
	dicom_addrmap_destroy(&g->eps);
	free(g->entries);
	free(g->peers);
	free(g->scratch);
	free(g);
	d->gossip = NULL;
}

int64_t gossip_age(const struct gossip_entry *e, int64_t now)
{
	return e->age_at_rx + (now - e->rx_ns);
}

static long find_entry(const struct gossip *g, uint32_t node)
{
	for (size_t i = 0; i < g->nentries; i++)
		if (g->entries[i].node == node)
			return (long)i;
	return -1;
}

static struct gossip_peer *find_peer(struct gossip *g, uint32_t node)
{
	for (size_t i = 0; i < g->npeers; i++)
		if (g->peers[i].node == node)
			return &g->peers[i];
	return NULL;
}

static void log_entry_event(const char *event, uint32_t node, int64_t age_ns, const char *peer)
{
	struct logline l;
	log_begin(&l, LOG_INFO, event);
	log_node(&l, "node", node);
	log_int(&l, "age_ms", age_ns / 1000000);
	if (peer)
		log_str(&l, "peer", peer);
	log_end(&l);
}

/* An entry past the maximum age leaves the view but is remembered for as
 * long again: copies of the same sample still travelling between other
 * nodes must not bring it back. */
static void expire(struct gossip *g, int64_t now)
{
	for (size_t i = 0; i < g->nentries;) {
		struct gossip_entry *e = &g->entries[i];
		if (e->expired_ns && now - e->expired_ns > g->cfg.max_age_ns) {
			*e = g->entries[--g->nentries];
			continue;
		}
		int64_t age = gossip_age(e, now);
		if (!e->expired_ns && age > g->cfg.max_age_ns) {
			log_entry_event("gossip_expired", e->node, age, NULL);
			g->expired++;
			e->expired_ns = now;
		}
		i++;
	}
}

static struct ep_state *ep_state_get(struct gossip *g, dicom_addr_t a)
{
	struct ep_state *s = dicom_addrmap_get(&g->eps, a);
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s || dicom_addrmap_put(&g->eps, a, s) < 0) {
		free(s);
		return NULL;
	}
	s->addr = a;
	s->rank = DICOM_RANK_UNKNOWN;
	return s;
}

/* Follows the endpoint table: forgets endpoints that left, measures the
 * CPU use of those that are here. */
static void sync_endpoints(struct dicomd *d, int64_t now)
{
	struct gossip *g = d->gossip;
	struct dicom_addrmap_iter it = { 0 };
	dicom_addr_t key;
	struct ep_state *s;
	while ((s = dicom_addrmap_next(&g->eps, &it, &key)))
		if (!dicom_addrmap_get(&d->endpoints, key))
			free_ep_state(dicom_addrmap_del(&g->eps, key));
	struct dicom_addrmap_iter ei = { 0 };
	struct endpoint *e;
	while ((e = dicom_addrmap_next(&d->endpoints, &ei, &key))) {
		s = ep_state_get(g, key);
		uint64_t ticks;
		if (!s || load_proc_ticks(e->pid, &ticks) < 0)
			continue;
		if (s->cpu_ns && ticks >= s->cpu_ticks) {
			uint32_t pm = load_permille(&g->sampler, ticks - s->cpu_ticks, now - s->cpu_ns);
			s->cpu_permille = (uint16_t)(pm > 65535 ? 65535 : pm);
		}
		s->cpu_ticks = ticks;
		s->cpu_ns = now;
	}
}

static int heavier_pair(const void *a, const void *b)
{
	const struct dicom_wire_pair *x = a, *y = b;
	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* This node's load vector, sampled now, into g->self. */
static void build_self(struct dicomd *d, int64_t now)
{
	struct gossip *g = d->gossip;
	struct dicom_wire_load *l = g->scratch;
	struct load_sample s;
	load_sample(&g->sampler, now, &s);
	l->runnable = s.runnable;
	l->load_milli = s.load_milli;
	l->cpu_milli = s.cpu_milli;
	l->mem_free_kib = s.mem_free_kib;
	l->mem_total_kib = s.mem_total_kib;
	l->nprocs = 0;
	size_t npairs = 0;
	struct dicom_addrmap_iter it = { 0 };
	dicom_addr_t key;
	struct endpoint *e;
	while ((e = dicom_addrmap_next(&d->endpoints, &it, &key)) &&
	       l->nprocs < DICOM_LOAD_MAX_PROCS) {
		struct ep_state *st = dicom_addrmap_get(&g->eps, key);
		struct dicom_wire_proc *p = &l->procs[l->nprocs++];
		*p = (struct dicom_wire_proc){ .addr = key, .pid = (uint32_t)e->pid,
					       .rank = st ? st->rank : DICOM_RANK_UNKNOWN,
					       .cpu_permille = st ? st->cpu_permille : 0 };
		if (st)
			memcpy(p->job, st->job, sizeof(p->job));
		npairs += st ? st->npairs : 0;
	}
	struct dicom_wire_pair *all = npairs ? malloc(npairs * sizeof(*all)) : NULL;
	size_t n = 0;
	if (all) {
		struct dicom_addrmap_iter si = { 0 };
		struct ep_state *st;
		while ((st = dicom_addrmap_next(&g->eps, &si, &key)))
			for (uint16_t i = 0; i < st->npairs && n < npairs; i++)
				all[n++] = (struct dicom_wire_pair){ st->addr, st->pairs[i].dst,
								     st->pairs[i].bytes,
								     st->pairs[i].rate };
		qsort(all, n, sizeof(*all), heavier_pair);
	}
	l->npairs = (uint16_t)(n < DICOM_LOAD_MAX_PAIRS ? n : DICOM_LOAD_MAX_PAIRS);
	if (l->npairs)
		memcpy(l->pairs, all, l->npairs * sizeof(*all));
	free(all);
	g->self.len = (uint32_t)dicom_load_encode(l, g->self.payload, sizeof(g->self.payload));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t sample = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	/* realtime, so that a restarted node's samples are newer than its old ones */
	g->self.sample = sample > g->self.sample ? sample : g->self.sample + 1;
	g->self.age_at_rx = 0;
	g->self.rx_ns = now;
}

static void send_entry(struct dicomd *d, struct dconn *c, const struct gossip_entry *e,
		       int64_t now)
{
	/* rounded up: a copy must never look younger than it is */
	int64_t age_ms = (gossip_age(e, now) + 999999) / 1000000;
	struct dicom_frame f = { .type = DICOM_FT_GOSSIP, .length = e->len, .seq = e->sample,
				 .aux = (uint32_t)(age_ms > UINT32_MAX ? UINT32_MAX : age_ms),
				 .src = { e->node, 0 } };
	dconn_send(d, c, &f, e->payload);
	d->gossip->frames_sent++;
}

/* Every entry ages at the same pace, so comparing ages at rx time suffices. */
static int younger_first(const void *a, const void *b, void *ctx)
{
	const struct gossip *g = ctx;
	const struct gossip_entry *x = &g->entries[*(const size_t *)a];
	const struct gossip_entry *y = &g->entries[*(const size_t *)b];
	int64_t ax = x->age_at_rx - x->rx_ns, ay = y->age_at_rx - y->rx_ns;
	return ax < ay ? -1 : ax > ay;
}

static void round_to_random_peer(struct dicomd *d, int64_t now)
{
	struct gossip *g = d->gossip;
	size_t eligible = 0;
	for (size_t i = 0; i < g->npeers; i++)
		eligible += g->peers[i].retry_ns <= now;
	if (!eligible)
		return;
	size_t pick = (size_t)(rnd(g) % eligible);
	struct gossip_peer *target = NULL;
	for (size_t i = 0; i < g->npeers && !target; i++)
		if (g->peers[i].retry_ns <= now && pick-- == 0)
			target = &g->peers[i];
	struct dconn *c = peer_conn(d, target->node);
	if (!c) {
		gossip_peer_lost(d, target->node);
		return;
	}
	g->rounds++;
	send_entry(d, c, &g->self, now);
	/* The freshest entries first, none about the target itself. */
	size_t *order = g->nentries ? malloc(g->nentries * sizeof(*order)) : NULL;
	if (!order)
		return;
	for (size_t i = 0; i < g->nentries; i++)
		order[i] = i;
	qsort_r(order, g->nentries, sizeof(*order), younger_first, g);
	unsigned sent = 1;
	for (size_t i = 0; i < g->nentries && sent < g->cfg.window; i++) {
		const struct gossip_entry *e = &g->entries[order[i]];
		if (e->node == target->node || e->expired_ns)
			continue;
		send_entry(d, c, e, now);
		sent++;
	}
	free(order);
}

int64_t gossip_tick(struct dicomd *d, int64_t now)
{
	struct gossip *g = d->gossip;
	if (now < g->next_tick_ns)
		return g->next_tick_ns;
	/* +-10% so that nodes started together do not gossip in lockstep */
	int64_t jitter = g->cfg.period_ns / 10;
	g->next_tick_ns = now + g->cfg.period_ns - jitter +
			  (jitter ? (int64_t)(rnd(g) % (uint64_t)(2 * jitter)) : 0);
	expire(g, now);
	sync_endpoints(d, now);
	build_self(d, now);
	round_to_random_peer(d, now);
	return g->next_tick_ns;
}

void gossip_peer_lost(struct dicomd *d, uint32_t node)
{
	struct gossip *g = d->gossip;
	struct gossip_peer *p = g ? find_peer(g, node) : NULL;
	if (!p)
		return;
	unsigned shift = p->failures < BACKOFF_MAX_SHIFT ? p->failures : BACKOFF_MAX_SHIFT;
	p->failures++;
	p->retry_ns = dicom_now_ns() + (g->cfg.period_ns << shift);
}

void gossip_receive(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct gossip *g = d->gossip;
	uint32_t origin = f->src.home_node;
	int r = dicom_load_decode(f->payload, f->length, g->scratch);
	if (r != DICOM_DECODE_OK || origin == 0) {
		char why[160];
		snprintf(why, sizeof(why), "GOSSIP entry: %s",
			 origin == 0 ? "origin node 0.0.0.0" : dicom_decode_strerror(r));
		g->rejected++;
		refuse(d, c, "bad_gossip", DICOM_EPROTO, why);
		return;
	}
	g->frames_received++;
	if (origin == d->node)
		return; /* our own entry, come back around */
	int64_t now = dicom_now_ns(), age = (int64_t)f->aux * 1000000;
	if (age == 0) {
		/* the sender's own entry: it is alive, stop backing off */
		struct gossip_peer *p = find_peer(g, origin);
		if (p) {
			p->failures = 0;
			p->retry_ns = 0;
		}
	}
	/* Only a newer sample replaces what we hold.  Copies of the same
	 * sample differ only in how much transit delay their ages missed;
	 * preferring the youngest-looking one would make a dead node's entry
	 * age slower than the clock. */
	long i = find_entry(g, origin);
	if (age > g->cfg.max_age_ns || (i >= 0 && f->seq <= g->entries[i].sample)) {
		g->stale++;
		return;
	}
	if (i < 0) {
		if (g->nentries >= GOSSIP_MAX_ENTRIES) {
			g->stale++;
			return;
		}
		struct gossip_entry *n = realloc(g->entries, (g->nentries + 1) * sizeof(*n));
		if (!n)
			return;
		g->entries = n;
		i = (long)g->nentries++;
		log_entry_event("gossip_node_seen", origin, age, c->peer);
	}
	struct gossip_entry *e = &g->entries[i];
	e->node = origin;
	e->sample = f->seq;
	e->age_at_rx = age;
	e->rx_ns = now;
	e->expired_ns = 0;
	e->len = f->length;
	memcpy(e->payload, f->payload, f->length);
}

static const struct ep_pair *find_pair(const struct ep_state *s, dicom_addr_t dst)
{
	for (uint16_t i = 0; i < s->npairs; i++)
		if (dicom_addr_eq(s->pairs[i].dst, dst))
			return &s->pairs[i];
	return NULL;
}

void gossip_traffic(struct dicomd *d, struct dconn *c, const struct dicom_frame *f)
{
	struct gossip *g = d->gossip;
	if (!c->ep) {
		refuse(d, c, "bad_request", DICOM_EPROTO, "TRAFFIC before REGISTER");
		return;
	}
	struct dicom_wire_traffic t;
	int r = dicom_traffic_decode(f->payload, f->length, &t);
	if (r != DICOM_DECODE_OK) {
		char why[96];
		snprintf(why, sizeof(why), "TRAFFIC report: %s", dicom_decode_strerror(r));
		refuse(d, c, "bad_request", DICOM_EINVAL, why);
		return;
	}
	struct ep_state *s = ep_state_get(g, c->ep->addr);
	struct ep_pair *pairs = t.npairs ? malloc(t.npairs * sizeof(*pairs)) : NULL;
	if (!s || (t.npairs && !pairs)) {
		free(pairs);
		return;
	}
	int64_t now = dicom_now_ns(), dt = s->report_ns ? now - s->report_ns : 0;
	double w = dt > 0 ? (double)dt / ((double)RATE_TAU_NS + (double)dt) : 0;
	for (uint16_t i = 0; i < t.npairs; i++) {
		const struct ep_pair *old = find_pair(s, t.pairs[i].dst);
		uint64_t before = old ? old->bytes : 0, rate = old ? old->rate : 0;
		if (dt > 0 && t.pairs[i].bytes >= before) {
			double inst = (double)(t.pairs[i].bytes - before) * 1e9 / (double)dt;
			rate = (uint64_t)((double)rate * (1 - w) + inst * w + 0.5);
		}
		pairs[i] = (struct ep_pair){ t.pairs[i].dst, t.pairs[i].bytes, rate };
	}
	free(s->pairs);
	s->pairs = pairs;
	s->npairs = t.npairs;
	s->rank = t.rank;
	memcpy(s->job, t.job, sizeof(s->job));
	s->report_ns = now;
}
