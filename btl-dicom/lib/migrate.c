/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The endpoint's side of a migration: the detached state between DETACH and
 * the moment the process runs again, and the timings the control plane
 * reads back through PING.
 *
 * How a detached endpoint knows it was restored: CRIU restores the rank as
 * a child of criu (then of init), never of the home stub that forked it, so
 * its parent changes.  That needs no socket, no signal and no file, none of
 * which could survive the dump.  The hold time is the fallback: if the dump
 * never happens (CRIU failed before freezing us), the rank reattaches where
 * it is when the hold expires, which is the rollback "resume on the source".
 */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

#include "ep_internal.h"

void dicom_migrate_find_hooks(dicom_ep_t *ep)
{
	const struct dicom_migration_hooks *h =
		dlsym(RTLD_DEFAULT, DICOM_MIGRATION_HOOKS_SYMBOL);
	if (h)
		ep->hooks = *h;
}

void dicom_migrate_detach(dicom_ep_t *ep, uint32_t hold_ms, int64_t now)
{
	ep->detached = 1;
	ep->detached_until = now + (int64_t)hold_ms * 1000000;
	ep->detach_ppid = getppid();
	ep->reattached_ns = 0;
	ep->first_data_after_ns = 0;
}

int dicom_migrate_should_reattach(dicom_ep_t *ep, int64_t now)
{
	if (getppid() != ep->detach_ppid || now >= ep->detached_until)
		return 1;
	dicom_ep_timer_at(ep, now + 1000000);
	return 0;
}

void dicom_migrate_reattached(dicom_ep_t *ep, int64_t now)
{
	ep->detached = 0;
	ep->reattached_ns = now;
	if (ep->hooks.reattach)
		ep->hooks.reattach();
}

int dicom_migrate_format(dicom_ep_t *ep, char *out, size_t len)
{
	/* From the reattach to the first message delivered after it, in
	 * microseconds (0 = none yet).  Never measured from the detach: CRIU
	 * restores into a time namespace that hides the time spent dumped, so
	 * the two instants are on different clocks. */
	long long first = ep->first_data_after_ns
				  ? (ep->first_data_after_ns - ep->reattached_ns) / 1000
				  : 0;
	return snprintf(out, len,
			"\"detached\":%d,\"migratable\":%d,\"reattached\":%d,"
			"\"first_msg_after_reattach_us\":%lld",
			ep->detached, ep->hooks.detach != NULL, ep->reattached_ns != 0, first);
}
