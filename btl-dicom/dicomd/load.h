/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What this node carries, sampled from /proc and the cgroup files: the
 * node's part of the gossip load vector.  "This node" is dicomd's network
 * namespace (a lab node, or the host), and its CPU capacity is what
 * dicomd's own cpuset and CPU quota allow.
 */
#ifndef DICOMD_LOAD_H
#define DICOMD_LOAD_H

#include <stdint.h>
#include <sys/types.h>

struct load_sampler {
	char netns[64];    /* readlink of /proc/self/ns/net */
	int64_t last_ns;   /* time of the previous sample; 0 before the first */
	uint64_t load_x1000; /* runnable tasks, averaged */
	long clk_tck;
};

struct load_sample {
	uint32_t runnable, load_milli, cpu_milli;
	uint64_t mem_free_kib, mem_total_kib;
};

int load_sampler_init(struct load_sampler *s);
void load_sample(struct load_sampler *s, int64_t now, struct load_sample *out);
/* CPU time (user + system) PID has used, in clock ticks; -1 if it is gone. */
int load_proc_ticks(pid_t pid, uint64_t *ticks);
/* Ticks over ns of wall time as thousandths of a CPU. */
uint32_t load_permille(const struct load_sampler *s, uint64_t ticks, int64_t ns);
/* The capacity dicomd's cpuset and quota give, in thousandths of a CPU. */
uint32_t load_cpu_capacity(void);

#endif
