// SPDX-License-Identifier: GPL-2.0
/*
 * DiCOM mailboxes: the relay, /dev/dicom/relay.  The node daemon holds it
 * open; it reads the messages local processes send to other home nodes and
 * writes the messages other nodes send to local processes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "dicom_mbox.h"

struct dcm_relay {
	struct dcm_queue q;
};

/* At most one relay; senders reach it through this pointer. */
static DEFINE_SPINLOCK(dcm_relay_lock);
static struct dcm_relay *dcm_relay;
static u32 dcm_home;

u32 dcm_node_home(void)
{
	return READ_ONCE(dcm_home);
}

/* Queues @msg for dicomd; on failure the caller keeps @msg. */
int dcm_relay_push(struct dcm_msg *msg)
{
	int ret = -EHOSTUNREACH;

	spin_lock(&dcm_relay_lock);
	if (dcm_relay)
		ret = dcm_queue_push(&dcm_relay->q, msg);
	spin_unlock(&dcm_relay_lock);
	return ret;
}

void dcm_relay_stats(struct dicom_mbox_stats *st)
{
	u32 bytes;

	spin_lock(&dcm_relay_lock);
	if (dcm_relay) {
		st->relay_attached = 1;
		dcm_queue_counts(&dcm_relay->q, &st->relay_pending, &bytes);
	}
	spin_unlock(&dcm_relay_lock);
}

static int dcm_relay_open(struct inode *inode, struct file *file)
{
	struct dcm_relay *relay;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	relay = kzalloc(sizeof(*relay), GFP_KERNEL);
	if (!relay)
		return -ENOMEM;
	dcm_queue_init(&relay->q);
	spin_lock(&dcm_relay_lock);
	if (dcm_relay) {
		spin_unlock(&dcm_relay_lock);
		kfree(relay);
		return -EBUSY;
	}
	dcm_relay = relay;
	spin_unlock(&dcm_relay_lock);
	file->private_data = relay;
	return stream_open(inode, file);
}

static int dcm_relay_release(struct inode *inode, struct file *file)
{
	struct dcm_relay *relay = file->private_data;

	spin_lock(&dcm_relay_lock);
	dcm_relay = NULL;
	spin_unlock(&dcm_relay_lock);
	/* Undelivered remote messages are lost, as if the network dropped them. */
	dcm_queue_close(&relay->q);
	kfree(relay);
	return 0;
}

/* One outbound record per read: the header, then the payload. */
static ssize_t dcm_relay_read(struct file *file, char __user *buf,
			      size_t count, loff_t *ppos)
{
	struct dcm_relay *relay = file->private_data;
	struct dicom_relay_hdr hdr;
	struct dcm_msg *msg;
	int ret;

	if (count < sizeof(hdr))
		return -EINVAL;
	ret = dcm_queue_wait_take(&relay->q, NULL, NULL, count - sizeof(hdr),
				  false, file->f_flags & O_NONBLOCK, &msg);
	if (ret == -EMSGSIZE)
		dcm_msg_put(msg);
	if (ret)
		return ret;
	memset(&hdr, 0, sizeof(hdr));
	hdr.len = msg->len;
	hdr.from.home = msg->home;
	hdr.from.pid = dcm_msg_pid(msg);
	hdr.to = msg->to;
	hdr.uid = from_kuid_munged(current_user_ns(), msg->uid);
	if (copy_to_user(buf, &hdr, sizeof(hdr)) ||
	    copy_to_user(buf + sizeof(hdr), msg->data, msg->len)) {
		dcm_queue_requeue(&relay->q, msg);
		return -EFAULT;
	}
	ret = sizeof(hdr) + msg->len;
	dcm_msg_put(msg);
	return ret;
}

/* One inbound record per write, delivered to a local mailbox. */
static ssize_t dcm_relay_write(struct file *file, const char __user *buf,
			       size_t count, loff_t *ppos)
{
	struct dicom_relay_hdr hdr;
	struct dcm_msg *msg;
	kuid_t uid;
	u32 home = dcm_node_home();
	int ret;

	if (count < sizeof(hdr))
		return -EINVAL;
	if (copy_from_user(&hdr, buf, sizeof(hdr)))
		return -EFAULT;
	if (hdr.flags || hdr.reserved || !hdr.len ||
	    hdr.len != count - sizeof(hdr))
		return -EINVAL;
	if (hdr.len > dcm_msg_max)
		return -EMSGSIZE;
	if (hdr.from.pid <= 0 || !hdr.from.home || hdr.to.pid <= 0)
		return -EINVAL;
	if (hdr.to.home && hdr.to.home != home)
		return -EADDRNOTAVAIL;
	uid = make_kuid(current_user_ns(), hdr.uid);
	if (!uid_valid(uid))
		return -EINVAL;
	msg = dcm_msg_from_user(buf + sizeof(hdr), hdr.len);
	if (IS_ERR(msg))
		return PTR_ERR(msg);
	msg->remote_pid = hdr.from.pid;
	msg->home = hdr.from.home;
	msg->uid = uid;
	msg->to = hdr.to;
	msg->flags = DICOM_MBOX_INFO_RELAYED;
	ret = dcm_deliver_local(msg, hdr.to.pid);
	if (ret) {
		dcm_msg_put(msg);
		return ret;
	}
	return count;
}

static __poll_t dcm_relay_poll(struct file *file, poll_table *wait)
{
	struct dcm_relay *relay = file->private_data;
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;

	poll_wait(file, &relay->q.wait, wait);
	if (dcm_queue_has(&relay->q, NULL, NULL))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static long dcm_relay_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	u32 home;

	switch (cmd) {
	case DICOM_RELAY_IOC_SET_HOME:
		if (get_user(home, (u32 __user *)arg))
			return -EFAULT;
		WRITE_ONCE(dcm_home, home);
		return 0;
	default:
		return -ENOTTY;
	}
}

const struct file_operations dcm_relay_fops = {
	.owner		= THIS_MODULE,
	.open		= dcm_relay_open,
	.release	= dcm_relay_release,
	.read		= dcm_relay_read,
	.write		= dcm_relay_write,
	.poll		= dcm_relay_poll,
	.unlocked_ioctl	= dcm_relay_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};
