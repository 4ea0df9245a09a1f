/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dicom-adopt COMMAND...: runs COMMAND (a `criu restore -d`) under a
 * parent that stays alive as long as what it restored, and reaps it.
 *
 * Why: a restored rank is orphaned when criu detaches, and an orphan goes to
 * the nearest child subreaper, else to PID 1, which on some machines never
 * reaps.  A dead rank left as a zombie keeps its PID, and moving it again
 * (which restores it with that PID) fails.  So a small subreaper adopts it.
 *
 * The caller sees COMMAND's exit status as ours; the subreaper detaches
 * into its own session and exits once it has no child left.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t command_pid;

static void stop_command(int sig)
{
	(void)sig;
	kill(command_pid, SIGKILL);
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: dicom-adopt COMMAND [ARGS...]\n");
		return 2;
	}
	int report[2];
	if (pipe(report) < 0) {
		perror("dicom-adopt: pipe");
		return 2;
	}
	pid_t keeper = fork();
	if (keeper < 0) {
		perror("dicom-adopt: fork");
		return 2;
	}
	if (keeper > 0) { /* the caller's side: wait for COMMAND's status */
		close(report[1]);
		pid_t cmd;
		if (read(report[0], &cmd, sizeof(cmd)) != sizeof(cmd))
			return 2;
		command_pid = cmd;
		/* Stopping us stops COMMAND: a caller that kills a restore
		 * half-way means it. */
		struct sigaction sa = { .sa_handler = stop_command };
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		unsigned char code = 1;
		ssize_t r;
		while ((r = read(report[0], &code, 1)) < 0 && errno == EINTR)
			;
		if (r != 1)
			code = 1;
		waitpid(keeper, NULL, WNOHANG);
		return code;
	}
	close(report[0]);
	pid_t caller = getppid();
	setsid();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("dicom-adopt: PR_SET_CHILD_SUBREAPER");
		_exit(2);
	}
	pid_t cmd = fork();
	if (cmd > 0 && write(report[1], &cmd, sizeof(cmd)) != sizeof(cmd))
		kill(cmd, SIGKILL);
	if (cmd == 0) {
		close(report[1]);
		execvp(argv[1], argv + 1);
		fprintf(stderr, "dicom-adopt: cannot execute %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	/* The caller may be killed before it learned COMMAND's PID: then
	 * the report pipe breaks, and COMMAND must not outlive it. */
	int st = 0;
	unsigned char code = 2;
	while (cmd > 0) {
		pid_t w = waitpid(cmd, &st, WNOHANG);
		if (w == cmd) {
			code = (unsigned char)status_code(st);
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
		if (getppid() != caller) {
			kill(cmd, SIGKILL);
			continue;
		}
		struct timespec tick = { 0, 10 * 1000 * 1000 };
		nanosleep(&tick, NULL);
	}
	if (write(report[1], &code, 1) != 1) {
		/* the caller is gone; keep reaping anyway */
	}
	close(report[1]);
	/* stdio belongs to the caller, which has moved on */
	freopen("/dev/null", "r", stdin);
	freopen("/dev/null", "w", stdout);
	freopen("/dev/null", "w", stderr);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	_exit(0);
}
