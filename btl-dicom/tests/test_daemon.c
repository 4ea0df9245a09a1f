/* SPDX-License-Identifier: BSD-3-Clause */
/* dicomd's command line, queries, control requests and shutdown; the
 * library's behaviour without a daemon. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dicom.h"
#include "harness.h"

static void test_cli(void)
{
	char out[4096];
	const char *help[] = { "--help", NULL };
	int rc = run_dicomd(help, out, sizeof(out));
	tap_ok(rc == 0 && strstr(out, "Usage: dicomd") && strstr(out, "--node-addr") &&
		       strstr(out, "--port") && strstr(out, "--name") && strstr(out, "--log"),
	       "dicomd --help exits 0 and prints usage");
	const char *bad_port[] = { "--port", "0", NULL };
	rc = run_dicomd(bad_port, out, sizeof(out));
	tap_ok(rc == 2 && strstr(out, "--port 0"), "a bad --port exits 2 with a reason");
	const char *bad_addr[] = { "--node-addr", "nonsense", NULL };
	rc = run_dicomd(bad_addr, out, sizeof(out));
	tap_ok(rc == 2 && strstr(out, "not an IPv4 address"), "a bad --node-addr exits 2");
	const char *bad_opt[] = { "--frobnicate", NULL };
	rc = run_dicomd(bad_opt, out, sizeof(out));
	tap_ok(rc == 2 && strstr(out, "Usage"), "an unknown option exits 2 with usage");
}

static void test_no_daemon(void)
{
	char name[64], err[512];
	snprintf(name, sizeof(name), "dicomd-test-absent-%d", (int)getpid());
	struct dicom_ep_opts opts = { .daemon_name = name };
	dicom_ep_t *ep = NULL;
	int rc = dicom_ep_open(&opts, &ep, err, sizeof(err));
	tap_ok(rc == DICOM_ENODAEMON && ep == NULL, "dicom_ep_open without dicomd: DICOM_ENODAEMON");
	tap_ok(strstr(err, "dicomctl daemon start") && strstr(err, name) &&
		       strstr(err, "Connection refused"),
	       "the error names the socket, the cause and the fix: %s", err);
	char json[512];
	rc = dicom_query_status(name, json, sizeof(json));
	tap_ok(rc == DICOM_ENODAEMON && strstr(json, "{\"error\":") &&
		       strstr(json, "dicomctl daemon start"),
	       "dicom_query_status without dicomd: JSON error");
	setenv("DICOM_DAEMON", name, 1);
	rc = dicom_ep_open(NULL, &ep, err, sizeof(err));
	tap_ok(rc == DICOM_ENODAEMON && strstr(err, name), "$DICOM_DAEMON picks the socket");
	unsetenv("DICOM_DAEMON");
}

static void test_queries(struct test_daemon *d)
{
	char json[1 << 16];
	int rc = dicom_query_status(d->name, json, sizeof(json));
	tap_ok(rc > 0 && (size_t)rc == strlen(json) && json[0] == '{' && json[rc - 1] == '}' &&
		       strstr(json, "\"node\":\"127.0.0.1\"") && strstr(json, "\"uptime_s\":") &&
		       strstr(json, "\"endpoints\":[]") && strstr(json, "\"cache\":["),
	       "dicom_query_status returns JSON: %.120s", json);
	char small[8];
	rc = dicom_query_status(d->name, small, sizeof(small));
	tap_ok(rc == DICOM_EINVAL, "a too-small buffer is reported, not overrun");

	rc = dicom_query_resolve(d->name, "127.0.0.1:999999", json, sizeof(json));
	tap_ok(rc == DICOM_ENOENT && strstr(json, "\"error\"") && strstr(json, "127.0.0.1:999999"),
	       "resolving an unknown (home,pid): DICOM_ENOENT %s", json);
	tap_ok(wait_file_contains(d->log, "\"event\":\"not_found\"", 2000) &&
		       file_contains(d->log, "127.0.0.1:999999"),
	       "the unknown lookup is logged");
	rc = dicom_query_resolve(d->name, "not-an-address", json, sizeof(json));
	tap_ok(rc == DICOM_EINVAL && strstr(json, "bad address"), "bad address text: DICOM_EINVAL");
	/* 127.0.0.9 has no dicomd: the home lookup fails fast (loopback only). */
	rc = dicom_query_resolve(d->name, "127.0.0.9:42", json, sizeof(json));
	tap_ok(rc == DICOM_EIO && strstr(json, "did not answer"),
	       "an unreachable home dicomd: DICOM_EIO %s", json);
}

