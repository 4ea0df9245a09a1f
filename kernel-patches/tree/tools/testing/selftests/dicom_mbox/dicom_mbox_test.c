// SPDX-License-Identifier: GPL-2.0
/*
 * Selftest of the DiCOM mailbox driver between real processes; prints TAP.
 *
 * Every test runs in a child process of its own, so each starts with a
 * fresh mailbox and a crash fails only that test.  With -u (as root) the
 * last test unloads the module while messages are queued and checks that
 * the kernel logged no warning.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/dicom_mbox.h>

#define SKIP_EXIT	77
#define TEST_SECONDS	60
#define NOBODY		65534
#define MODULE_NAME	"dicom_mbox"
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

static int report_fd = -1;	/* the failure reason goes to the runner */
static int kmsg_fd = -1;	/* the kernel log from where the run began */
static bool unload_requested;

static int fail(const char *fmt, ...)
{
	char why[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (n > 0 && write(report_fd, why, strlen(why)) < 0)
		return -1;
	return -1;
}

static int skip(const char *why)
{
	if (write(report_fd, why, strlen(why)) < 0)
		exit(SKIP_EXIT);
	exit(SKIP_EXIT);
}

/* Fails unless the last call returned -1 with @want in errno. */
static int expect_errno(long ret, int want, const char *what)
{
	if (ret != -1)
		return fail("%s: returned %ld, want errno %s", what, ret,
			    strerror(want));
	if (errno != want)
		return fail("%s: errno %s, want %s", what, strerror(errno),
			    strerror(want));
	return 0;
}

static int mbox_open(void)
{
	return open(DICOM_MBOX_DEV, O_RDWR | O_CLOEXEC);
}

static int mbox_send(int fd, unsigned int home, pid_t pid, const void *buf,
		     size_t len)
{
	struct dicom_mbox_send s = {
		.to = { .home = home, .pid = pid },
		.buf = (uintptr_t)buf,
		.len = len,
	};

	return ioctl(fd, DICOM_MBOX_IOC_SEND, &s);
}

static int mbox_filter(int fd, const struct dicom_mbox_filter *f)
{
	return ioctl(fd, DICOM_MBOX_IOC_SET_FILTER, f);
}

static int mbox_clear_filter(int fd)
{
	struct dicom_mbox_filter f = { 0 };

	return mbox_filter(fd, &f);
}

static int mbox_recv(int fd, void *buf, size_t len, unsigned int flags,
		     struct dicom_mbox_info *info)
{
	struct dicom_mbox_recv r = {
		.buf = (uintptr_t)buf,
		.buf_len = len,
		.flags = flags,
	};
	int ret = ioctl(fd, DICOM_MBOX_IOC_RECV, &r);

	*info = r.info;
	return ret;
}

static int mbox_stats(int fd, struct dicom_mbox_stats *st)
{
	return ioctl(fd, DICOM_MBOX_IOC_STATS, st);
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Reads one message and checks that it is exactly @want. */
static int expect_msg(int fd, const char *want, const char *what)
{
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0)
		return fail("%s: read: %s", what, strerror(errno));
	if ((size_t)n != strlen(want) || memcmp(buf, want, n))
		return fail("%s: got %zd bytes \"%.*s\", want \"%s\"", what, n,
			    (int)(n > 0 ? n : 0), buf, want);
	return 0;
}

static int expect_empty(int fd, const char *what)
{
	char buf[16];
	int ret;

	set_nonblock(fd, true);
	ret = expect_errno(read(fd, buf, sizeof(buf)), EAGAIN, what);
	set_nonblock(fd, false);
	return ret;
}

static int send_self(int fd, const char *msg)
{
	if (mbox_send(fd, 0, getpid(), msg, strlen(msg)))
		return fail("send \"%s\": %s", msg, strerror(errno));
	return 0;
}

/*
 * A peer process: it opens its own mailbox, says so on @ready, runs @fn and
 * exits with its result.  @go lets the test pace it.
 */
struct peer {
	pid_t pid;
	int ready;
	int go;
};

typedef int (*peer_fn)(int mbox, int go, void *arg);

static int peer_start(struct peer *p, peer_fn fn, void *arg)
{
	int ready[2], go[2];
	char c = 'r';

	if (pipe(ready) || pipe(go))
		return fail("pipe: %s", strerror(errno));
	p->pid = fork();
	if (p->pid < 0)
		return fail("fork: %s", strerror(errno));
	if (p->pid == 0) {
		int fd = mbox_open();

		close(ready[0]);
		close(go[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0) {
			fail("peer: open: %s", strerror(errno));
			_exit(1);
		}
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		_exit(fn(fd, go[0], arg) ? 1 : 0);
	}
	close(ready[1]);
	close(go[0]);
	p->ready = ready[0];
	p->go = go[1];
	if (read(p->ready, &c, 1) != 1)
		return fail("peer %d died before opening its mailbox", p->pid);
	return 0;
}

static void peer_go(struct peer *p)
{
	char c = 'g';

	if (write(p->go, &c, 1) != 1)
		fail("peer %d: cannot signal: %s", p->pid, strerror(errno));
}

static int wait_go(int go)
{
	char c;

	return read(go, &c, 1) == 1 ? 0 : -1;
}

static int peer_wait(struct peer *p)
{
	int status;

	close(p->go);
	close(p->ready);
	if (waitpid(p->pid, &status, 0) != p->pid)
		return fail("waitpid %d: %s", p->pid, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fail("peer %d failed (status 0x%x)", p->pid, status);
	return 0;
}

static int test_device_nodes(void)
{
	struct stat mb, rl;

	if (stat(DICOM_MBOX_DEV, &mb) || stat(DICOM_RELAY_DEV, &rl))
		return fail("stat: %s", strerror(errno));
	if (!S_ISCHR(mb.st_mode) || (mb.st_mode & 0777) != 0666)
		return fail("%s: mode %o", DICOM_MBOX_DEV, mb.st_mode);
	if (!S_ISCHR(rl.st_mode) || (rl.st_mode & 0777) != 0600)
		return fail("%s: mode %o", DICOM_RELAY_DEV, rl.st_mode);
	return 0;
}

static void fill(unsigned char *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 31 + seed);
}

/* Receives three messages of different sizes, then answers the parent. */
static int echo_peer(int fd, int go, void *arg)
{
	static const size_t sizes[] = { 1, 100, 4000 };
	unsigned char want[4000], got[8192];
	size_t i;
	ssize_t n;

	(void)go;
	(void)arg;
	for (i = 0; i < 3; i++) {
		n = read(fd, got, sizeof(got));
		fill(want, sizes[i], i);
		if (n != (ssize_t)sizes[i] || memcmp(got, want, sizes[i]))
			return fail("message %zu: %zd bytes, want %zu", i, n,
				    sizes[i]);
	}
	return mbox_send(fd, 0, getppid(), "pong", 4) ? fail("pong") : 0;
}

static int test_send_receive(void)
{
	unsigned char buf[4000];
	struct dicom_mbox_addr to;
	struct peer p;
	int fd = mbox_open();

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (peer_start(&p, echo_peer, NULL))
		return -1;
	fill(buf, 1, 0);
	if (mbox_send(fd, 0, p.pid, buf, 1))
		return fail("send 1 byte: %s", strerror(errno));
	fill(buf, 100, 1);
	if (mbox_send(fd, 0, p.pid, buf, 100))
		return fail("send 100 bytes: %s", strerror(errno));
	/* The third goes through write() to a fixed destination. */
	to.home = 0;
	to.pid = p.pid;
	if (ioctl(fd, DICOM_MBOX_IOC_SET_DEST, &to))
		return fail("SET_DEST: %s", strerror(errno));
	fill(buf, 4000, 2);
	if (write(fd, buf, 4000) != 4000)
		return fail("write 4000 bytes: %s", strerror(errno));
	if (expect_msg(fd, "pong", "reply"))
		return -1;
	return peer_wait(&p);
}

static int test_whole_messages(void)
{
	struct dicom_mbox_info info;
	char buf[64];
	int fd = mbox_open();

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (mbox_send(fd, 0, getpid(), "first message", 13) ||
	    mbox_send(fd, 0, getpid(), "second", 6))
		return fail("send: %s", strerror(errno));
	if (expect_errno(read(fd, buf, 5), EMSGSIZE, "read into 5 bytes"))
		return -1;
	if (expect_errno(mbox_recv(fd, buf, 5, 0, &info), EMSGSIZE,
			 "RECV into 5 bytes"))
		return -1;
	if (info.len != 13 || info.msgno != 1)
		return fail("RECV reported len %u msgno %u, want 13 and 1",
			    info.len, info.msgno);
	/* A large buffer still gets only the first message. */
	if (expect_msg(fd, "first message", "first"))
		return -1;
	if (mbox_recv(fd, buf, sizeof(buf), 0, &info))
		return fail("RECV: %s", strerror(errno));
	if (info.len != 6 || memcmp(buf, "second", 6) || info.msgno != 2)
		return fail("second message: len %u msgno %u", info.len,
			    info.msgno);
	return expect_empty(fd, "empty afterwards");
}

/* Closes its only file when told to, then waits to be reaped. */
static int closing_peer(int fd, int go, void *arg)
{
	(void)arg;
	if (wait_go(go))
		return fail("no go");
	close(fd);
	/* Stay alive, so the pid stays taken, until the test is done. */
	wait_go(go);
	return 0;
}

static int test_one_mailbox_per_process(void)
{
	struct dicom_mbox_stats before, after;
	struct peer p;
	int fd1 = mbox_open(), fd2, i;

	if (fd1 < 0 || mbox_stats(fd1, &before))
		return fail("open: %s", strerror(errno));
	fd2 = mbox_open();
	if (fd2 < 0 || mbox_stats(fd2, &after))
		return fail("second open: %s", strerror(errno));
	if (after.mailboxes != before.mailboxes)
		return fail("a second file made a second mailbox (%u -> %u)",
			    before.mailboxes, after.mailboxes);
	if (send_self(fd1, "shared") || expect_msg(fd2, "shared", "through the other file"))
		return -1;
	close(fd2);
	if (send_self(fd1, "still here") || expect_msg(fd1, "still here", "after one close"))
		return -1;
	if (peer_start(&p, closing_peer, NULL))
		return -1;
	if (mbox_send(fd1, 0, p.pid, "hi", 2))
		return fail("send to peer: %s", strerror(errno));
	peer_go(&p);
	/* The peer closes asynchronously; give it up to 10 s on a slow guest. */
	for (i = 0; i < 1000 && !mbox_send(fd1, 0, p.pid, "hi", 2); i++)
		usleep(10 * 1000);
	if (expect_errno(mbox_send(fd1, 0, p.pid, "hi", 2), ESRCH,
			 "send after the owner closed its last file"))
		return -1;
	return peer_wait(&p);
}

/* Sends one message to the parent as user nobody. */
static int nobody_peer(int fd, int go, void *arg)
{
	(void)arg;
	if (wait_go(go))
		return fail("no go");
	if (setgid(NOBODY) || setuid(NOBODY))
		return fail("setuid: %s", strerror(errno));
	return mbox_send(fd, 0, getppid(), "from nobody", 11) ?
		fail("send: %s", strerror(errno)) : 0;
}

static int test_sender_identity(void)
{
	struct dicom_mbox_stats st;
	struct dicom_mbox_info info, last;
	char buf[64];
	struct peer p;
	int fd = mbox_open();

	if (fd < 0 || mbox_stats(fd, &st))
		return fail("open: %s", strerror(errno));
	if (getuid() != 0)
		return skip("needs root to become another user");
	if (peer_start(&p, nobody_peer, NULL))
		return -1;
	peer_go(&p);
	if (peer_wait(&p))
		return -1;
	if (mbox_recv(fd, buf, sizeof(buf), 0, &info))
		return fail("RECV: %s", strerror(errno));
	if (info.from.pid != p.pid || info.uid != NOBODY ||
	    info.from.home != st.home || info.flags)
		return fail("stamped pid %d uid %u home %08x flags %u, want %d %u %08x 0",
			    info.from.pid, info.uid, info.from.home, info.flags,
			    p.pid, NOBODY, st.home);
	/* A message to oneself carries one's own identity. */
	if (mbox_send(fd, 0, getpid(), "self", 4) || expect_msg(fd, "self", "self"))
		return -1;
	if (ioctl(fd, DICOM_MBOX_IOC_LAST_INFO, &last))
		return fail("LAST_INFO: %s", strerror(errno));
	if (last.from.pid != getpid() || last.uid != getuid() || last.msgno != 2)
		return fail("LAST_INFO pid %d uid %u msgno %u", last.from.pid,
			    last.uid, last.msgno);
	return 0;
}

/* Sends "<tag>-0" and "<tag>-1" to the parent when told to. */
static int tagged_peer(int fd, int go, void *arg)
{
	const char *tag = arg;
	char msg[32];
	int i;

	if (wait_go(go))
		return fail("no go");
	for (i = 0; i < 2; i++) {
		snprintf(msg, sizeof(msg), "%s-%d", tag, i);
		if (mbox_send(fd, 0, getppid(), msg, strlen(msg)))
			return fail("send: %s", strerror(errno));
	}
	return 0;
}

static int test_filter_sender(void)
{
	struct dicom_mbox_filter f = { 0 };
	struct peer a, b;
	int fd = mbox_open();

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (peer_start(&a, tagged_peer, "a") || peer_start(&b, tagged_peer, "b"))
		return -1;
	peer_go(&a);
	if (peer_wait(&a))
		return -1;
	peer_go(&b);
	if (peer_wait(&b))
		return -1;
	f.flags = DICOM_MBOX_F_PID;
	f.pid = b.pid;
	if (mbox_filter(fd, &f))
		return fail("SET_FILTER pid: %s", strerror(errno));
	if (expect_msg(fd, "b-0", "pid filter") ||
	    expect_msg(fd, "b-1", "pid filter") ||
	    expect_empty(fd, "pid filter exhausted"))
		return -1;
	f.flags = DICOM_MBOX_F_HOME;
	f.home = htonl(0x01020304);
	if (mbox_filter(fd, &f) || expect_empty(fd, "foreign home filter"))
		return -1;
	f.flags = DICOM_MBOX_F_UID | DICOM_MBOX_F_PID;
	f.uid = getuid() + 1;
	f.pid = a.pid;
	if (mbox_filter(fd, &f) || expect_empty(fd, "other uid filter"))
		return -1;
	f.uid = getuid();
	if (mbox_filter(fd, &f) || expect_msg(fd, "a-0", "uid+pid filter"))
		return -1;
	if (mbox_clear_filter(fd) || expect_msg(fd, "a-1", "no filter"))
		return -1;
	return expect_empty(fd, "all read");
}

static int send_self_len(int fd, size_t len, char c)
{
	char buf[4096];

	memset(buf, c, len);
	if (mbox_send(fd, 0, getpid(), buf, len))
		return fail("send %zu bytes: %s", len, strerror(errno));
	return 0;
}

static int expect_len(int fd, size_t want, const char *what)
{
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n != (ssize_t)want)
		return fail("%s: %zd bytes (%s), want %zu", what, n,
			    n < 0 ? strerror(errno) : "ok", want);
	return 0;
}

static int test_filter_length(void)
{
	struct dicom_mbox_filter f = { 0 };
	int fd = mbox_open();

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (send_self_len(fd, 10, 'a') || send_self_len(fd, 200, 'b') ||
	    send_self_len(fd, 3000, 'c'))
		return -1;
	f.flags = DICOM_MBOX_F_MINLEN | DICOM_MBOX_F_MAXLEN;
	f.min_len = 100;
	f.max_len = 1000;
	if (mbox_filter(fd, &f) || expect_len(fd, 200, "100..1000"))
		return -1;
	if (expect_empty(fd, "100..1000 again"))
		return -1;
	f.flags = DICOM_MBOX_F_MINLEN;
	f.min_len = 1000;
	if (mbox_filter(fd, &f) || expect_len(fd, 3000, ">= 1000"))
		return -1;
	f.flags = DICOM_MBOX_F_MAXLEN;
	f.max_len = 10;
	if (mbox_filter(fd, &f) || expect_len(fd, 10, "<= 10"))
		return -1;
	return 0;
}

static int test_filter_pattern(void)
{
	struct dicom_mbox_filter f = { 0 };
	int fd = mbox_open();

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (send_self(fd, "tag:red:1") || send_self(fd, "tag:blue:2") ||
	    send_self(fd, "tag:red:3") || send_self(fd, "tag"))
		return -1;
	f.flags = DICOM_MBOX_F_PATTERN;
	f.pattern_offset = 4;
	f.pattern_len = 4;
	memcpy(f.pattern, "blue", 4);
	if (mbox_filter(fd, &f) || expect_msg(fd, "tag:blue:2", "blue"))
		return -1;
	memcpy(f.pattern, "red:", 4);
	if (mbox_filter(fd, &f) || expect_msg(fd, "tag:red:1", "red") ||
	    expect_msg(fd, "tag:red:3", "red again") ||
	    expect_empty(fd, "no more red"))
		return -1;
	/* A pattern past the end of a message never matches it. */
	f.pattern_offset = 3;
	f.pattern_len = 1;
	memcpy(f.pattern, "", 1);
	if (mbox_filter(fd, &f) || expect_empty(fd, "pattern past the end"))
		return -1;
	return mbox_clear_filter(fd) || expect_msg(fd, "tag", "rest");
}

static int test_filter_msgno(void)
{
	struct dicom_mbox_filter f = { 0 };
	struct dicom_mbox_info info;
	char msg[8];
	int fd = mbox_open(), i;

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	for (i = 1; i <= 5; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		if (send_self(fd, msg))
			return -1;
	}
	f.flags = DICOM_MBOX_F_MSGNO;
	f.msgno = 4;
	if (mbox_filter(fd, &f) || expect_msg(fd, "m4", "msgno 4"))
		return -1;
	if (ioctl(fd, DICOM_MBOX_IOC_LAST_INFO, &info) || info.msgno != 4)
		return fail("LAST_INFO msgno %u, want 4", info.msgno);
	if (expect_empty(fd, "msgno 4 taken"))
		return -1;
	f.msgno = 2;
	if (mbox_filter(fd, &f) || expect_msg(fd, "m2", "msgno 2"))
		return -1;
	if (mbox_clear_filter(fd) || expect_msg(fd, "m1", "m1") ||
	    expect_msg(fd, "m3", "m3") || expect_msg(fd, "m5", "m5"))
		return -1;
	return 0;
}

static int test_filter_peek(void)
{
	struct dicom_mbox_filter f = { 0 };
	struct dicom_mbox_stats st;
	struct dicom_mbox_info info;
	char buf[32];
	int fd = mbox_open();

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (send_self(fd, "one") || send_self(fd, "two"))
		return -1;
	f.flags = DICOM_MBOX_F_PEEK;
	if (mbox_filter(fd, &f) || expect_msg(fd, "one", "peek") ||
	    expect_msg(fd, "one", "peek again"))
		return -1;
	if (mbox_stats(fd, &st) || st.pending != 2)
		return fail("pending %u after peeks, want 2", st.pending);
	if (mbox_clear_filter(fd))
		return fail("clear filter");
	if (mbox_recv(fd, buf, sizeof(buf), DICOM_MBOX_RECV_PEEK, &info) ||
	    info.len != 3 || info.msgno != 1)
		return fail("RECV_PEEK: len %u msgno %u", info.len, info.msgno);
	if (expect_msg(fd, "one", "consume") || expect_msg(fd, "two", "next"))
		return -1;
	if (mbox_stats(fd, &st) || st.pending != 0)
		return fail("pending %u at the end", st.pending);
	return 0;
}

/* poll() for @events; POLLERR and POLLHUP are always reported. */
static int poll_for(int fd, short events, int timeout_ms, short *revents)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n = poll(&pfd, 1, timeout_ms);

	*revents = pfd.revents;
	return n;
}

