/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * DiCOM mailboxes: MOSIX-style direct communication between processes.
 *
 * Every process that opens DICOM_MBOX_DEV owns one mailbox, shared by all
 * of its threads and all of its open files.  Any process may send to any
 * mailbox, addressed by (home node, pid); the kernel stamps each message
 * with the sender's pid, uid and home.  Only the owner may receive, and it
 * receives whole messages, optionally selected by a filter.
 *
 * Messages for another home node are queued on DICOM_RELAY_DEV, which the
 * node daemon (dicomd) holds open; it also writes messages arriving from
 * other nodes into the relay, which delivers them to local mailboxes.
 *
 * This header is the whole contract between the driver and user space.
 */
#ifndef _UAPI_LINUX_DICOM_MBOX_H
#define _UAPI_LINUX_DICOM_MBOX_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define DICOM_MBOX_DEV		"/dev/dicom/mbox"
#define DICOM_RELAY_DEV		"/dev/dicom/relay"

/* The largest msg_max the module accepts; the default is 64 KiB. */
#define DICOM_MBOX_MSG_MAX	(1U << 20)
#define DICOM_MBOX_PATTERN_MAX	64

/**
 * struct dicom_mbox_addr - where a process was born
 * @home: IPv4 address of the home node, network byte order; 0 is this node
 * @pid: the process id at home (a thread group id)
 */
struct dicom_mbox_addr {
	__u32 home;
	__s32 pid;
};

/**
 * struct dicom_mbox_send - argument of DICOM_MBOX_IOC_SEND
 * @to: the destination mailbox
 * @buf: user pointer to the message
 * @len: message length, 1 to msg_max bytes
 * @flags: must be 0
 */
struct dicom_mbox_send {
	struct dicom_mbox_addr to;
	__u64 buf;
	__u32 len;
	__u32 flags;
};

/* The conditions a filter applies; a message must satisfy all of them. */
#define DICOM_MBOX_F_PID	(1U << 0)	/* sender pid == @pid */
#define DICOM_MBOX_F_HOME	(1U << 1)	/* sender home == @home */
#define DICOM_MBOX_F_UID	(1U << 2)	/* sender uid == @uid */
#define DICOM_MBOX_F_MINLEN	(1U << 3)	/* length >= @min_len */
#define DICOM_MBOX_F_MAXLEN	(1U << 4)	/* length <= @max_len */
#define DICOM_MBOX_F_PATTERN	(1U << 5)	/* @pattern at @pattern_offset */
#define DICOM_MBOX_F_MSGNO	(1U << 6)	/* message number == @msgno */
#define DICOM_MBOX_F_PEEK	(1U << 7)	/* leave the message queued */
#define DICOM_MBOX_F_ALL	((DICOM_MBOX_F_PEEK << 1) - 1)

/**
 * struct dicom_mbox_filter - which queued messages a receiver accepts
 * @flags: DICOM_MBOX_F_* conditions; 0 accepts the oldest message
 * @home: sender home for DICOM_MBOX_F_HOME
 * @pid: sender pid for DICOM_MBOX_F_PID
 * @uid: sender uid for DICOM_MBOX_F_UID
 * @min_len: for DICOM_MBOX_F_MINLEN
 * @max_len: for DICOM_MBOX_F_MAXLEN
 * @msgno: for DICOM_MBOX_F_MSGNO
 * @pattern_offset: where in the message @pattern must appear
 * @pattern_len: 1 to DICOM_MBOX_PATTERN_MAX bytes of @pattern
 * @reserved: must be 0
 * @pattern: the bytes to compare
 *
 * Each open file has its own filter; read(), poll() and
 * DICOM_MBOX_IOC_RECV select the oldest queued message that matches it.
 */
struct dicom_mbox_filter {
	__u32 flags;
	__u32 home;
	__s32 pid;
	__u32 uid;
	__u32 min_len;
	__u32 max_len;
	__u32 msgno;
	__u32 pattern_offset;
	__u32 pattern_len;
	__u32 reserved;
	__u8 pattern[DICOM_MBOX_PATTERN_MAX];
};

/* The message came from another node through the relay. */
#define DICOM_MBOX_INFO_RELAYED	(1U << 0)

/**
 * struct dicom_mbox_info - what the kernel knows about a received message
 * @from: the sender's home and pid, stamped by the kernel (or by dicomd
 *	  for relayed messages)
 * @uid: the sender's uid in the receiver's user namespace
 * @len: message length
 * @msgno: the number the mailbox gave the message on arrival, from 1 up
 * @flags: DICOM_MBOX_INFO_*
 */
