/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Message buffers above the malloc mmap threshold, recycled.  A stream of
 * 256 KiB fragments that malloc and free one buffer each would make glibc
 * grow and trim its heap (or mmap and munmap) every time, and the kernel
 * would fault in fresh zeroed pages for every fragment on both sides.
 */
#ifndef DICOM_MSGBUF_H
#define DICOM_MSGBUF_H

#include <stddef.h>

/* Like malloc/free; buffers from dicom_msgbuf_alloc must go back here. */
void *dicom_msgbuf_alloc(size_t size);
void dicom_msgbuf_free(void *p);

#endif
