// Unequal lab nodes: a cgroup v1 cpuset (which CPUs) and/or a CFS quota (how much CPU time) per
// node, under /sys/fs/cgroup/{cpuset,cpu}/dicom-lab/n<k>. Whatever the lab starts in a node (sshd,
// dicomd, labExec's commands) joins the node's groups before it execs, so everything launched
// there later (orted and the ranks, through sshd) inherits them. No state is needed to find them:
// a node is capped exactly when its group directories exist.
import { existsSync, readFileSync, readdirSync, rmdirSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pidAlive, stopPids } from '../daemon/proc.js';
import { LabError, nodeName } from './config.js';

export const CPUSET_ROOT = process.env.DICOM_CGROUP_CPUSET ?? '/sys/fs/cgroup/cpuset';
export const CPU_ROOT = process.env.DICOM_CGROUP_CPU ?? '/sys/fs/cgroup/cpu';
const LAB_GROUP = 'dicom-lab';
const QUOTA_PERIOD_US = 100_000;

export interface NodeCapacity {
  /** cpuset list, e.g. "0" or "0-1" */
  cpus?: string;
  /** CPU time per period, in CPUs (0.5 = half a CPU) */
  quota?: number;
}

const groupDir = (root: string, k?: number) => (k === undefined ? path.join(root, LAB_GROUP) : path.join(root, LAB_GROUP, nodeName(k)));

/** CPU numbers of a cpuset list like "0-2,5". */
export function parseCpuList(list: string): number[] {
  const out = new Set<number>();
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new LabError(`not a CPU list like 0 or 0-1 or 0,2: "${list}"`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new LabError(`CPU range ${part} runs backwards`);
    for (let c = a; c <= b; c++) out.add(c);
  }
  return [...out].sort((x, y) => x - y);
}

function hostCpus(): number[] {
  try {
    return parseCpuList(readFileSync(path.join(CPUSET_ROOT, 'cpuset.effective_cpus'), 'utf8'));
  } catch {
    return parseCpuList(readFileSync(path.join(CPUSET_ROOT, 'cpuset.cpus'), 'utf8'));
  }
}

/**
 * "n1=0,n2=1,n3=0-1" (cpusets: a token without "=" continues the previous node's list, so
 * "n1=0,1" is CPUs 0 and 1) and "n1=0.5,n3=1.5" (quotas, in CPUs) into one spec per node.
 */
export function parseCapacity(cpus: string | undefined, quota: string | undefined, nodes: number): Map<number, NodeCapacity> {
  const spec = new Map<number, NodeCapacity>();
  const nodeOf = (name: string, flag: string) => {
    const m = /^n(\d+)$/.exec(name.trim());
    const k = Number(m?.[1]);
    if (!m || k < 1 || k > nodes) throw new LabError(`${flag}: "${name}" is not a node of this lab (n1..n${nodes})`);
    return k;
  };
  if (cpus !== undefined) {
    const host = hostCpus();
    let cur: number | undefined;
    const lists = new Map<number, string[]>();
    for (const tok of cpus.split(',')) {
      const eq = tok.indexOf('=');
      if (eq >= 0) {
        cur = nodeOf(tok.slice(0, eq), '--cpus');
        if (lists.has(cur)) throw new LabError(`--cpus: ${nodeName(cur)} is given twice`);
        lists.set(cur, [tok.slice(eq + 1)]);
      } else if (cur === undefined) {
        throw new LabError(`--cpus must start with a node, like n1=0,n2=1; got "${cpus}"`);
      } else {
        lists.get(cur)!.push(tok);
      }
    }
    for (const [k, parts] of lists) {
      const list = parts.join(',');
      const missing = parseCpuList(list).filter((c) => !host.includes(c));
      if (missing.length) throw new LabError(`--cpus: ${nodeName(k)}=${list} names CPU ${missing.join(',')}, but this machine has CPUs ${host.join(',')}`);
      spec.set(k, { cpus: list });
    }
  }
  if (quota !== undefined) {
    const max = hostCpus().length;
    for (const tok of quota.split(',')) {
      const [name, value, ...rest] = tok.split('=');
      const k = nodeOf(name ?? '', '--cpu-quota');
      const q = Number(value);
      if (rest.length || value === undefined || value.trim() === '' || !Number.isFinite(q) || q < 0.01 || q > max) {
        throw new LabError(`--cpu-quota: ${tok} must be node=CPUs with CPUs from 0.01 to ${max}, e.g. n1=0.5`);
      }
      if (spec.get(k)?.quota !== undefined) throw new LabError(`--cpu-quota: ${nodeName(k)} is given twice`);
      spec.set(k, { ...spec.get(k), quota: q });
    }
  }
  return spec;
}

