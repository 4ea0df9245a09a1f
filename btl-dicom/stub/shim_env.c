/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framebuf.h"
#include "shim_env.h"

extern char **environ;

static void add_uri(struct shim_pmix *p, const char *v)
{
	for (const char *t = strstr(v, "tcp4://"); t; t = strstr(t + 1, "tcp4://")) {
		char hp[64];
		size_t n = strcspn(t + 7, ";,");
		if (n >= sizeof(hp) || p->n >= SHIM_MAX_PMIX)
			continue;
		memcpy(hp, t + 7, n);
		hp[n] = '\0';
		uint32_t ip;
		uint16_t port;
		if (stub_parse_hostport(hp, &ip, &port) == 0 &&
		    !shim_pmix_match(p, ip, port, NULL, 0)) {
			p->ip[p->n] = ip;
			p->port[p->n++] = port;
		}
	}
}

/* Drops our own entry from LD_PRELOAD (space or colon separated). */
static void strip_preload(void)
{
	const char *pre = getenv("LD_PRELOAD");
	if (!pre)
		return;
	char *copy = strdup(pre), *out = calloc(1, strlen(pre) + 1);
	if (!copy || !out) {
		free(copy);
		free(out);
		return;
	}
	for (char *save = NULL, *tok = strtok_r(copy, " :", &save); tok;
	     tok = strtok_r(NULL, " :", &save)) {
		const char *base = strrchr(tok, '/');
		if (strcmp(base ? base + 1 : tok, DICOM_STUB_SHIM_NAME) == 0)
			continue;
		if (*out)
			strcat(out, ":");
		strcat(out, tok);
	}
	if (*out)
		setenv("LD_PRELOAD", out, 1);
	else
		unsetenv("LD_PRELOAD");
	free(copy);
	free(out);
}

int shim_env_take(char *stub, size_t stublen, struct shim_pmix *pmix, char *why, size_t whylen)
{
	why[0] = '\0';
	const char *s = getenv(DICOM_STUB_ENV);
	if (!s)
		return 0;
	uint32_t ip;
	uint16_t port;
	if (strlen(s) >= stublen || stub_parse_hostport(s, &ip, &port) < 0) {
		snprintf(why, whylen, "%s=\"%s\" is not an IPv4 address:port", DICOM_STUB_ENV, s);
		return -1;
	}
	strcpy(stub, s);
	memset(pmix, 0, sizeof(*pmix));
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "PMIX_SERVER_URI", 15) == 0)
			add_uri(pmix, strchr(*e, '=') ? strchr(*e, '=') + 1 : "");
	unsetenv(DICOM_STUB_ENV);
	strip_preload();
	return 1;
}

int shim_pmix_match(const struct shim_pmix *p, uint32_t ip, uint16_t port, char *text, size_t len)
{
	for (int i = 0; i < p->n; i++)
		if (p->ip[i] == ip && p->port[i] == port) {
			if (text) {
				struct in_addr a = { .s_addr = htonl(ip) };
				char host[INET_ADDRSTRLEN];
				inet_ntop(AF_INET, &a, host, sizeof(host));
				snprintf(text, len, "%s:%u", host, port);
			}
			return 1;
		}
	return 0;
}