/* Sends "late" to the parent after a pause the parent spends blocked. */
static int late_peer(int fd, int go, void *arg)
{
	(void)arg;
	if (wait_go(go))
		return fail("no go");
	usleep(200 * 1000);
	if (mbox_send(fd, 0, getppid(), "late", 4))
		return fail("send: %s", strerror(errno));
	if (wait_go(go))
		return fail("no second go");
	usleep(200 * 1000);
	return mbox_send(fd, 0, getppid(), "later", 5) ? fail("send 2") : 0;
}

static int test_poll(void)
{
	struct dicom_mbox_filter f = { 0 };
	struct timespec t0, t1;
	struct peer p;
	short ev;
	int fd = mbox_open();

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (poll_for(fd, POLLIN | POLLOUT, 0, &ev) != 1 || (ev & POLLIN) || !(ev & POLLOUT))
		return fail("empty mailbox: revents 0x%x", ev);
	if (send_self(fd, "x"))
		return -1;
	if (poll_for(fd, POLLIN | POLLOUT, 0, &ev) != 1 || !(ev & POLLIN))
		return fail("one message: revents 0x%x", ev);
	f.flags = DICOM_MBOX_F_MINLEN;
	f.min_len = 2;
	if (mbox_filter(fd, &f))
		return fail("filter");
	if (poll_for(fd, POLLIN | POLLOUT, 0, &ev) != 1 || (ev & POLLIN))
		return fail("no matching message: revents 0x%x", ev);
	if (mbox_clear_filter(fd) || expect_msg(fd, "x", "x"))
		return -1;
	if (peer_start(&p, late_peer, NULL))
		return -1;
	peer_go(&p);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (poll_for(fd, POLLIN, 10000, &ev) != 1 || !(ev & POLLIN))
		return fail("blocking poll: revents 0x%x", ev);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (t1.tv_sec - t0.tv_sec > 8)
		return fail("poll woke only after %lds", (long)(t1.tv_sec - t0.tv_sec));
	if (expect_msg(fd, "late", "late"))
		return -1;
	/* A blocking read is woken the same way. */
	peer_go(&p);
	if (expect_msg(fd, "later", "blocking read"))
		return -1;
	return peer_wait(&p) || expect_empty(fd, "nonblocking read");
}

