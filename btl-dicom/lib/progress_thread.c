/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The DiCOM progress thread.  It exists so that the daemon's control
 * requests (PING, DETACH before a migration) are answered, and acks keep
 * flowing, while the application computes and does not call into MPI.
 * Messages it receives are held and handed to the application's callback
 * on its next dicom_progress: callbacks never run on this thread.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "ep_internal.h"
#include "sock.h"

static void *progress_main(void *arg)
{
	dicom_ep_t *ep = arg;
	for (;;) {
		pthread_mutex_lock(&ep->lock);
		int dfd = ep->dl.sock ? ep->dl.sock->fd : -1;
		pthread_mutex_unlock(&ep->lock);
		if (__atomic_load_n(&ep->stop, __ATOMIC_ACQUIRE))
			break;

		/* The daemon fd may be closed and its number reused while we
		 * wait; that only costs a spurious wakeup. */
		struct pollfd pf[2] = { { .fd = ep->wake.fd, .events = POLLIN },
					{ .fd = dfd, .events = POLLIN } };
		/* Detached, the thread watches closely for the restore. */
		int r = poll(pf, dfd >= 0 ? 2 : 1, ep->detached ? 1 : DICOM_THREAD_TICK_MS);
		if (r < 0 && errno != EINTR)
			break;
		if (__atomic_load_n(&ep->stop, __ATOMIC_ACQUIRE))
			break;

		pthread_mutex_lock(&ep->lock);
		int daemon_talks = dfd >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR));
		int app_idle = dicom_now_ns() - ep->last_app_progress >= DICOM_APP_IDLE_NS;
		if (ep->depth == 0 && (daemon_talks || app_idle || ep->detached)) {
			ep->depth++;
			dicom_ep_pass(ep, 0);
			ep->depth--;
		}
		pthread_mutex_unlock(&ep->lock);
	}
	return NULL;
}

int dicom_thread_start(dicom_ep_t *ep)
{
	/* Signals belong to the application's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&ep->thread, NULL, progress_main, ep);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		errno = r;
		return -1;
	}
	ep->thread_running = 1;
	return 0;
}

void dicom_thread_stop(dicom_ep_t *ep)
{
	__atomic_store_n(&ep->stop, 1, __ATOMIC_RELEASE);
	if (!ep->thread_running)
		return;
	uint64_t one = 1;
	if (write(ep->wake.fd, &one, sizeof(one)) < 0) {
		/* the thread still sees stop within one tick */
	}
	pthread_join(ep->thread, NULL);
	ep->thread_running = 0;
}
