/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sock.h"

int64_t dicom_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int dicom_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

const char *dicom_daemon_name(const char *explicit_name)
{
	if (explicit_name && *explicit_name)
		return explicit_name;
	const char *env = getenv("DICOM_DAEMON");
	if (env && *env)
		return env;
	return DICOM_DEFAULT_DAEMON;
}

int dicom_unix_connect(const char *name, int nonblock)
{
	struct sockaddr_un sa;
	size_t n = strlen(name);
	if (n + 1 > sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name, n); /* leading NUL: abstract namespace */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Setting SO_SNDBUF/SO_RCVBUF switches off the kernel's autotuning, which
 * already grows to tcp_rmem/tcp_wmem max (several MiB).  Forcing a size
 * only helps when the sysctl cap lets it exceed that; otherwise it would
 * shrink the buffers, so read the caps once and decide. */
static int sysctl_value(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = 0;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v > 0x7fffffffL ? 0x7fffffff : (int)v;
}

void dicom_tcp_tune(int fd)
{
	static const int want = 8 << 20;
	static int decided, force;
	if (!__atomic_load_n(&decided, __ATOMIC_ACQUIRE)) {
		int ok = sysctl_value("/proc/sys/net/core/rmem_max") >= want &&
			 sysctl_value("/proc/sys/net/core/wmem_max") >= want;
		__atomic_store_n(&force, ok, __ATOMIC_RELAXED);
		__atomic_store_n(&decided, 1, __ATOMIC_RELEASE);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (__atomic_load_n(&force, __ATOMIC_RELAXED)) {
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
	}
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
	for (;;) {
		int64_t left = (deadline - dicom_now_ns()) / 1000000;
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = ev };
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

int dicom_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = dicom_now_ns() + (int64_t)timeout_ms * 1000000;
	const uint8_t *p = buf;
	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT, deadline) < 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

static int read_exact(int fd, uint8_t *p, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t r = recv(fd, p, len, MSG_DONTWAIT);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return -1;
	}
	return 0;
}

int dicom_read_frame(int fd, uint8_t *buf, size_t cap, struct dicom_frame *f,
		     int timeout_ms, char *why, size_t whylen)
{
	int64_t deadline = dicom_now_ns() + (int64_t)timeout_ms * 1000000;
	if (cap < DICOM_WIRE_HDR_LEN)
		return DICOM_EINVAL;
	if (read_exact(fd, buf, DICOM_WIRE_HDR_LEN, deadline) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return DICOM_EIO;
	}
	int r = dicom_frame_decode_header(buf, DICOM_WIRE_HDR_LEN, f);
	if (r != DICOM_DECODE_OK) {
		dicom_decode_describe(buf, DICOM_WIRE_HDR_LEN, r, why, whylen);
		return DICOM_EPROTO;
	}
	if (f->length > cap - DICOM_WIRE_HDR_LEN) {
		snprintf(why, whylen, "%s reply of %u bytes does not fit %zu",
			 dicom_frame_type_name(f->type), f->length, cap);
		return DICOM_EPROTO;
	}
	if (read_exact(fd, buf + DICOM_WIRE_HDR_LEN, f->length, deadline) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return DICOM_EIO;
	}
	r = dicom_frame_decode(buf, DICOM_WIRE_HDR_LEN + f->length, f);
	if (r != DICOM_DECODE_OK) {
		dicom_decode_describe(buf, DICOM_WIRE_HDR_LEN + f->length, r, why, whylen);
		return DICOM_EPROTO;
	}
	return DICOM_OK;
}

int dicom_write_frame(int fd, const struct dicom_frame *f, const void *payload,
		      int timeout_ms)
{
	uint8_t hdr[DICOM_WIRE_HDR_LEN];
	dicom_frame_encode_header(f, hdr);
	if (dicom_write_all(fd, hdr, sizeof(hdr), timeout_ms) < 0)
		return -1;
	if (f->length && dicom_write_all(fd, payload, f->length, timeout_ms) < 0)
		return -1;
	return 0;
}
