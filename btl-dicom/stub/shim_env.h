/* SPDX-License-Identifier: BSD-3-Clause */
/* What the shim learns from the environment dicom-run prepared. */
#ifndef DICOM_STUB_SHIM_ENV_H
#define DICOM_STUB_SHIM_ENV_H

#include <stddef.h>
#include <stdint.h>

#define SHIM_MAX_PMIX 8
#define DICOM_STUB_ENV "DICOM_STUB"       /* "a.b.c.d:port" of dicom-run */
#define DICOM_STUB_SHIM_NAME "libdicom-stub-shim.so"

/* The PMIx server addresses (tcp4://ip:port in PMIX_SERVER_URI*): a connect
 * to one of them is tunnelled home. */
struct shim_pmix {
	uint32_t ip[SHIM_MAX_PMIX];
	uint16_t port[SHIM_MAX_PMIX];
	int n;
};

/* 1 with stub and pmix filled; 0 when not started by dicom-run (why is
 * empty) or -1 on a malformed environment (why says what).  Removes the
 * stub variables so the rank's own children do not inherit the tunnel. */
int shim_env_take(char *stub, size_t stublen, struct shim_pmix *pmix, char *why, size_t whylen);
int shim_pmix_match(const struct shim_pmix *p, uint32_t ip, uint16_t port, char *text, size_t len);

#endif
