/* SPDX-License-Identifier: BSD-3-Clause */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "msgbuf.h"

#define MIN_SHIFT 16                  /* below 64 KiB malloc's bins do well */
#define MAX_SHIFT 27                  /* DICOM_MAX_MSG (64 MiB) plus headers */
#define CACHE_LIMIT ((size_t)64 << 20) /* bytes kept idle per process */

/* Sits in front of every buffer; max_align_t keeps the payload aligned. */
union prefix {
	unsigned shift; /* 0: plain malloc */
	union prefix *next;
	max_align_t align;
};


static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static union prefix *free_lists[MAX_SHIFT + 1];
static size_t cached_bytes;

static unsigned shift_for(size_t size)
{
	unsigned s = MIN_SHIFT;
	while (s <= MAX_SHIFT && ((size_t)1 << s) < size)
		s++;
	return s;
}

void *dicom_msgbuf_alloc(size_t size)
{
	size_t need = size + sizeof(union prefix);
	unsigned s = shift_for(need);
	union prefix *p = NULL;
	if (need < ((size_t)1 << MIN_SHIFT) || s > MAX_SHIFT) {
		p = malloc(need);
		if (!p)
			return NULL;
		p->shift = 0;
		return p + 1;
	}
	pthread_mutex_lock(&lock);
	p = free_lists[s];
	if (p) {
		free_lists[s] = p->next;
		cached_bytes -= (size_t)1 << s;
	}
	pthread_mutex_unlock(&lock);
	if (!p) {
		p = malloc((size_t)1 << s);
		if (!p)
			return NULL;
	}
	p->shift = s;
	return p + 1;
}

void dicom_msgbuf_free(void *ptr)
{
	if (!ptr)
		return;
	union prefix *p = (union prefix *)ptr - 1;
	unsigned s = p->shift;
	if (s == 0) {
		free(p);
		return;
	}
	pthread_mutex_lock(&lock);
	if (cached_bytes + ((size_t)1 << s) <= CACHE_LIMIT) {
		p->next = free_lists[s];
		free_lists[s] = p;
		cached_bytes += (size_t)1 << s;
		p = NULL;
	}
	pthread_mutex_unlock(&lock);
	free(p);
}
