/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DiCOM mailboxes: what the parts of the driver share.
 */
#ifndef _DICOM_MBOX_H
#define _DICOM_MBOX_H

#include <linux/dicom_mbox.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/pid.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/wait.h>

extern unsigned int dcm_msg_max;
extern unsigned int dcm_queue_max;
extern unsigned int dcm_queue_bytes_max;

/*
 * A message never changes once queued, so a reader that only peeks copies
 * it out under a reference instead of under the queue lock.
 */
struct dcm_msg {
	struct list_head node;
	refcount_t ref;
	struct pid *sender;		/* NULL when relayed from another node */
	s32 remote_pid;			/* the sender's pid at home, if relayed */
	kuid_t uid;
	u32 home;
	struct dicom_mbox_addr to;
	u32 msgno;
	u32 flags;
	u32 len;
	u8 data[]{{#if kernel.countedBy}} __counted_by(len){{/if}};
};

/* The messages of one mailbox, or those waiting for the relay. */
struct dcm_queue {
	spinlock_t lock;		/* protects all fields below */
	wait_queue_head_t wait;
	struct list_head msgs;
	u32 count;
	u32 next_msgno;
	size_t bytes;
	bool closed;
};

/* Selects a message; called under the queue lock, so it must not sleep. */
typedef bool (*dcm_match_t)(const struct dcm_msg *msg, const void *arg);

struct dcm_msg *dcm_msg_from_user(const void __user *buf, u32 len);
void dcm_msg_put(struct dcm_msg *msg);
s32 dcm_msg_pid(const struct dcm_msg *msg);
void dcm_msg_info(const struct dcm_msg *msg, struct dicom_mbox_info *info);
void dcm_msg_totals(u32 *messages, u64 *bytes);
bool dcm_msg_leaked(void);

void dcm_queue_init(struct dcm_queue *q);
int dcm_queue_push(struct dcm_queue *q, struct dcm_msg *msg);
bool dcm_queue_has(struct dcm_queue *q, dcm_match_t match, const void *arg);
int dcm_queue_take(struct dcm_queue *q, dcm_match_t match, const void *arg,
		   size_t room, bool peek, struct dcm_msg **out);
int dcm_queue_wait_take(struct dcm_queue *q, dcm_match_t match,
			const void *arg, size_t room, bool peek, bool nonblock,
			struct dcm_msg **out);
void dcm_queue_requeue(struct dcm_queue *q, struct dcm_msg *msg);
void dcm_queue_close(struct dcm_queue *q);
void dcm_queue_counts(struct dcm_queue *q, u32 *count, u32 *bytes);

int dcm_deliver_local(struct dcm_msg *msg, s32 pid);
int dcm_relay_push(struct dcm_msg *msg);
u32 dcm_node_home(void);
void dcm_relay_stats(struct dicom_mbox_stats *st);

extern const struct file_operations dcm_mbox_fops;
extern const struct file_operations dcm_relay_fops;

#endif /* _DICOM_MBOX_H */