static void test_endpoint_control(struct test_daemon *d)
{
	struct dicom_ep_opts opts = { .daemon_name = d->name, .progress_thread = 1 };
	dicom_ep_t *ep;
	char err[256], json[1 << 16], addr[32];
	int rc = dicom_ep_open(&opts, &ep, err, sizeof(err));
	if (!tap_ok(rc == DICOM_OK, "endpoint opens with a progress thread (%s)", err))
		return;
	dicom_addr_t a = dicom_ep_addr(ep);
	dicom_addr_format(&a, addr, sizeof(addr));
	tap_ok(a.home_node == 0x7f000001 && a.home_pid == (uint32_t)getpid(),
	       "home address is (node, getpid()) = %s", addr);

	rc = dicom_query_resolve(d->name, addr, json, sizeof(json));
	tap_ok(rc > 0 && strstr(json, "\"node\":\"127.0.0.1\"") && strstr(json, "\"port\":"),
	       "the endpoint resolves: %s", json);
	rc = dicom_query_status(d->name, json, sizeof(json));
	tap_ok(rc > 0 && strstr(json, addr), "status lists the endpoint");

	/* The application thread is not calling dicom_progress: the DiCOM
	 * thread must answer. */
	rc = dicom_query_ping(d->name, addr, json, sizeof(json));
	tap_ok(rc > 0 && strstr(json, "\"msgs_sent\":") && strstr(json, addr),
	       "PING answered by the progress thread: %.100s", json);

	rc = dicom_query_detach(d->name, addr, 300, json, sizeof(json));
	tap_ok(rc > 0 && strstr(json, "\"ready\":true"), "DETACH answered ready: %s", json);
	usleep(100000);
	rc = dicom_query_resolve(d->name, addr, json, sizeof(json));
	tap_ok(rc == DICOM_EAGAIN && strstr(json, "detached"),
	       "while detached the directory says so: %s", json);
	/* After the hold the thread reattaches with REREGISTER on its own. */
	int back = 0;
	for (int i = 0; i < 300 && !back; i++) {
		usleep(10000);
		back = dicom_query_resolve(d->name, addr, json, sizeof(json)) > 0;
	}
	tap_ok(back, "endpoint reattached by itself after the hold: %s", json);
	tap_ok(file_contains(d->log, "\"event\":\"detach_ready\"") &&
		       file_contains(d->log, "\"event\":\"reregister\""),
	       "detach_ready and reregister are logged");
	struct dicom_ep_stats st;
	dicom_ep_stats(ep, &st);
	tap_ok(st.control_requests == 2, "two control requests counted");

	/* A message to ourselves crosses the full data path. */
	uint8_t payload[100] = { 1, 2, 3 };
	struct iovec iov = { payload, sizeof(payload) };
	rc = dicom_send(ep, &a, 7, &iov, 1);
	int got = 0;
	for (int i = 0; i < 2000 && got == 0; i++) {
		int n = dicom_progress(ep, NULL, NULL); /* held until a callback is given */
		(void)n;
		usleep(1000);
		struct dicom_ep_stats s2;
		dicom_ep_stats(ep, &s2);
		got = s2.msgs_delivered == 1;
	}
	tap_ok(rc == DICOM_OK && got, "a message to self is delivered");

	struct iovec huge = { payload, DICOM_MAX_MSG + 1u };
	tap_ok(dicom_send(ep, &a, 0, &huge, 1) == DICOM_ETOOBIG, "oversized send: DICOM_ETOOBIG");
	tap_ok(dicom_send(ep, &a, 0, NULL, 1) == DICOM_EINVAL, "NULL iov: DICOM_EINVAL");
	dicom_ep_close(ep);
	rc = dicom_query_resolve(d->name, addr, json, sizeof(json));
	tap_ok(rc == DICOM_ENOENT, "after dicom_ep_close the address is gone: %s", json);
}

int main(void)
{
	test_cli();
	test_no_daemon();
	struct test_daemon d;
	if (!tap_ok(daemon_start(&d, NULL) == 0, "dicomd started"))
		return tap_done();
	test_queries(&d);
	test_endpoint_control(&d);
	tap_ok(daemon_stop(&d) == 0, "SIGTERM: dicomd exits 0");
	tap_ok(file_contains(d.log, "\"event\":\"shutdown\""), "shutdown is logged");
	tap_ok(file_contains(d.log, "\"event\":\"start\""), "start is logged");
	return tap_done();
}
