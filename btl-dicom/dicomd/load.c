/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

/* Time constant of the averaged load: long enough that one burst does not
 * look like a loaded node, short enough that a policy sees a change within
 * a few gossip periods. */
#define LOAD_TAU_NS 2000000000LL

static int read_small(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (int)n;
}

int load_sampler_init(struct load_sampler *s)
{
	memset(s, 0, sizeof(*s));
	ssize_t n = readlink("/proc/self/ns/net", s->netns, sizeof(s->netns) - 1);
	if (n < 0)
		return -1;
	s->netns[n] = '\0';
	s->clk_tck = sysconf(_SC_CLK_TCK);
	if (s->clk_tck <= 0)
		s->clk_tck = 100;
	return 0;
}

/* The state letter and thread count from a stat line "pid (comm) S ppid ...". */
static int parse_stat(const char *line, char *state, long *threads, uint64_t *ticks)
{
	const char *p = strrchr(line, ')');
	if (!p || p[1] != ' ')
		return -1;
	*state = p[2];
	/* fields after the state: ppid(4) ... utime(14) stime(15) ... num_threads(20) */
	unsigned long long utime = 0, stime = 0;
	long nthreads = 1;
	int field = 3;
	for (const char *q = p + 3; *q; q++) {
		if (*q != ' ')
			continue;
		field++;
		if (field == 14)
			utime = strtoull(q + 1, NULL, 10);
		else if (field == 15)
			stime = strtoull(q + 1, NULL, 10);
		else if (field == 20) {
			nthreads = strtol(q + 1, NULL, 10);
			break;
		}
	}
	if (threads)
		*threads = nthreads;
	if (ticks)
		*ticks = utime + stime;
	return 0;
}

int load_proc_ticks(pid_t pid, uint64_t *ticks)
{
	char path[64], line[1024], state;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, line, sizeof(line)) <= 0 || parse_stat(line, &state, NULL, ticks) < 0)
		return -1;
	return 0;
}

uint32_t load_permille(const struct load_sampler *s, uint64_t ticks, int64_t ns)
{
	if (ns <= 0)
		return 0;
	double v = (double)ticks * 1e12 / (double)s->clk_tck / (double)ns;
	return v > 65535 ? 65535 : (uint32_t)v;
}

/* Tasks in state R of one process (each thread counts). */
static uint32_t runnable_tasks(long pid)
{
	char path[96], line[1024], state;
	long threads;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (read_small(path, line, sizeof(line)) <= 0 ||
	    parse_stat(line, &state, &threads, NULL) < 0)
		return 0;
	if (threads <= 1)
		return state == 'R';
	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	uint32_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%ld/stat", pid,
			 strtol(e->d_name, NULL, 10));
		if (read_small(path, line, sizeof(line)) > 0 &&
		    parse_stat(line, &state, NULL, NULL) == 0 && state == 'R')
			n++;
	}
	closedir(d);
	return n;
}

/* Processes of this node (same network namespace as dicomd) in state R;
 * dicomd itself, which is running right now, does not count. */
static uint32_t count_runnable(const struct load_sampler *s)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	char path[96], ns[64];
	long self = (long)getpid();
	uint32_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		long pid = strtol(e->d_name, NULL, 10);
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
		ssize_t len = readlink(path, ns, sizeof(ns) - 1);
		if (len < 0)
			continue;
		ns[len] = '\0';
		if (strcmp(ns, s->netns) == 0)
			n += runnable_tasks(pid);
	}
	closedir(d);
	return n;
}

static void meminfo(uint64_t *free_kib, uint64_t *total_kib)
{
	char buf[4096];
	*free_kib = *total_kib = 0;
	if (read_small("/proc/meminfo", buf, sizeof(buf)) <= 0)
		return;
	const char *p = strstr(buf, "MemTotal:");
	if (p)
		*total_kib = strtoull(p + 9, NULL, 10);
	p = strstr(buf, "MemAvailable:");
	if (p)
		*free_kib = strtoull(p + 13, NULL, 10);
}

/* Our cgroup path for a controller from /proc/self/cgroup: v1 lines are
 * "N:ctrl,ctrl:/path", the v2 line is "0::/path" (controller NULL). */
static int cgroup_path(const char *controller, char *out, size_t len)
{
	char buf[4096];
	if (read_small("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return -1;
	char *lines;
	for (char *line = strtok_r(buf, "\n", &lines); line; line = strtok_r(NULL, "\n", &lines)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1;
		int match = 0;
		if (!controller) {
			match = *ctrls == '\0';
		} else {
			char list[256], *items;
			snprintf(list, sizeof(list), "%s", ctrls);
			for (char *t = strtok_r(list, ",", &items); t; t = strtok_r(NULL, ",", &items))
				match |= strcmp(t, controller) == 0;
		}
		if (match) {
			snprintf(out, len, "%s", c2 + 1);
			return 0;
		}
	}
	return -1;
}

/* A CFS quota in thousandths of a CPU, or 0 when there is none.  dicomd
 * must see the cgroup file systems: `ip netns exec` remounts /sys without
 * them, so the lab enters only the node's network namespace (nsenter --net). */
static uint32_t quota_milli(void)
{
	char path[512], rel[256], buf[128];
	if (cgroup_path("cpu", rel, sizeof(rel)) == 0) {
		static const char *const mounts[] = {
			"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct",
		};
		for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
			snprintf(path, sizeof(path), "%s%s/cpu.cfs_quota_us", mounts[i], rel);
			if (read_small(path, buf, sizeof(buf)) <= 0)
				continue;
			long long quota = strtoll(buf, NULL, 10);
			snprintf(path, sizeof(path), "%s%s/cpu.cfs_period_us", mounts[i], rel);
			if (read_small(path, buf, sizeof(buf)) <= 0)
				continue;
			long long period = strtoll(buf, NULL, 10);
			return quota > 0 && period > 0 ? (uint32_t)(quota * 1000 / period) : 0;
		}
	}
	if (cgroup_path(NULL, rel, sizeof(rel)) == 0) {
		static const char *const mounts[] = {
			"/sys/fs/cgroup", "/sys/fs/cgroup/unified",
		};
		for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
			snprintf(path, sizeof(path), "%s%s/cpu.max", mounts[i], rel);
			if (read_small(path, buf, sizeof(buf)) <= 0)
				continue;
			long long quota, period;
			if (sscanf(buf, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0)
				return (uint32_t)(quota * 1000 / period);
			return 0; /* "max": no quota */
		}
	}
	return 0;
}

uint32_t load_cpu_capacity(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	uint32_t cpus = 1;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		cpus = (uint32_t)CPU_COUNT(&set);
	uint32_t cap = cpus * 1000, quota = quota_milli();
	return quota && quota < cap ? quota : cap;
}

void load_sample(struct load_sampler *s, int64_t now, struct load_sample *out)
{
	out->runnable = count_runnable(s);
	out->cpu_milli = load_cpu_capacity();
	meminfo(&out->mem_free_kib, &out->mem_total_kib);
	uint64_t sample = (uint64_t)out->runnable * 1000;
	if (s->last_ns == 0) {
		s->load_x1000 = sample;
	} else {
		/* exponential average over irregular intervals without libm:
		 * weight dt / (tau + dt) for the new sample */
		double dt = (double)(now - s->last_ns), w = dt / ((double)LOAD_TAU_NS + dt);
		s->load_x1000 = (uint64_t)((double)s->load_x1000 * (1 - w) + (double)sample * w + 0.5);
	}
	s->last_ns = now;
	out->load_milli = s->load_x1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)s->load_x1000;
}