struct dicom_mbox_info {
	struct dicom_mbox_addr from;
	__u32 uid;
	__u32 len;
	__u32 msgno;
	__u32 flags;
};

/* DICOM_MBOX_IOC_RECV: leave the message queued, whatever the filter says. */
#define DICOM_MBOX_RECV_PEEK	(1U << 0)

/**
 * struct dicom_mbox_recv - argument of DICOM_MBOX_IOC_RECV
 * @buf: user pointer to the receive buffer
 * @buf_len: its size; a larger message fails with EMSGSIZE, stays queued,
 *	     and its @info is still returned
 * @flags: DICOM_MBOX_RECV_*
 * @info: filled in on return
 */
struct dicom_mbox_recv {
	__u64 buf;
	__u32 buf_len;
	__u32 flags;
	struct dicom_mbox_info info;
};

/**
 * struct dicom_mbox_stats - argument of DICOM_MBOX_IOC_STATS
 * @pending: messages queued in the caller's mailbox
 * @pending_bytes: their bytes
 * @mailboxes: mailboxes on this node
 * @messages: messages queued anywhere in the driver
 * @bytes: their bytes
 * @msg_max: the largest message accepted
 * @queue_max: messages a mailbox (or the relay) holds at most
 * @queue_bytes_max: bytes a mailbox (or the relay) holds at most
 * @home: this node's home address (0 until dicomd sets it)
 * @relay_pending: messages waiting for dicomd; 0 without a relay
 * @relay_attached: 1 while dicomd holds the relay open
 * @reserved: 0
 */
struct dicom_mbox_stats {
	__u32 pending;
	__u32 pending_bytes;
	__u32 mailboxes;
	__u32 messages;
	__u64 bytes;
	__u32 msg_max;
	__u32 queue_max;
	__u32 queue_bytes_max;
	__u32 home;
	__u32 relay_pending;
	__u32 relay_attached;
	__u32 reserved;
};

/**
 * struct dicom_relay_hdr - one record on the relay, followed by @len bytes
 * @len: payload length
 * @flags: 0
 * @from: the sender; dicomd vouches for it on messages it writes
 * @to: the destination mailbox
 * @uid: the sender's uid
 * @reserved: 0
 *
 * read() on the relay returns one outbound record (header and payload);
 * write() takes one inbound record and delivers it to a local mailbox.
 */
struct dicom_relay_hdr {
	__u32 len;
	__u32 flags;
	struct dicom_mbox_addr from;
	struct dicom_mbox_addr to;
	__u32 uid;
	__u32 reserved;
};

#define DICOM_MBOX_IOC_MAGIC	0xDC

/* On DICOM_MBOX_DEV */
#define DICOM_MBOX_IOC_SEND	  _IOW(DICOM_MBOX_IOC_MAGIC, 0x00, struct dicom_mbox_send)
/* The destination of write(); each write() sends one message. */
#define DICOM_MBOX_IOC_SET_DEST	  _IOW(DICOM_MBOX_IOC_MAGIC, 0x01, struct dicom_mbox_addr)
#define DICOM_MBOX_IOC_SET_FILTER _IOW(DICOM_MBOX_IOC_MAGIC, 0x02, struct dicom_mbox_filter)
#define DICOM_MBOX_IOC_GET_FILTER _IOR(DICOM_MBOX_IOC_MAGIC, 0x03, struct dicom_mbox_filter)
#define DICOM_MBOX_IOC_RECV	  _IOWR(DICOM_MBOX_IOC_MAGIC, 0x04, struct dicom_mbox_recv)
/* The info of the last message read() on this file. */
#define DICOM_MBOX_IOC_LAST_INFO  _IOR(DICOM_MBOX_IOC_MAGIC, 0x05, struct dicom_mbox_info)
#define DICOM_MBOX_IOC_STATS	  _IOR(DICOM_MBOX_IOC_MAGIC, 0x06, struct dicom_mbox_stats)

/* On DICOM_RELAY_DEV: this node's home address, network byte order. */
#define DICOM_RELAY_IOC_SET_HOME  _IOW(DICOM_MBOX_IOC_MAGIC, 0x10, __u32)

#endif /* _UAPI_LINUX_DICOM_MBOX_H */
