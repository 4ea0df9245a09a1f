/* SPDX-License-Identifier: BSD-3-Clause */
#include "dicom.h"

DICOM_API const char *dicom_strerror(int status)
{
	switch (status) {
	case DICOM_OK: return "success";
	case DICOM_EAGAIN: return "retransmit window full, progress and retry";
	case DICOM_ENODAEMON: return "no dicomd reachable (start one with: dicomctl daemon start)";
	case DICOM_EPROTO: return "protocol violation by peer or daemon";
	case DICOM_EINVAL: return "invalid argument";
	case DICOM_ENOMEM: return "out of memory";
	case DICOM_ENOENT: return "unknown (home, pid)";
	case DICOM_EIO: return "system call failed";
	case DICOM_ETOOBIG: return "message larger than DICOM_MAX_MSG";
	case DICOM_ECLOSED: return "endpoint is closing";
	default: return "unknown DiCOM status";
	}
}
