// SPDX-License-Identifier: GPL-2.0
/*
 * DiCOM mailboxes: one mailbox per process, local delivery, receive filters
 * and the file operations of /dev/dicom/mbox.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/pid_namespace.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "dicom_mbox.h"

struct dcm_mbox {
	struct hlist_node node;
	struct kref ref;		/* the registry's, and each sender's */
	struct pid *owner;		/* thread group id of the owner */
	unsigned int files;		/* the owner's open files */
	struct dcm_queue q;
};

/* What one open file keeps beside its process's mailbox. */
struct dcm_handle {
	struct dcm_mbox *mbox;
	spinlock_t lock;		/* protects the fields below */
	struct dicom_mbox_filter filter;
	struct dicom_mbox_addr dest;
	bool has_dest;
	struct dicom_mbox_info last;
};

/* Maps the owner's struct pid to its mailbox; protects dcm_mbox.files. */
static DEFINE_MUTEX(dcm_registry_lock);
static DEFINE_HASHTABLE(dcm_registry, 8);
static unsigned int dcm_mailboxes;

static struct dcm_mbox *dcm_mbox_find(struct pid *owner)
{
	struct dcm_mbox *mbox;

	lockdep_assert_held(&dcm_registry_lock);
	hash_for_each_possible(dcm_registry, mbox, node, (unsigned long)owner)
		if (mbox->owner == owner)
			return mbox;
	return NULL;
}

static void dcm_mbox_free(struct kref *ref)
{
	struct dcm_mbox *mbox = container_of(ref, struct dcm_mbox, ref);

	dcm_queue_close(&mbox->q);
	put_pid(mbox->owner);
	kfree(mbox);
}

/* The mailbox of process @nr in the caller's pid namespace, referenced. */
static struct dcm_mbox *dcm_mbox_get(s32 nr)
{
	struct dcm_mbox *mbox;
	struct pid *pid;

	pid = find_get_pid(nr);
	if (!pid)
		return NULL;
	mutex_lock(&dcm_registry_lock);
	mbox = dcm_mbox_find(pid);
	if (mbox)
		kref_get(&mbox->ref);
	mutex_unlock(&dcm_registry_lock);
	put_pid(pid);
	return mbox;
}

/* Queues @msg for local process @pid; on failure the caller keeps @msg. */
int dcm_deliver_local(struct dcm_msg *msg, s32 pid)
{
	struct dcm_mbox *mbox;
	int ret;

	mbox = dcm_mbox_get(pid);
	if (!mbox)
		return -ESRCH;
	ret = dcm_queue_push(&mbox->q, msg);
	kref_put(&mbox->ref, dcm_mbox_free);
	return ret;
}

static int dcm_send(const struct dicom_mbox_addr *to, const void __user *buf,
		    size_t len)
{
	struct dcm_msg *msg;
	u32 home = dcm_node_home();
	int ret;

	if (to->pid <= 0 || len == 0)
		return -EINVAL;
	if (len > dcm_msg_max)
		return -EMSGSIZE;
	msg = dcm_msg_from_user(buf, len);
	if (IS_ERR(msg))
		return PTR_ERR(msg);
	msg->sender = get_pid(task_tgid(current));
	msg->uid = current_uid();
	msg->home = home;
	msg->to = *to;
	if (!to->home || to->home == home)
		ret = dcm_deliver_local(msg, to->pid);
	else
		ret = dcm_relay_push(msg);
	if (ret)
		dcm_msg_put(msg);
	return ret;
}

static bool dcm_filter_match(const struct dcm_msg *msg, const void *arg)
{
	const struct dicom_mbox_filter *f = arg;

	if ((f->flags & DICOM_MBOX_F_PID) && dcm_msg_pid(msg) != f->pid)
		return false;
	if ((f->flags & DICOM_MBOX_F_HOME) && msg->home != f->home)
		return false;
	if ((f->flags & DICOM_MBOX_F_UID) &&
	    from_kuid_munged(current_user_ns(), msg->uid) != f->uid)
		return false;
	if ((f->flags & DICOM_MBOX_F_MINLEN) && msg->len < f->min_len)
		return false;
	if ((f->flags & DICOM_MBOX_F_MAXLEN) && msg->len > f->max_len)
		return false;
	if ((f->flags & DICOM_MBOX_F_MSGNO) && msg->msgno != f->msgno)
		return false;
	if (f->flags & DICOM_MBOX_F_PATTERN) {
		if (f->pattern_offset > msg->len ||
		    msg->len - f->pattern_offset < f->pattern_len)
			return false;
		if (memcmp(msg->data + f->pattern_offset, f->pattern,
			   f->pattern_len))
			return false;
	}
	return true;
}

