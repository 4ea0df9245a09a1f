/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>
#include <string.h>

#include "addrmap.h"

struct dicom_addrmap_node {
	struct dicom_addrmap_node *next;
	dicom_addr_t key;
	void *val;
};

static size_t bucket_of(const struct dicom_addrmap *m, dicom_addr_t k)
{
	uint64_t x = ((uint64_t)k.home_node << 32) | k.home_pid;
	/* Fibonacci hashing: pids are dense small integers, so mix them well. */
	x *= 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 32) & (m->nbuckets - 1);
}

int dicom_addrmap_init(struct dicom_addrmap *m)
{
	m->nbuckets = 16;
	m->count = 0;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	return m->buckets ? 0 : -1;
}

void dicom_addrmap_destroy(struct dicom_addrmap *m)
{
	if (!m->buckets)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct dicom_addrmap_node *n = m->buckets[i];
		while (n) {
			struct dicom_addrmap_node *next = n->next;
			free(n);
			n = next;
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->count = 0;
}

void *dicom_addrmap_get(const struct dicom_addrmap *m, dicom_addr_t key)
{
	for (struct dicom_addrmap_node *n = m->buckets[bucket_of(m, key)]; n; n = n->next)
		if (dicom_addr_eq(n->key, key))
			return n->val;
	return NULL;
}

static void grow(struct dicom_addrmap *m)
{
	size_t nb = m->nbuckets * 2;
	struct dicom_addrmap_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* a longer chain is still correct */
	struct dicom_addrmap old = *m;
	m->buckets = b;
	m->nbuckets = nb;
	for (size_t i = 0; i < old.nbuckets; i++) {
		struct dicom_addrmap_node *n = old.buckets[i];
		while (n) {
			struct dicom_addrmap_node *next = n->next;
			size_t h = bucket_of(m, n->key);
			n->next = b[h];
			b[h] = n;
			n = next;
		}
	}
	free(old.buckets);
}

int dicom_addrmap_put(struct dicom_addrmap *m, dicom_addr_t key, void *val)
{
	size_t h = bucket_of(m, key);
	for (struct dicom_addrmap_node *n = m->buckets[h]; n; n = n->next) {
		if (dicom_addr_eq(n->key, key)) {
			n->val = val;
			return 0;
		}
	}
	struct dicom_addrmap_node *n = malloc(sizeof(*n));
	if (!n)
		return -1;
	n->key = key;
	n->val = val;
	n->next = m->buckets[h];
	m->buckets[h] = n;
	if (++m->count > m->nbuckets)
		grow(m);
	return 0;
}

void *dicom_addrmap_del(struct dicom_addrmap *m, dicom_addr_t key)
{
	struct dicom_addrmap_node **pp = &m->buckets[bucket_of(m, key)];
	for (; *pp; pp = &(*pp)->next) {
		struct dicom_addrmap_node *n = *pp;
		if (dicom_addr_eq(n->key, key)) {
			void *v = n->val;
			*pp = n->next;
			free(n);
			m->count--;
			return v;
		}
	}
	return NULL;
}

void *dicom_addrmap_next(const struct dicom_addrmap *m, struct dicom_addrmap_iter *it,
			 dicom_addr_t *key)
{
	if (!it->started) {
		it->started = 1;
		it->bucket = 0;
		it->next = m->nbuckets ? m->buckets[0] : NULL;
	}
	while (!it->next) {
		if (++it->bucket >= m->nbuckets)
			return NULL;
		it->next = m->buckets[it->bucket];
	}
	struct dicom_addrmap_node *n = it->next;
	it->next = n->next;
	if (key)
		*key = n->key;
	return n->val;
}
