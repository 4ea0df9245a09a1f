// SPDX-License-Identifier: GPL-2.0
/*
 * DiCOM mailboxes: MOSIX-style direct communication between processes.
 * Module parameters and the two device nodes: /dev/dicom/mbox for every
 * process, /dev/dicom/relay for the node daemon.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "dicom_mbox.h"

unsigned int dcm_msg_max = 65536;
module_param_named(msg_max, dcm_msg_max, uint, 0444);
MODULE_PARM_DESC(msg_max, "Largest message in bytes (at most 1 MiB)");

unsigned int dcm_queue_max = 4096;
module_param_named(queue_max, dcm_queue_max, uint, 0444);
MODULE_PARM_DESC(queue_max, "Messages a mailbox holds at most");

unsigned int dcm_queue_bytes_max = 16 << 20;
module_param_named(queue_bytes_max, dcm_queue_bytes_max, uint, 0444);
MODULE_PARM_DESC(queue_bytes_max, "Bytes a mailbox holds at most");

enum { DCM_MINOR_MBOX, DCM_MINOR_RELAY, DCM_MINORS };

static const char * const dcm_names[DCM_MINORS] = { "mbox", "relay" };
static const struct file_operations *dcm_fops[DCM_MINORS] = {
	&dcm_mbox_fops, &dcm_relay_fops,
};

static dev_t dcm_devt;
static struct cdev dcm_cdev[DCM_MINORS];

/* Everyone may own a mailbox; only root may carry other nodes' traffic. */
{{#if kernel.constDevnode}}
static char *dcm_devnode(const struct device *dev, umode_t *mode)
{{else}}
static char *dcm_devnode(struct device *dev, umode_t *mode)
{{/if}}
{
	if (mode)
		*mode = MINOR(dev->devt) == DCM_MINOR_MBOX ? 0666 : 0600;
	return kasprintf(GFP_KERNEL, "dicom/%s", dev_name(dev));
}

{{#if kernel.constClass}}
static const struct class dcm_class = {
	.name		= "dicom",
	.devnode	= dcm_devnode,
};

static int dcm_class_register(void)
{
	return class_register(&dcm_class);
}

static void dcm_class_unregister(void)
{
	class_unregister(&dcm_class);
}

static struct device *dcm_device_create(int minor)
{
	return device_create(&dcm_class, NULL, MKDEV(MAJOR(dcm_devt), minor),
			     NULL, "%s", dcm_names[minor]);
}

static void dcm_device_destroy(int minor)
{
	device_destroy(&dcm_class, MKDEV(MAJOR(dcm_devt), minor));
}
{{else}}
static struct class *dcm_class;

static int dcm_class_register(void)
{
	dcm_class = class_create(THIS_MODULE, "dicom");
	if (IS_ERR(dcm_class))
		return PTR_ERR(dcm_class);
	dcm_class->devnode = dcm_devnode;
	return 0;
}

static void dcm_class_unregister(void)
{
	class_destroy(dcm_class);
}

static struct device *dcm_device_create(int minor)
{
	return device_create(dcm_class, NULL, MKDEV(MAJOR(dcm_devt), minor),
			     NULL, "%s", dcm_names[minor]);
}

static void dcm_device_destroy(int minor)
{
	device_destroy(dcm_class, MKDEV(MAJOR(dcm_devt), minor));
}
{{/if}}

static void dcm_devices_remove(int count)
{
	while (count--) {
		dcm_device_destroy(count);
		cdev_del(&dcm_cdev[count]);
	}
}

static int __init dcm_init(void)
{
	struct device *dev;
	int ret, minor;

	if (!dcm_msg_max || dcm_msg_max > DICOM_MBOX_MSG_MAX ||
	    !dcm_queue_max || dcm_queue_bytes_max < dcm_msg_max) {
		pr_err("need 0 < msg_max <= %u, queue_max > 0, queue_bytes_max >= msg_max\n",
		       DICOM_MBOX_MSG_MAX);
		return -EINVAL;
	}
	ret = alloc_chrdev_region(&dcm_devt, 0, DCM_MINORS, "dicom");
	if (ret)
		return ret;
	ret = dcm_class_register();
	if (ret)
		goto unregister_region;
	for (minor = 0; minor < DCM_MINORS; minor++) {
		cdev_init(&dcm_cdev[minor], dcm_fops[minor]);
		dcm_cdev[minor].owner = THIS_MODULE;
		ret = cdev_add(&dcm_cdev[minor],
			       MKDEV(MAJOR(dcm_devt), minor), 1);
		if (ret)
			goto remove_devices;
		dev = dcm_device_create(minor);
		if (IS_ERR(dev)) {
			ret = PTR_ERR(dev);
			cdev_del(&dcm_cdev[minor]);
			goto remove_devices;
		}
	}
	pr_info("mailboxes ready: msg_max %u, queue_max %u, queue_bytes_max %u\n",
		dcm_msg_max, dcm_queue_max, dcm_queue_bytes_max);
	return 0;

remove_devices:
	dcm_devices_remove(minor);
	dcm_class_unregister();
unregister_region:
	unregister_chrdev_region(dcm_devt, DCM_MINORS);
	return ret;
}

static void __exit dcm_exit(void)
{
	dcm_devices_remove(DCM_MINORS);
	dcm_class_unregister();
	unregister_chrdev_region(dcm_devt, DCM_MINORS);
	/* Every mailbox and the relay are gone, so no message may be left. */
	WARN(dcm_msg_leaked(), "dicom_mbox: messages leaked at unload\n");
}

module_init(dcm_init);
module_exit(dcm_exit);

MODULE_DESCRIPTION("DiCOM mailboxes: MOSIX-style direct communication between processes");
MODULE_LICENSE("GPL");