static int test_permissions(void)
{
	struct dicom_mbox_info info;
	struct dicom_mbox_stats st;
	char buf[32];
	pid_t child;
	short ev;
	int fd = mbox_open(), status;

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (send_self(fd, "private"))
		return -1;
	child = fork();
	if (child == 0) {
		/* The inherited file still names the parent's mailbox. */
		int own;

		if (expect_errno(read(fd, buf, sizeof(buf)), EPERM, "child read"))
			_exit(1);
		if (expect_errno(mbox_recv(fd, buf, sizeof(buf), DICOM_MBOX_RECV_PEEK, &info),
				 EPERM, "child RECV_PEEK"))
			_exit(1);
		if (poll_for(fd, POLLIN, 0, &ev) != 1 || (ev & POLLIN) || !(ev & POLLERR)) {
			fail("child poll: revents 0x%x", ev);
			_exit(1);
		}
		own = mbox_open();
		if (own < 0 || mbox_stats(own, &st) || st.pending != 0) {
			fail("child's own mailbox is not empty");
			_exit(1);
		}
		if (getuid() == 0) {
			if (setgid(NOBODY) || setuid(NOBODY)) {
				fail("setuid: %s", strerror(errno));
				_exit(1);
			}
			if (expect_errno(open(DICOM_RELAY_DEV, O_RDWR), EACCES,
					 "relay as nobody"))
				_exit(1);
		}
		_exit(0);
	}
	if (child < 0 || waitpid(child, &status, 0) != child)
		return fail("fork/wait: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	return expect_msg(fd, "private", "owner still reads");
}

/* A page the kernel cannot copy to. */
static void *inaccessible(void)
{
	return mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/* A pid that belonged to a process that has exited. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

static int test_bad_arguments(void)
{
	struct dicom_mbox_filter f = { 0 };
	struct dicom_mbox_stats st;
	struct dicom_mbox_addr to = { 0 };
	struct dicom_mbox_send s = { 0 };
	struct dicom_mbox_recv r = { 0 };
	char buf[16];
	int fd = mbox_open();

	if (fd < 0 || mbox_stats(fd, &st))
		return fail("open: %s", strerror(errno));
	if (expect_errno(ioctl(fd, _IO(DICOM_MBOX_IOC_MAGIC, 0x7f)), ENOTTY,
			 "unknown ioctl") ||
	    expect_errno(ioctl(fd, _IOW('x', 0, struct dicom_mbox_send), &s),
			 ENOTTY, "foreign ioctl") ||
	    expect_errno(ioctl(fd, DICOM_RELAY_IOC_SET_HOME, &to), ENOTTY,
			 "relay ioctl on a mailbox"))
		return -1;
	if (expect_errno(mbox_send(fd, 0, 0, "x", 1), EINVAL, "pid 0") ||
	    expect_errno(mbox_send(fd, 0, -5, "x", 1), EINVAL, "pid -5") ||
	    expect_errno(mbox_send(fd, 0, getpid(), "x", 0), EINVAL, "empty") ||
	    expect_errno(mbox_send(fd, 0, getpid(), NULL, 10), EFAULT, "NULL buffer") ||
	    expect_errno(mbox_send(fd, 0, dead_pid(), "x", 1), ESRCH, "dead pid") ||
	    expect_errno(mbox_send(fd, 0, getppid(), "x", 1), ESRCH,
			 "process without a mailbox"))
		return -1;
	s.to.pid = getpid();
	s.buf = (uintptr_t)"x";
	s.len = 1;
	s.flags = 1;
	if (expect_errno(ioctl(fd, DICOM_MBOX_IOC_SEND, &s), EINVAL, "send flags") ||
	    expect_errno(ioctl(fd, DICOM_MBOX_IOC_SEND, NULL), EFAULT, "send NULL arg") ||
	    expect_errno(ioctl(fd, DICOM_MBOX_IOC_STATS, (void *)8), EFAULT, "stats bad arg"))
		return -1;
	f.flags = 1U << 30;
	if (expect_errno(mbox_filter(fd, &f), EINVAL, "unknown filter flag"))
		return -1;
	f.flags = DICOM_MBOX_F_PATTERN;
	f.pattern_len = DICOM_MBOX_PATTERN_MAX + 1;
	if (expect_errno(mbox_filter(fd, &f), EINVAL, "pattern too long"))
		return -1;
	f.pattern_len = 0;
	if (expect_errno(mbox_filter(fd, &f), EINVAL, "empty pattern"))
		return -1;
	f.flags = DICOM_MBOX_F_MINLEN | DICOM_MBOX_F_MAXLEN;
	f.min_len = 10;
	f.max_len = 5;
	if (expect_errno(mbox_filter(fd, &f), EINVAL, "min_len > max_len"))
		return -1;
	memset(&f, 0, sizeof(f));
	f.reserved = 1;
	if (expect_errno(mbox_filter(fd, &f), EINVAL, "reserved filter field") ||
	    expect_errno(mbox_filter(fd, NULL), EFAULT, "NULL filter"))
		return -1;
	if (expect_errno(write(fd, "x", 1), EDESTADDRREQ, "write without dest") ||
	    expect_errno(ioctl(fd, DICOM_MBOX_IOC_SET_DEST, &to), EINVAL, "dest pid 0"))
		return -1;
	r.buf = (uintptr_t)buf;
	r.buf_len = sizeof(buf);
	r.flags = 2;
	if (expect_errno(ioctl(fd, DICOM_MBOX_IOC_RECV, &r), EINVAL, "RECV flags"))
		return -1;
	if (send_self(fd, "y"))
		return -1;
	if (expect_errno(read(fd, inaccessible(), 16), EFAULT, "read into PROT_NONE"))
		return -1;
	/* The message survives the failed copy. */
	if (expect_msg(fd, "y", "after EFAULT"))
		return -1;
	if (!st.relay_attached &&
	    expect_errno(mbox_send(fd, htonl(0x0a4d0063), 1, "x", 1), EHOSTUNREACH,
			 "remote home without a relay"))
		return -1;
	return 0;
}

static int test_many_messages(void)
{
	struct dicom_mbox_stats st;
	struct dicom_mbox_info info;
	unsigned int i, n;
	char msg[32], buf[32];
	int fd = mbox_open();

	if (fd < 0 || mbox_stats(fd, &st))
		return fail("open: %s", strerror(errno));
	n = st.queue_max;
	for (i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "message %u", i);
		if (mbox_send(fd, 0, getpid(), msg, strlen(msg)))
			return fail("send %u of %u: %s", i, n, strerror(errno));
	}
	if (expect_errno(mbox_send(fd, 0, getpid(), "over", 4), EAGAIN,
			 "send to a full mailbox"))
		return -1;
	if (mbox_stats(fd, &st) || st.pending != n)
		return fail("pending %u, want %u", st.pending, n);
	for (i = 0; i < n; i++) {
		int len = mbox_recv(fd, buf, sizeof(buf), 0, &info);

		snprintf(msg, sizeof(msg), "message %u", i);
		if (len < 0 || info.len != strlen(msg) || memcmp(buf, msg, info.len) ||
		    info.msgno != i + 1)
			return fail("message %u: len %u msgno %u", i, info.len,
				    info.msgno);
	}
	return expect_empty(fd, "drained");
}

