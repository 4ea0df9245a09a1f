/* SPDX-License-Identifier: BSD-3-Clause */
/* Hash map from dicom_addr_t to a pointer: streams by peer, daemon tables. */
#ifndef DICOM_ADDRMAP_H
#define DICOM_ADDRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "dicom.h"

struct dicom_addrmap_node;

struct dicom_addrmap {
	struct dicom_addrmap_node **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
};

/* Iteration survives deleting the entry it just returned. */
struct dicom_addrmap_iter {
	size_t bucket;
	struct dicom_addrmap_node *next;
	int started;
};

int dicom_addrmap_init(struct dicom_addrmap *m);
void dicom_addrmap_destroy(struct dicom_addrmap *m); /* values are not freed */
void *dicom_addrmap_get(const struct dicom_addrmap *m, dicom_addr_t key);
int dicom_addrmap_put(struct dicom_addrmap *m, dicom_addr_t key, void *val); /* 0 or -1 (ENOMEM) */
void *dicom_addrmap_del(struct dicom_addrmap *m, dicom_addr_t key);
void *dicom_addrmap_next(const struct dicom_addrmap *m, struct dicom_addrmap_iter *it,
			 dicom_addr_t *key);

static inline int dicom_addr_eq(dicom_addr_t a, dicom_addr_t b)
{
	return a.home_node == b.home_node && a.home_pid == b.home_pid;
}

#endif
