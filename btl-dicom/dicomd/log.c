/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_fd = 2;

int log_open(const char *path)
{
	if (!path)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	log_fd = fd;
	return 0;
}

void log_close(void)
{
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
}

static void append(struct logline *l, const char *s, size_t n)
{
	/* Keep room for the closing "}\n". */
	size_t room = sizeof(l->buf) - 3 - l->len;
	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void append_escaped(struct logline *l, const char *s)
{
	append(l, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			append(l, esc, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			int n = snprintf(esc, sizeof(esc), "\\u%04x", c);
			append(l, esc, (size_t)n);
		} else {
			append(l, (const char *)&c, 1);
		}
	}
	append(l, "\"", 1);
}

static void key(struct logline *l, const char *k)
{
	append(l, ",", 1);
	append_escaped(l, k);
	append(l, ":", 1);
}

void log_begin(struct logline *l, enum log_level level, const char *event)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[64];
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000) % 1000);
	l->len = 0;
	append(l, "{\"ts\":", 6);
	append_escaped(l, stamp);
	key(l, "level");
	append_escaped(l, names[level]);
	key(l, "event");
	append_escaped(l, event);
}

void log_str(struct logline *l, const char *k, const char *val)
{
	key(l, k);
	append_escaped(l, val ? val : "");
}

void log_int(struct logline *l, const char *k, long long val)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%lld", val);
	key(l, k);
	append(l, num, (size_t)n);
}

void log_addr(struct logline *l, const char *k, dicom_addr_t a)
{
	char text[32];
	dicom_addr_format(&a, text, sizeof(text));
	log_str(l, k, text);
}

void log_node(struct logline *l, const char *k, unsigned node)
{
	char text[20];
	snprintf(text, sizeof(text), "%u.%u.%u.%u", (node >> 24) & 0xff,
		 (node >> 16) & 0xff, (node >> 8) & 0xff, node & 0xff);
	log_str(l, k, text);
}

void log_end(struct logline *l)
{
	l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	/* One write per line so concurrent writers never interleave. */
	size_t off = 0;
	while (off < l->len) {
		ssize_t w = write(log_fd, l->buf + off, l->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}