#define STORM_PEERS	4
#define STORM_EACH	500

/* Sends STORM_EACH numbered messages to the parent, as fast as it can. */
static int storm_peer(int fd, int go, void *arg)
{
	int id = *(int *)arg, i;
	char msg[32];

	if (wait_go(go))
		return fail("no go");
	for (i = 0; i < STORM_EACH; i++) {
		snprintf(msg, sizeof(msg), "%d:%d", id, i);
		if (mbox_send(fd, 0, getppid(), msg, strlen(msg)))
			return fail("peer %d send %d: %s", id, i, strerror(errno));
	}
	return 0;
}

static int test_concurrent_senders(void)
{
	int ids[STORM_PEERS], next[STORM_PEERS] = { 0 };
	struct peer p[STORM_PEERS];
	struct dicom_mbox_info info;
	unsigned int last = 0;
	int fd = mbox_open(), i, id, seq;
	char buf[32];

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	for (i = 0; i < STORM_PEERS; i++) {
		ids[i] = i;
		if (peer_start(&p[i], storm_peer, &ids[i]))
			return -1;
	}
	for (i = 0; i < STORM_PEERS; i++)
		peer_go(&p[i]);
	/* Read while they send: every sender's messages arrive once, in order. */
	for (i = 0; i < STORM_PEERS * STORM_EACH; i++) {
		int n = mbox_recv(fd, buf, sizeof(buf) - 1, 0, &info);

		if (n < 0)
			return fail("receive %d: %s", i, strerror(errno));
		buf[info.len] = 0;
		if (sscanf(buf, "%d:%d", &id, &seq) != 2 || id < 0 || id >= STORM_PEERS)
			return fail("message %d: \"%s\"", i, buf);
		if (seq != next[id] || info.from.pid != p[id].pid)
			return fail("peer %d: got %d from pid %d, want %d from %d", id, seq,
				    info.from.pid, next[id], p[id].pid);
		if (info.msgno <= last)
			return fail("message numbers went from %u to %u", last, info.msgno);
		last = info.msgno;
		next[id]++;
	}
	for (i = 0; i < STORM_PEERS; i++)
		if (peer_wait(&p[i]))
			return -1;
	return expect_empty(fd, "nothing extra");
}

