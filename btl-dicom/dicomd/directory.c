/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The home-authoritative directory (where do processes born on this node
 * run now?) and the cache of other nodes' answers.
 */
#include <stdlib.h>

#include "dicomd.h"
#include "sock.h"

struct dir_entry *directory_get(struct dicomd *d, dicom_addr_t a)
{
	return dicom_addrmap_get(&d->directory, a);
}

void directory_set(struct dicomd *d, dicom_addr_t a, const struct dicom_wire_loc *loc)
{
	struct dir_entry *e = directory_get(d, a);
	if (!e) {
		if (d->directory.count >= DICOMD_MAX_DIRECTORY)
			directory_sweep(d, INT64_MAX); /* drop every detached entry */
		e = calloc(1, sizeof(*e));
		if (!e || dicom_addrmap_put(&d->directory, a, e) < 0) {
			free(e);
			return;
		}
		e->addr = a;
	}
	e->loc = *loc;
	e->changed_ns = dicom_now_ns();
}

void directory_remove(struct dicomd *d, dicom_addr_t a)
{
	free(dicom_addrmap_del(&d->directory, a));
}

/* Answers from what this node knows for certain: an endpoint registered
 * here, or the directory when a is homed here.  Returns 0 when only
 * another node can answer. */
int directory_answer(struct dicomd *d, dicom_addr_t a, struct dicom_wire_loc *out)
{
	struct endpoint *ep = dicom_addrmap_get(&d->endpoints, a);
	if (ep && ep->port) {
		*out = (struct dicom_wire_loc){ .node = ep->node, .port = ep->port,
						.state = DICOM_LOC_ACTIVE };
		return 1;
	}
	if (a.home_node != d->node)
		return 0;
	struct dir_entry *e = directory_get(d, a);
	if (e)
		*out = e->loc;
	else
		*out = (struct dicom_wire_loc){ .state = DICOM_LOC_NOT_FOUND };
	return 1;
}

const struct dicom_wire_loc *cache_get(struct dicomd *d, dicom_addr_t a, int64_t now)
{
	struct cache_entry *c = dicom_addrmap_get(&d->cache, a);
	if (!c)
		return NULL;
	if (c->expires_ns <= now) {
		cache_drop(d, a);
		return NULL;
	}
	return &c->loc;
}

void cache_put(struct dicomd *d, dicom_addr_t a, const struct dicom_wire_loc *loc, int64_t now)
{
	if (loc->state != DICOM_LOC_ACTIVE) {
		cache_drop(d, a); /* only positive answers are worth remembering */
		return;
	}
	struct cache_entry *c = dicom_addrmap_get(&d->cache, a);
	if (!c) {
		if (d->cache.count >= DICOMD_MAX_DIRECTORY)
			return;
		c = calloc(1, sizeof(*c));
		if (!c || dicom_addrmap_put(&d->cache, a, c) < 0) {
			free(c);
			return;
		}
	}
	c->loc = *loc;
	c->expires_ns = now + DICOMD_CACHE_TTL_NS;
}

void cache_drop(struct dicomd *d, dicom_addr_t a)
{
	free(dicom_addrmap_del(&d->cache, a));
}

void directory_sweep(struct dicomd *d, int64_t now)
{
	struct dicom_addrmap_iter it = { 0 };
	dicom_addr_t a;
	struct dir_entry *e;
	while ((e = dicom_addrmap_next(&d->directory, &it, &a))) {
		if (e->loc.state == DICOM_LOC_DETACHED && !dicom_addrmap_get(&d->endpoints, a) &&
		    (now == INT64_MAX || now - e->changed_ns > d->detached_ttl_ns)) {
			struct logline l;
			log_begin(&l, LOG_INFO, "directory_expired");
			log_addr(&l, "addr", a);
			log_end(&l);
			directory_remove(d, a);
		}
	}
	struct dicom_addrmap_iter ci = { 0 };
	struct cache_entry *c;
	while ((c = dicom_addrmap_next(&d->cache, &ci, &a)))
		if (c->expires_ns <= now)
			cache_drop(d, a);
}
