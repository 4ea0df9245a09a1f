/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "framebuf.h"

static int reserve(struct framebuf *b, size_t more)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + more <= b->cap)
		return 0;
	if (b->off) { /* reclaim the consumed front before growing */
		memmove(b->buf, b->buf + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + more <= b->cap)
			return 0;
	}
	size_t cap = b->cap ? b->cap : 65536;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *n = realloc(b->buf, cap);
	if (!n)
		return -1;
	b->buf = n;
	b->cap = cap;
	return 0;
}

int framebuf_put(struct framebuf *b, uint8_t type, uint32_t aux, dicom_addr_t src,
		 const void *payload, size_t n)
{
	struct dicom_frame f = { .type = type, .aux = aux, .length = (uint32_t)n, .src = src };
	if (reserve(b, DICOM_WIRE_HDR_LEN + n) < 0)
		return -1;
	b->len += dicom_frame_encode(&f, payload, b->buf + b->len, b->cap - b->len);
	return 0;
}

int framebuf_append(struct framebuf *b, const void *data, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	return 0;
}

int framebuf_send(struct framebuf *b, int fd)
{
	while (b->off < b->len) {
		ssize_t w = send(fd, b->buf + b->off, b->len - b->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			b->off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	b->off = b->len = 0;
	return 0;
}

void framebuf_clear(struct framebuf *b)
{
	b->off = b->len = 0;
}

void framebuf_free(struct framebuf *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

int framebuf_recv(struct framebuf *b, int fd)
{
	if (reserve(b, 65536) < 0)
		return -1;
	for (;;) {
		ssize_t r = recv(fd, b->buf + b->len, b->cap - b->len, MSG_DONTWAIT);
		if (r > 0) {
			b->len += (size_t)r;
			return 1;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
}

int framebuf_next(struct framebuf *b, struct dicom_frame *f)
{
	int d = dicom_frame_decode(b->buf + b->off, b->len - b->off, f);
	if (d == DICOM_DECODE_NEED_MORE)
		return 0;
	if (d != DICOM_DECODE_OK || f->type < DICOM_FT_STUB_HELLO || f->type > DICOM_FT_STUB_SIGNAL)
		return -1;
	b->off += DICOM_WIRE_HDR_LEN + f->length;
	return 1;
}

int stub_parse_hostport(const char *s, uint32_t *ip, uint16_t *port)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	struct in_addr a;
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (inet_pton(AF_INET, host, &a) != 1 || *end || p <= 0 || p > 65535)
		return -1;
	*ip = ntohl(a.s_addr);
	*port = (uint16_t)p;
	return 0;
}

int stub_tcp_connect(const char *hostport, int timeout_ms)
{
	uint32_t ip;
	uint16_t port;
	if (stub_parse_hostport(hostport, &ip, &port) < 0) {
		errno = EINVAL;
		return -1;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(ip) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int err = 0;
	socklen_t el = sizeof(err);
	if (poll(&p, 1, timeout_ms) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		close(fd);
		errno = err ? err : ETIMEDOUT;
		return -1;
	}
	return fd;
}