static int test_oversized(void)
{
	struct dicom_mbox_stats st;
	unsigned char *big;
	ssize_t n;
	int fd = mbox_open();

	if (fd < 0 || mbox_stats(fd, &st))
		return fail("open: %s", strerror(errno));
	big = malloc(DICOM_MBOX_MSG_MAX + 2);
	if (!big)
		return fail("malloc");
	fill(big, st.msg_max, 7);
	if (expect_errno(mbox_send(fd, 0, getpid(), big, st.msg_max + 1), EMSGSIZE,
			 "msg_max + 1") ||
	    expect_errno(mbox_send(fd, 0, getpid(), big, DICOM_MBOX_MSG_MAX + 1),
			 EMSGSIZE, "DICOM_MBOX_MSG_MAX + 1"))
		return -1;
	if (mbox_send(fd, 0, getpid(), big, st.msg_max))
		return fail("send msg_max bytes: %s", strerror(errno));
	memset(big, 0, st.msg_max);
	n = read(fd, big, st.msg_max + 1);
	if (n != (ssize_t)st.msg_max)
		return fail("read %zd bytes, want %u", n, st.msg_max);
	n = st.msg_max;
	while (n--)
		if (big[n] != (unsigned char)(n * 31 + 7))
			return fail("byte %zd differs", n);
	return expect_empty(fd, "nothing else queued");
}