function write(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch (e) {
    throw new LabError(`cannot write "${value}" to ${file}: ${(e as Error).message}`);
  }
}

function requireController(root: string, what: string): void {
  if (!existsSync(path.join(root, 'cgroup.procs'))) {
    throw new LabError(`${what} needs the cgroup v1 ${path.basename(root)} controller mounted at ${root}`);
  }
}

/** Creates node k's groups with its limits. */
export function createNodeCgroups(k: number, c: NodeCapacity): void {
  if (c.cpus !== undefined) {
    requireController(CPUSET_ROOT, '--cpus');
    const parent = groupDir(CPUSET_ROOT);
    mkdirSync(parent, { recursive: true });
    // a v1 cpuset admits no task, and no child can take CPUs, until its own cpus and mems are set
    const mems = readFileSync(path.join(CPUSET_ROOT, 'cpuset.mems'), 'utf8').trim();
    write(path.join(parent, 'cpuset.cpus'), readFileSync(path.join(CPUSET_ROOT, 'cpuset.cpus'), 'utf8').trim());
    write(path.join(parent, 'cpuset.mems'), mems);
    const dir = groupDir(CPUSET_ROOT, k);
    mkdirSync(dir, { recursive: true });
    write(path.join(dir, 'cpuset.cpus'), c.cpus);
    write(path.join(dir, 'cpuset.mems'), mems);
  }
  if (c.quota !== undefined) {
    requireController(CPU_ROOT, '--cpu-quota');
    const dir = groupDir(CPU_ROOT, k);
    mkdirSync(dir, { recursive: true });
    write(path.join(dir, 'cpu.cfs_period_us'), String(QUOTA_PERIOD_US));
    write(path.join(dir, 'cpu.cfs_quota_us'), String(Math.round(c.quota * QUOTA_PERIOD_US)));
  }
}

/** The cgroup.procs files of node k's groups (none when the node is not capped). */
export function nodeCgroupProcs(k: number): string[] {
  return [CPUSET_ROOT, CPU_ROOT].map((r) => path.join(groupDir(r, k), 'cgroup.procs')).filter((f) => existsSync(f));
}

/**
 * An argv prefix that puts the command into node k's groups and then execs it (so the PID stays
 * the command's own); empty when the node is not capped.
 */
export function joinNodeCgroups(k: number): string[] {
  const files = nodeCgroupProcs(k);
  if (files.length === 0) return [];
  return ['sh', '-c', 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"', 'join-cgroups', ...files, '--'];
}

/** Moves processes (e.g. a rank restored on node k) into node k's groups. */
export function moveToNodeCgroups(k: number, pids: number[]): void {
  for (const f of nodeCgroupProcs(k)) for (const p of pids) write(f, String(p));
}

/** What node k's groups allow now, as read back from the kernel. */
export function readNodeCapacity(k: number): NodeCapacity | null {
  const out: NodeCapacity = {};
  const cs = path.join(groupDir(CPUSET_ROOT, k), 'cpuset.cpus');
  if (existsSync(cs)) out.cpus = readFileSync(cs, 'utf8').trim();
  const q = path.join(groupDir(CPU_ROOT, k), 'cpu.cfs_quota_us');
  if (existsSync(q)) {
    const quota = Number(readFileSync(q, 'utf8'));
    const period = Number(readFileSync(path.join(groupDir(CPU_ROOT, k), 'cpu.cfs_period_us'), 'utf8'));
    if (quota > 0 && period > 0) out.quota = quota / period;
  }
  return out.cpus === undefined && out.quota === undefined ? null : out;
}

/** Every lab group directory that exists, children first. */
export function labCgroupDirs(): string[] {
  const dirs: string[] = [];
  for (const root of [CPUSET_ROOT, CPU_ROOT]) {
    const parent = groupDir(root);
    if (!existsSync(parent)) continue;
    for (const d of readdirSync(parent, { withFileTypes: true })) if (d.isDirectory() && /^n\d+$/.test(d.name)) dirs.push(path.join(parent, d.name));
    dirs.push(parent);
  }
  return dirs;
}

/**
 * Stops whatever is still in the lab's groups (by PID) and removes the groups. Returns the
 * directories removed. Safe to run with no groups, or twice.
 */
export async function removeLabCgroups(spare: Set<number>): Promise<{ removed: string[]; stopped: number[] }> {
  const dirs = labCgroupDirs();
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
    } catch {
      /* gone meanwhile */
    }
  }
  const stopped = [...pids].filter((p) => !spare.has(p) && pidAlive(p));
  if (stopped.length) await stopPids(stopped, 2000);
  const removed: string[] = [];
  for (const d of dirs) {
    try {
      rmdirSync(d);
      removed.push(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new LabError(`cannot remove ${d}: ${(e as Error).message}`);
    }
  }
  return { removed, stopped };
}
