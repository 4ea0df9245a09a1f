/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One-shot daemon queries for tools.  Node calls these through ffi-rs from
 * arbitrary threads, so each call owns its connection and touches no
 * global state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "dicom_wire.h"
#include "sock.h"

#define QUERY_TIMEOUT_MS 5000

static int write_out(char *out, size_t len, const char *s, size_t n)
{
	if (!out || len == 0)
		return DICOM_EINVAL;
	if (n >= len) {
		snprintf(out, len, "{\"error\":\"reply of %zu bytes does not fit the %zu-byte buffer\"}",
			 n, len);
		return DICOM_EINVAL;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return (int)n;
}

static void json_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (; *in && o + 7 < len; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

__attribute__((format(printf, 4, 5)))
static int fail(char *out, size_t len, int code, const char *fmt, ...)
{
	char msg[600], esc[1300], json[1400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_escape(msg, esc, sizeof(esc));
	int n = snprintf(json, sizeof(json), "{\"error\":\"%s\"}", esc);
	if (out && len) {
		if ((size_t)n >= len)
			n = (int)len - 1;
		memcpy(out, json, (size_t)n);
		out[n] = '\0';
	}
	return code;
}

/* "netns:NS:NAME" reaches the dicomd named NAME inside the network
 * namespace /run/netns/NS (abstract sockets belong to a namespace): the
 * control plane, in the host's namespace, queries lab nodes this way.  The
 * socket is made by a short-lived thread that entered NS, so the caller's
 * own thread never changes namespace. */
struct netns_connect {
	char ns[256];
	const char *name;
	int fd, err;
};

static void *connect_in_netns(void *arg)
{
	struct netns_connect *c = arg;
	char path[300];
	snprintf(path, sizeof(path), "/run/netns/%s", c->ns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
		c->err = errno;
		if (nsfd >= 0)
			close(nsfd);
		return NULL;
	}
	close(nsfd);
	c->fd = dicom_unix_connect(c->name, 0);
	c->err = c->fd < 0 ? errno : 0;
	return NULL;
}

static int query_connect(const char *name)
{
	if (strncmp(name, "netns:", 6) != 0)
		return dicom_unix_connect(name, 0);
	const char *ns = name + 6, *colon = strchr(ns, ':');
	struct netns_connect c = { .fd = -1, .err = EINVAL };
	if (!colon || colon == ns || (size_t)(colon - ns) >= sizeof(c.ns) ||
	    memchr(ns, '/', (size_t)(colon - ns))) {
		errno = EINVAL; /* a namespace name, never a path */
		return -1;
	}
	memcpy(c.ns, ns, (size_t)(colon - ns));
	c.ns[colon - ns] = '\0';
	c.name = colon + 1;
	pthread_t t;
	if (pthread_create(&t, NULL, connect_in_netns, &c) != 0) {
		errno = EAGAIN;
		return -1;
	}
	pthread_join(t, NULL);
	errno = c.err;
	return c.fd;
}

/* Sends req and reads one reply frame of type `expect` into a heap buffer
 * (*buf, freed by the caller).  Returns DICOM_OK or an error already
 * written to out. */
static int transact(const char *daemon_name, const struct dicom_frame *req,
		    uint8_t expect, struct dicom_frame *reply, uint8_t **buf,
		    char *out, size_t len)
{
	const char *name = dicom_daemon_name(daemon_name);
	*buf = NULL;
	int fd = query_connect(name);
	if (fd < 0)
		return fail(out, len, DICOM_ENODAEMON,
			    "no dicomd on abstract socket @%s (%s); start one with: dicomctl daemon start",
			    name, strerror(errno));
	if (dicom_write_frame(fd, req, NULL, QUERY_TIMEOUT_MS) < 0) {
		int e = errno;
		close(fd);
		return fail(out, len, DICOM_EIO, "writing to dicomd @%s: %s", name, strerror(e));
	}
	size_t cap = DICOM_WIRE_HDR_LEN + DICOM_WIRE_MAX_STATUS;
	*buf = malloc(cap);
	if (!*buf) {
		close(fd);
		return fail(out, len, DICOM_ENOMEM, "out of memory");
	}
	char why[256];
	int rc = dicom_read_frame(fd, *buf, cap, reply, QUERY_TIMEOUT_MS, why, sizeof(why));
	close(fd);
	if (rc != DICOM_OK)
		return fail(out, len, rc, "no reply from dicomd @%s: %s", name, why);
	if (reply->type == DICOM_FT_ERROR) {
		int code = -(int)reply->aux;
		if (code >= 0 || code < DICOM_ECLOSED)
			code = DICOM_EPROTO;
		char msg[DICOM_WIRE_MAX_TEXT + 1];
		memcpy(msg, reply->payload, reply->length);
		msg[reply->length] = '\0';
		return fail(out, len, code, "%s", msg);
	}
	if (reply->type != expect)
		return fail(out, len, DICOM_EPROTO, "dicomd answered %s with %s",
			    dicom_frame_type_name(req->type),
			    dicom_frame_type_name(reply->type));
	return DICOM_OK;
}

/* A request without arguments whose reply is one JSON object. */
static int query_json(const char *daemon_name, uint8_t type, uint8_t expect, char *out,
		      size_t len)
{
	struct dicom_frame req = { .type = type, .seq = 1 }, rep;
	uint8_t *buf;
	int rc = transact(daemon_name, &req, expect, &rep, &buf, out, len);
	if (rc == DICOM_OK)
		rc = write_out(out, len, (const char *)rep.payload, rep.length);
	free(buf);
	return rc;
}

DICOM_API int dicom_query_status(const char *daemon_name, char *out, size_t len)
{
	return query_json(daemon_name, DICOM_FT_STATUS, DICOM_FT_STATUS_REPLY, out, len);
}

DICOM_API int dicom_query_view(const char *daemon_name, char *out, size_t len)
{
	return query_json(daemon_name, DICOM_FT_VIEW, DICOM_FT_VIEW_REPLY, out, len);
}

static int parse_target(const char *addr, dicom_addr_t *a, char *out, size_t len)
{
	if (!addr || dicom_addr_parse(addr, a) != DICOM_OK)
		return fail(out, len, DICOM_EINVAL,
			    "bad address \"%.64s\": expected home-node-ip:home-pid",
			    addr ? addr : "(null)");
	return DICOM_OK;
}

DICOM_API int dicom_query_resolve(const char *daemon_name, const char *addr,
				  char *out, size_t len)
{
	struct dicom_frame req = { .type = DICOM_FT_RESOLVE, .seq = 1 }, rep;
	int rc = parse_target(addr, &req.dst, out, len);
	if (rc != DICOM_OK)
		return rc;
	uint8_t *buf;
	rc = transact(daemon_name, &req, DICOM_FT_RESOLVED, &rep, &buf, out, len);
	free(buf);
	if (rc != DICOM_OK)
		return rc;
	char text[32], node[INET_ADDRSTRLEN];
	dicom_addr_format(&req.dst, text, sizeof(text));
	struct in_addr ia = { .s_addr = htonl(rep.loc.node) };
	inet_ntop(AF_INET, &ia, node, sizeof(node));
	switch (rep.loc.state) {
	case DICOM_LOC_ACTIVE: {
		char json[160];
		int n = snprintf(json, sizeof(json),
				 "{\"addr\":\"%s\",\"node\":\"%s\",\"port\":%u,\"state\":\"active\"}",
				 text, node, rep.loc.port);
		return write_out(out, len, json, (size_t)n);
	}
	case DICOM_LOC_DETACHED:
		return fail(out, len, DICOM_EAGAIN,
			    "%s is detached (migrating or reconnecting); retry shortly", text);
	case DICOM_LOC_UNREACHABLE:
		return fail(out, len, DICOM_EIO, "the home dicomd of %s did not answer", text);
	default:
		return fail(out, len, DICOM_ENOENT,
			    "unknown address %s: its home dicomd has no such process", text);
	}
}

DICOM_API int dicom_query_ping(const char *daemon_name, const char *addr,
			       char *out, size_t len)
{
	struct dicom_frame req = { .type = DICOM_FT_PING, .seq = 1 }, rep;
	int rc = parse_target(addr, &req.dst, out, len);
	if (rc != DICOM_OK)
		return rc;
	uint8_t *buf;
	rc = transact(daemon_name, &req, DICOM_FT_PONG, &rep, &buf, out, len);
	if (rc == DICOM_OK)
		rc = write_out(out, len, (const char *)rep.payload, rep.length);
	free(buf);
	return rc;
}

DICOM_API int dicom_query_detach(const char *daemon_name, const char *addr,
				 uint32_t hold_ms, char *out, size_t len)
{
	struct dicom_frame req = { .type = DICOM_FT_DETACH, .seq = 1, .aux = hold_ms }, rep;
	int rc = parse_target(addr, &req.dst, out, len);
	if (rc != DICOM_OK)
		return rc;
	uint8_t *buf;
	rc = transact(daemon_name, &req, DICOM_FT_DETACH_READY, &rep, &buf, out, len);
	free(buf);
	if (rc != DICOM_OK)
		return rc;
	char text[32], json[96];
	dicom_addr_format(&req.dst, text, sizeof(text));
	int n = snprintf(json, sizeof(json), "{\"ready\":true,\"addr\":\"%s\",\"hold_ms\":%u}",
			 text, hold_ms);
	return write_out(out, len, json, (size_t)n);
}