static int relay_write(int relay, const struct dicom_relay_hdr *h,
		       const void *payload, size_t len)
{
	char buf[sizeof(*h) + 256];

	memcpy(buf, h, sizeof(*h));
	memcpy(buf + sizeof(*h), payload, len);
	return write(relay, buf, sizeof(*h) + len);
}

static int relay_inbound(int relay, int fd, unsigned int home)
{
	struct dicom_relay_hdr h = {
		.len = 5,
		.from = { .home = htonl(0x0a4d0002), .pid = 4321 },
		.to = { .home = home, .pid = getpid() },
		.uid = 1000,
	};
	struct dicom_mbox_info info;
	char buf[16];

	if (relay_write(relay, &h, "hello", 5) != (int)sizeof(h) + 5)
		return fail("relay write: %s", strerror(errno));
	if (mbox_recv(fd, buf, sizeof(buf), 0, &info) || memcmp(buf, "hello", 5))
		return fail("relayed message not received: %s", strerror(errno));
	if (info.from.home != h.from.home || info.from.pid != 4321 ||
	    info.uid != 1000 || info.flags != DICOM_MBOX_INFO_RELAYED)
		return fail("relayed identity %08x/%d uid %u flags %u",
			    info.from.home, info.from.pid, info.uid, info.flags);
	h.len = 4;
	if (expect_errno(relay_write(relay, &h, "hello", 5), EINVAL, "length mismatch"))
		return -1;
	h.len = 5;
	h.reserved = 1;
	if (expect_errno(relay_write(relay, &h, "hello", 5), EINVAL, "reserved"))
		return -1;
	h.reserved = 0;
	h.to.home = htonl(0x0a4d0009);
	if (expect_errno(relay_write(relay, &h, "hello", 5), EADDRNOTAVAIL,
			 "inbound for another node"))
		return -1;
	h.to.home = home;
	h.from.home = 0;
	if (expect_errno(relay_write(relay, &h, "hello", 5), EINVAL, "sender without home"))
		return -1;
	h.from.home = htonl(0x0a4d0002);
	h.to.pid = dead_pid();
	if (expect_errno(relay_write(relay, &h, "hello", 5), ESRCH, "no such mailbox"))
		return -1;
	return expect_errno(write(relay, &h, 3), EINVAL, "short record");
}

