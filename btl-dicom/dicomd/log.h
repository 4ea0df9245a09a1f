/* SPDX-License-Identifier: BSD-3-Clause */
/* Structured JSON-lines logging: one object per line, written atomically. */
#ifndef DICOMD_LOG_H
#define DICOMD_LOG_H

#include <stddef.h>

#include "dicom.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

struct logline {
	char buf[2048];
	size_t len;
};

/* path NULL: stderr.  Returns 0 or -1 with errno. */
int log_open(const char *path);
void log_close(void);
void log_begin(struct logline *l, enum log_level level, const char *event);
void log_str(struct logline *l, const char *key, const char *val);
void log_int(struct logline *l, const char *key, long long val);
void log_addr(struct logline *l, const char *key, dicom_addr_t a);
void log_node(struct logline *l, const char *key, unsigned node);
void log_end(struct logline *l);

#endif