static int dcm_filter_check(const struct dicom_mbox_filter *f)
{
	if (f->flags & ~DICOM_MBOX_F_ALL || f->reserved)
		return -EINVAL;
	if ((f->flags & DICOM_MBOX_F_PID) && f->pid <= 0)
		return -EINVAL;
	if ((f->flags & DICOM_MBOX_F_MINLEN) &&
	    (f->flags & DICOM_MBOX_F_MAXLEN) && f->min_len > f->max_len)
		return -EINVAL;
	if ((f->flags & DICOM_MBOX_F_PATTERN) &&
	    (!f->pattern_len || f->pattern_len > DICOM_MBOX_PATTERN_MAX))
		return -EINVAL;
	return 0;
}

static bool dcm_is_owner(const struct dcm_handle *h)
{
	return task_tgid(current) == h->mbox->owner;
}

static void dcm_handle_filter(struct dcm_handle *h, struct dicom_mbox_filter *f)
{
	spin_lock(&h->lock);
	*f = h->filter;
	spin_unlock(&h->lock);
}

/*
 * Receives one whole message into @buf.  Returns its length, or -EMSGSIZE
 * (the message stays queued) when it is larger than @size; @info describes
 * the message in both cases.
 */
static ssize_t dcm_recv(struct file *file, void __user *buf, size_t size,
			bool peek, struct dicom_mbox_info *info)
{
	struct dcm_handle *h = file->private_data;
	struct dcm_queue *q = &h->mbox->q;
	struct dicom_mbox_filter f;
	struct dcm_msg *msg;
	ssize_t ret;

	if (!dcm_is_owner(h))
		return -EPERM;
	dcm_handle_filter(h, &f);
	if (f.flags & DICOM_MBOX_F_PEEK)
		peek = true;
	ret = dcm_queue_wait_take(q, dcm_filter_match, &f, size, peek,
				  file->f_flags & O_NONBLOCK, &msg);
	if (ret && ret != -EMSGSIZE)
		return ret;
	dcm_msg_info(msg, info);
	if (ret) {
		dcm_msg_put(msg);
		return ret;
	}
	if (copy_to_user(buf, msg->data, msg->len)) {
		if (peek)
			dcm_msg_put(msg);
		else
			dcm_queue_requeue(q, msg);
		return -EFAULT;
	}
	spin_lock(&h->lock);
	h->last = *info;
	spin_unlock(&h->lock);
	ret = msg->len;
	dcm_msg_put(msg);
	return ret;
}

static int dcm_mbox_open(struct inode *inode, struct file *file)
{
	struct pid *owner = get_pid(task_tgid(current));
	struct dcm_mbox *mbox, *fresh;
	struct dcm_handle *h;

	h = kzalloc(sizeof(*h), GFP_KERNEL);
	fresh = kzalloc(sizeof(*fresh), GFP_KERNEL);
	if (!h || !fresh) {
		kfree(h);
		kfree(fresh);
		put_pid(owner);
		return -ENOMEM;
	}
	mutex_lock(&dcm_registry_lock);
	mbox = dcm_mbox_find(owner);
	if (mbox) {
		put_pid(owner);
		kfree(fresh);
	} else {
		mbox = fresh;
		kref_init(&mbox->ref);
		mbox->owner = owner;
		dcm_queue_init(&mbox->q);
		hash_add(dcm_registry, &mbox->node, (unsigned long)owner);
		dcm_mailboxes++;
	}
	mbox->files++;
	mutex_unlock(&dcm_registry_lock);

	spin_lock_init(&h->lock);
	h->mbox = mbox;
	file->private_data = h;
	return stream_open(inode, file);
}

static int dcm_mbox_release(struct inode *inode, struct file *file)
{
	struct dcm_handle *h = file->private_data;
	struct dcm_mbox *mbox = h->mbox;
	bool last;

	mutex_lock(&dcm_registry_lock);
	last = --mbox->files == 0;
	if (last) {
		hash_del(&mbox->node);
		dcm_mailboxes--;
	}
	mutex_unlock(&dcm_registry_lock);
	if (last) {
		/* A sender still holding a reference now gets -ESRCH. */
		dcm_queue_close(&mbox->q);
		kref_put(&mbox->ref, dcm_mbox_free);
	}
	kfree(h);
	return 0;
}

static ssize_t dcm_mbox_read(struct file *file, char __user *buf,
			     size_t count, loff_t *ppos)
{
	struct dicom_mbox_info info;

	return dcm_recv(file, buf, count, false, &info);
}

static ssize_t dcm_mbox_write(struct file *file, const char __user *buf,
			      size_t count, loff_t *ppos)
{
	struct dcm_handle *h = file->private_data;
	struct dicom_mbox_addr to;
	bool has_dest;
	int ret;

	spin_lock(&h->lock);
	has_dest = h->has_dest;
	to = h->dest;
	spin_unlock(&h->lock);
	if (!has_dest)
		return -EDESTADDRREQ;
	ret = dcm_send(&to, buf, count);
	return ret ? ret : count;
}