static int relay_outbound(int relay, int fd, unsigned int home)
{
	const unsigned int remote = htonl(0x0a4d0002);
	struct dicom_relay_hdr h;
	char rec[sizeof(h) + 64];
	short ev;
	ssize_t n;

	if (poll_for(relay, POLLIN | POLLOUT, 0, &ev) != 1 || (ev & POLLIN))
		return fail("idle relay: revents 0x%x", ev);
	if (mbox_send(fd, remote, 1234, "to n2", 5))
		return fail("send to a remote home: %s", strerror(errno));
	if (poll_for(relay, POLLIN | POLLOUT, 0, &ev) != 1 || !(ev & POLLIN))
		return fail("relay with a record: revents 0x%x", ev);
	if (expect_errno(read(relay, rec, sizeof(h) + 2), EMSGSIZE, "small relay read"))
		return -1;
	n = read(relay, rec, sizeof(rec));
	if (n != (ssize_t)sizeof(h) + 5)
		return fail("relay read %zd bytes: %s", n, strerror(errno));
	memcpy(&h, rec, sizeof(h));
	if (h.len != 5 || h.from.home != home || h.from.pid != getpid() ||
	    h.to.home != remote || h.to.pid != 1234 || h.uid != getuid() ||
	    memcmp(rec + sizeof(h), "to n2", 5))
		return fail("outbound record: len %u from %08x/%d to %08x/%d uid %u",
			    h.len, h.from.home, h.from.pid, h.to.home, h.to.pid, h.uid);
	/* The node's own home address is local delivery. */
	if (mbox_send(fd, home, getpid(), "local", 5) || expect_msg(fd, "local", "own home"))
		return -1;
	return 0;
}

static int test_relay(void)
{
	const unsigned int home = htonl(0x0a4d0001);
	struct dicom_mbox_stats st;
	unsigned int zero = 0;
	int fd = mbox_open(), relay, ret;

	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (getuid() != 0)
		return skip("needs CAP_NET_ADMIN");
	relay = open(DICOM_RELAY_DEV, O_RDWR | O_CLOEXEC);
	if (relay < 0) {
		if (errno == EBUSY)
			return skip("a relay (dicomd) is attached");
		return fail("open relay: %s", strerror(errno));
	}
	if (expect_errno(open(DICOM_RELAY_DEV, O_RDWR), EBUSY, "second relay"))
		return -1;
	if (ioctl(relay, DICOM_RELAY_IOC_SET_HOME, &home))
		return fail("SET_HOME: %s", strerror(errno));
	if (mbox_stats(fd, &st) || st.home != home || !st.relay_attached)
		return fail("stats: home %08x attached %u", st.home, st.relay_attached);
	ret = relay_outbound(relay, fd, home);
	if (!ret)
		ret = relay_inbound(relay, fd, home);
	if (!ret)
		ret = relay_inbound(relay, fd, 0);
	if (ret)
		return ret;
	/* Records still queued when dicomd goes away are dropped. */
	if (mbox_send(fd, htonl(0x0a4d0003), 99, "lost", 4))
		return fail("send before detach: %s", strerror(errno));
	if (ioctl(relay, DICOM_RELAY_IOC_SET_HOME, &zero))
		return fail("SET_HOME 0: %s", strerror(errno));
	close(relay);
	if (mbox_stats(fd, &st) || st.relay_attached || st.relay_pending)
		return fail("after detach: attached %u pending %u",
			    st.relay_attached, st.relay_pending);
	return expect_errno(mbox_send(fd, htonl(0x0a4d0003), 99, "x", 1),
			    EHOSTUNREACH, "remote home after detach");
}

static bool module_listed(void)
{
	char line[256];
	bool found = false;
	FILE *f = fopen("/proc/modules", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, MODULE_NAME " ", strlen(MODULE_NAME) + 1))
			found = true;
	fclose(f);
	return found;
}

