// SPDX-License-Identifier: GPL-2.0
/*
 * DiCOM mailboxes: messages and the bounded queues that hold them.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/pid_namespace.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "dicom_mbox.h"

/* Every message alive anywhere in the driver: module exit checks for leaks. */
static atomic_t dcm_live_msgs = ATOMIC_INIT(0);
static atomic64_t dcm_live_bytes = ATOMIC64_INIT(0);

struct dcm_msg *dcm_msg_from_user(const void __user *buf, u32 len)
{
	struct dcm_msg *msg;

	msg = kvmalloc(struct_size(msg, data, len), GFP_KERNEL_ACCOUNT);
	if (!msg)
		return ERR_PTR(-ENOMEM);
	memset(msg, 0, sizeof(*msg));
	refcount_set(&msg->ref, 1);
	INIT_LIST_HEAD(&msg->node);
	msg->len = len;
	if (copy_from_user(msg->data, buf, len)) {
		kvfree(msg);
		return ERR_PTR(-EFAULT);
	}
	atomic_inc(&dcm_live_msgs);
	atomic64_add(len, &dcm_live_bytes);
	return msg;
}

void dcm_msg_put(struct dcm_msg *msg)
{
	if (!refcount_dec_and_test(&msg->ref))
		return;
	atomic_dec(&dcm_live_msgs);
	atomic64_sub(msg->len, &dcm_live_bytes);
	put_pid(msg->sender);
	kvfree(msg);
}

/* The sender's pid as the calling process sees it (0 if it cannot). */
s32 dcm_msg_pid(const struct dcm_msg *msg)
{
	if (!msg->sender)
		return msg->remote_pid;
	return pid_nr_ns(msg->sender, task_active_pid_ns(current));
}

void dcm_msg_info(const struct dcm_msg *msg, struct dicom_mbox_info *info)
{
	memset(info, 0, sizeof(*info));
	info->from.home = msg->home;
	info->from.pid = dcm_msg_pid(msg);
	info->uid = from_kuid_munged(current_user_ns(), msg->uid);
	info->len = msg->len;
	info->msgno = msg->msgno;
	info->flags = msg->flags;
}

void dcm_msg_totals(u32 *messages, u64 *bytes)
{
	*messages = atomic_read(&dcm_live_msgs);
	*bytes = atomic64_read(&dcm_live_bytes);
}

bool dcm_msg_leaked(void)
{
	return atomic_read(&dcm_live_msgs) != 0;
}

void dcm_queue_init(struct dcm_queue *q)
{
	spin_lock_init(&q->lock);
	init_waitqueue_head(&q->wait);
	INIT_LIST_HEAD(&q->msgs);
	q->next_msgno = 1;
}

/*
 * Queues @msg and numbers it.  On success the queue owns @msg; on failure
 * (queue full, or its owner gone) the caller still does.
 */
int dcm_queue_push(struct dcm_queue *q, struct dcm_msg *msg)
{
	spin_lock(&q->lock);
	if (q->closed) {
		spin_unlock(&q->lock);
		return -ESRCH;
	}
	if (q->count >= dcm_queue_max ||
	    q->bytes + msg->len > dcm_queue_bytes_max) {
		spin_unlock(&q->lock);
		return -EAGAIN;
	}
	msg->msgno = q->next_msgno++;
	if (!q->next_msgno)
		q->next_msgno = 1;
	list_add_tail(&msg->node, &q->msgs);
	q->count++;
	q->bytes += msg->len;
	spin_unlock(&q->lock);
	wake_up_interruptible_poll(&q->wait, EPOLLIN | EPOLLRDNORM);
	return 0;
}

static struct dcm_msg *dcm_queue_find(struct dcm_queue *q, dcm_match_t match,
				      const void *arg)
{
	struct dcm_msg *msg;

	lockdep_assert_held(&q->lock);
	list_for_each_entry(msg, &q->msgs, node)
		if (!match || match(msg, arg))
			return msg;
	return NULL;
}

bool dcm_queue_has(struct dcm_queue *q, dcm_match_t match, const void *arg)
{
	bool found;

	spin_lock(&q->lock);
	found = dcm_queue_find(q, match, arg);
	spin_unlock(&q->lock);
	return found;
}

/*
 * Takes the oldest message that @match accepts (any message if @match is
 * NULL) into *@out, without waiting.  With @peek it stays queued and *@out
 * is an extra reference.  A message larger than @room stays queued and
 * fails with -EMSGSIZE; *@out is then a reference the caller may inspect.
 * Returns -EAGAIN when nothing matches.
 */
int dcm_queue_take(struct dcm_queue *q, dcm_match_t match, const void *arg,
		   size_t room, bool peek, struct dcm_msg **out)
{
	struct dcm_msg *msg;

	spin_lock(&q->lock);
	msg = dcm_queue_find(q, match, arg);
	if (!msg) {
		spin_unlock(&q->lock);
		return -EAGAIN;
	}
	if (msg->len > room || peek) {
		refcount_inc(&msg->ref);
	} else {
		list_del_init(&msg->node);
		q->count--;
		q->bytes -= msg->len;
	}
	spin_unlock(&q->lock);
	*out = msg;
	return msg->len > room ? -EMSGSIZE : 0;
}

/* dcm_queue_take(), waiting for a match unless @nonblock. */
int dcm_queue_wait_take(struct dcm_queue *q, dcm_match_t match,
			const void *arg, size_t room, bool peek, bool nonblock,
			struct dcm_msg **out)
{
	int ret;

	for (;;) {
		ret = dcm_queue_take(q, match, arg, room, peek, out);
		if (ret != -EAGAIN || nonblock)
			return ret;
		ret = wait_event_interruptible(q->wait,
					       dcm_queue_has(q, match, arg));
		if (ret)
			return ret;
	}
}

/* Puts back a taken message that could not be copied out, in its old place. */
void dcm_queue_requeue(struct dcm_queue *q, struct dcm_msg *msg)
{
	struct dcm_msg *pos;

	spin_lock(&q->lock);
	if (q->closed) {
		spin_unlock(&q->lock);
		dcm_msg_put(msg);
		return;
	}
	list_for_each_entry(pos, &q->msgs, node)
		if (pos->msgno > msg->msgno)
			break;
	list_add_tail(&msg->node, &pos->node);
	q->count++;
	q->bytes += msg->len;
	spin_unlock(&q->lock);
	wake_up_interruptible_poll(&q->wait, EPOLLIN | EPOLLRDNORM);
}

/* Refuses further messages and frees the queued ones. */
void dcm_queue_close(struct dcm_queue *q)
{
	struct dcm_msg *msg, *tmp;
	LIST_HEAD(doomed);

	spin_lock(&q->lock);
	q->closed = true;
	list_splice_init(&q->msgs, &doomed);
	q->count = 0;
	q->bytes = 0;
	spin_unlock(&q->lock);
	list_for_each_entry_safe(msg, tmp, &doomed, node) {
		list_del(&msg->node);
		dcm_msg_put(msg);
	}
}

void dcm_queue_counts(struct dcm_queue *q, u32 *count, u32 *bytes)
{
	spin_lock(&q->lock);
	*count = q->count;
	*bytes = q->bytes;
	spin_unlock(&q->lock);
}