static __poll_t dcm_mbox_poll(struct file *file, poll_table *wait)
{
	struct dcm_handle *h = file->private_data;
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;
	struct dicom_mbox_filter f;

	poll_wait(file, &h->mbox->q.wait, wait);
	if (!dcm_is_owner(h))
		return mask | EPOLLERR;
	dcm_handle_filter(h, &f);
	if (dcm_queue_has(&h->mbox->q, dcm_filter_match, &f))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static long dcm_ioc_send(void __user *uarg)
{
	struct dicom_mbox_send s;

	if (copy_from_user(&s, uarg, sizeof(s)))
		return -EFAULT;
	if (s.flags)
		return -EINVAL;
	return dcm_send(&s.to, u64_to_user_ptr(s.buf), s.len);
}

static long dcm_ioc_set_dest(struct dcm_handle *h, void __user *uarg)
{
	struct dicom_mbox_addr to;

	if (copy_from_user(&to, uarg, sizeof(to)))
		return -EFAULT;
	if (to.pid <= 0)
		return -EINVAL;
	spin_lock(&h->lock);
	h->dest = to;
	h->has_dest = true;
	spin_unlock(&h->lock);
	return 0;
}

static long dcm_ioc_set_filter(struct dcm_handle *h, void __user *uarg)
{
	struct dicom_mbox_filter f;
	int ret;

	if (copy_from_user(&f, uarg, sizeof(f)))
		return -EFAULT;
	ret = dcm_filter_check(&f);
	if (ret)
		return ret;
	spin_lock(&h->lock);
	h->filter = f;
	spin_unlock(&h->lock);
	/* A waiting poll() must re-evaluate under the new filter. */
	wake_up_interruptible_poll(&h->mbox->q.wait, EPOLLIN | EPOLLRDNORM);
	return 0;
}

static long dcm_ioc_recv(struct file *file, void __user *uarg)
{
	struct dicom_mbox_recv r;
	ssize_t ret;

	if (copy_from_user(&r, uarg, sizeof(r)))
		return -EFAULT;
	if (r.flags & ~DICOM_MBOX_RECV_PEEK)
		return -EINVAL;
	ret = dcm_recv(file, u64_to_user_ptr(r.buf), r.buf_len,
		       r.flags & DICOM_MBOX_RECV_PEEK, &r.info);
	if (ret < 0 && ret != -EMSGSIZE)
		return ret;
	if (copy_to_user(uarg, &r, sizeof(r)))
		return -EFAULT;
	return ret < 0 ? ret : 0;
}

static long dcm_ioc_stats(struct dcm_handle *h, void __user *uarg)
{
	struct dicom_mbox_stats st;

	memset(&st, 0, sizeof(st));
	if (dcm_is_owner(h))
		dcm_queue_counts(&h->mbox->q, &st.pending, &st.pending_bytes);
	mutex_lock(&dcm_registry_lock);
	st.mailboxes = dcm_mailboxes;
	mutex_unlock(&dcm_registry_lock);
	dcm_msg_totals(&st.messages, &st.bytes);
	st.msg_max = dcm_msg_max;
	st.queue_max = dcm_queue_max;
	st.queue_bytes_max = dcm_queue_bytes_max;
	st.home = dcm_node_home();
	dcm_relay_stats(&st);
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long dcm_mbox_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	struct dcm_handle *h = file->private_data;
	void __user *uarg = (void __user *)arg;
	struct dicom_mbox_filter f;
	struct dicom_mbox_info info;

	switch (cmd) {
	case DICOM_MBOX_IOC_SEND:
		return dcm_ioc_send(uarg);
	case DICOM_MBOX_IOC_SET_DEST:
		return dcm_ioc_set_dest(h, uarg);
	case DICOM_MBOX_IOC_SET_FILTER:
		return dcm_ioc_set_filter(h, uarg);
	case DICOM_MBOX_IOC_GET_FILTER:
		dcm_handle_filter(h, &f);
		return copy_to_user(uarg, &f, sizeof(f)) ? -EFAULT : 0;
	case DICOM_MBOX_IOC_RECV:
		return dcm_ioc_recv(file, uarg);
	case DICOM_MBOX_IOC_LAST_INFO:
		spin_lock(&h->lock);
		info = h->last;
		spin_unlock(&h->lock);
		return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
	case DICOM_MBOX_IOC_STATS:
		return dcm_ioc_stats(h, uarg);
	default:
		return -ENOTTY;
	}
}

const struct file_operations dcm_mbox_fops = {
	.owner		= THIS_MODULE,
	.open		= dcm_mbox_open,
	.release	= dcm_mbox_release,
	.read		= dcm_mbox_read,
	.write		= dcm_mbox_write,
	.poll		= dcm_mbox_poll,
	.unlocked_ioctl	= dcm_mbox_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};