/* Fails if the kernel log holds a warning, an oops or a leak report. */
static int kernel_log_clean(void)
{
	static const char * const bad[] = {
		"WARNING:", "BUG:", "Oops", "Call Trace", "leaked",
	};
	char rec[2048];
	ssize_t n;
	size_t i;

	if (kmsg_fd < 0)
		return fail("/dev/kmsg was not readable at the start");
	for (;;) {
		n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		for (i = 0; i < ARRAY_SIZE(bad); i++)
			if (strstr(rec, bad[i]))
				return fail("kernel log: %s", rec);
	}
	return 0;
}

/* Blocks in read() with a filter nothing matches, until killed. */
static int stuck_peer(int fd, int go, void *arg)
{
	struct dicom_mbox_filter f = { .flags = DICOM_MBOX_F_MSGNO, .msgno = 1000000 };
	char buf[64];

	(void)go;
	(void)arg;
	if (mbox_filter(fd, &f))
		return fail("filter");
	return read(fd, buf, sizeof(buf)) >= 0 ? fail("read returned") : 0;
}

static int test_unload(void)
{
	struct dicom_mbox_stats st;
	struct peer p;
	int fd, i, status;

	if (!unload_requested)
		return skip("run with -u to unload the module");
	if (getuid() != 0)
		return skip("needs root");
	fd = mbox_open();
	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (peer_start(&p, stuck_peer, NULL))
		return -1;
	for (i = 0; i < 100; i++)
		if (mbox_send(fd, 0, p.pid, "queued", 6))
			return fail("send %d: %s", i, strerror(errno));
	if (send_self(fd, "mine too"))
		return -1;
	if (mbox_stats(fd, &st) || st.messages < 101 || st.mailboxes < 2)
		return fail("stats: %u messages in %u mailboxes", st.messages,
			    st.mailboxes);
	if (waitpid(p.pid, &status, WNOHANG) != 0)
		return fail("the blocked reader returned");
	if (expect_errno(syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK),
			 EWOULDBLOCK, "unload while in use"))
		return -1;
	kill(p.pid, SIGKILL);
	waitpid(p.pid, &status, 0);
	close(p.go);
	close(p.ready);
	close(fd);
	if (syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK))
		return fail("unload: %s", strerror(errno));
	if (module_listed() || access(DICOM_MBOX_DEV, F_OK) == 0)
		return fail("module or device node still present");
	return kernel_log_clean();
}

struct test {
	const char *name;
	int (*fn)(void);
};

static const struct test tests[] = {
	{ "device nodes exist with their modes", test_device_nodes },
	{ "send and receive between processes", test_send_receive },
	{ "whole-message reads", test_whole_messages },
	{ "one mailbox per process, freed with its last file", test_one_mailbox_per_process },
	{ "sender identity stamped by the kernel", test_sender_identity },
	{ "filter by sender pid, home and uid", test_filter_sender },
	{ "filter by length", test_filter_length },
	{ "filter by pattern", test_filter_pattern },
	{ "filter by message number", test_filter_msgno },
	{ "peek leaves messages queued", test_filter_peek },
	{ "poll and blocking reads", test_poll },
	{ "permissions: another process cannot read a mailbox", test_permissions },
	{ "bad ioctls and bad arguments fail", test_bad_arguments },
	{ "many queued messages, then a full mailbox", test_many_messages },
	{ "concurrent senders: each sender's messages once and in order", test_concurrent_senders },
	{ "oversized messages are rejected", test_oversized },
	{ "relay: remote delivery through dicomd's channel", test_relay },
	{ "module unloads cleanly with messages queued", test_unload },
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Runs one test in a child; returns 0 ok, 1 failed, 2 skipped. */
static int run_one(const struct test *t, char *why, size_t whylen)
{
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	why[0] = 0;
	if (pipe(pipefd)) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		report_fd = pipefd[1];
		alarm(TEST_SECONDS);
		_exit(t->fn() ? 1 : 0);
	}
	close(pipefd[1]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(pipefd[0]);
		return 1;
	}
	/* Peers of a failed test may still hold the pipe: do not wait for EOF. */
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	n = read(pipefd[0], why, whylen - 1);
	why[n > 0 ? n : 0] = 0;
	close(pipefd[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_EXIT)
		return 2;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status) && !why[0])
		snprintf(why, whylen, "killed by signal %d", WTERMSIG(status));
	return 1;
}

int main(int argc, char **argv)
{
	size_t i, count = ARRAY_SIZE(tests);
	int opt, failed = 0;
	struct timespec t0;
	char why[512];

	while ((opt = getopt(argc, argv, "u")) != -1) {
		if (opt != 'u') {
			fprintf(stderr, "usage: %s [-u]\n", argv[0]);
			return 2;
		}
		unload_requested = true;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
	printf("TAP version 13\n1..%zu\n", count);
	if (access(DICOM_MBOX_DEV, F_OK)) {
		printf("Bail out! %s: %s (is dicom_mbox loaded?)\n", DICOM_MBOX_DEV,
		       strerror(errno));
		return 1;
	}
	for (i = 0; i < count; i++) {
		int res;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		res = run_one(&tests[i], why, sizeof(why));
		if (res == 2)
			printf("ok %zu - %s # SKIP %s\n", i + 1, tests[i].name, why);
		else
			printf("%sok %zu - %s # time=%.3fs\n", res ? "not " : "",
			       i + 1, tests[i].name, seconds_since(&t0));
		if (res == 1) {
			printf("# %s\n", why[0] ? why : "failed without a reason");
			failed++;
		}
	}
	return failed ? 1 : 0;
}
