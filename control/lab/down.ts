// Teardown that works after any crash: it trusts nothing but `ip netns list`. Every process in a
// lab namespace is stopped by its own PID (TERM, then KILL), then the namespaces and the state
// directory go. Running it twice, or with no lab, is fine.
import { existsSync } from 'node:fs';
import { pidAlive, selfAndAncestors, stopPids } from '../daemon/proc.js';
import { BRIDGE_NS, labDir } from './config.js';
import { labCgroupDirs, removeLabCgroups } from './cgroup.js';
import { deleteNamespace, listLabNamespaces, nsPids } from './net.js';
import { readState, removeLabDir } from './state.js';

export interface LabDownResult {
  /** false when there was nothing to remove */
  hadLab: boolean;
  namespaces: string[];
  terminated: number[];
  killed: number[];
  durationMs: number;
}

export async function labDown(opts: { graceMs?: number; log?: (msg: string) => void } = {}): Promise<LabDownResult> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const namespaces = (await listLabNamespaces()).sort((a, b) => (a === BRIDGE_NS ? 1 : b === BRIDGE_NS ? -1 : a.localeCompare(b)));
  const state = readState();
  const hadLab = namespaces.length > 0 || existsSync(labDir()) || labCgroupDirs().length > 0;
  const spare = selfAndAncestors();
  const terminated: number[] = [];
  const killed: number[] = [];

  // Processes first (a namespace outlives `ip netns delete` while anything still runs in it).
  // Recorded daemons are included in case one escaped its namespace list.
  if (namespaces.length > 0) log(`stopping processes in ${namespaces.length} namespaces`);
  for (let round = 0; round < 3; round++) {
    const pids = new Set<number>();
    for (const ns of namespaces) for (const p of await nsPids(ns)) pids.add(p);
    if (round === 0 && state) {
      for (const n of state.nodes) for (const p of [n.sshdPid, n.dicomdPid]) if (p && pidAlive(p) && namespaces.includes(n.ns)) pids.add(p);
    }
    const victims = [...pids].filter((p) => !spare.has(p) && pidAlive(p));
    if (victims.length === 0) break;
    const r = await stopPids(victims, opts.graceMs ?? 2000);
    terminated.push(...r.terminated);
    killed.push(...r.killed);
  }
  if (killed.length) log(`killed ${killed.length} that ignored SIGTERM: ${killed.join(' ')}`);

  // The nodes' cgroups (lab up --cpus/--cpu-quota), and anything that is still in them.
  const cg = await removeLabCgroups(spare);
  if (cg.removed.length) log(`removed cgroups ${cg.removed.join(' ')}`);
  terminated.push(...cg.stopped);

  if (namespaces.length > 0) log(`deleting namespaces ${namespaces.join(' ')}`);
  for (const ns of namespaces) await deleteNamespace(ns);
  const left = await listLabNamespaces();
  if (left.length) throw new Error(`namespaces still present after delete: ${left.join(' ')}`);
  removeLabDir();
  return { hadLab, namespaces, terminated, killed, durationMs: performance.now() - t0 };
}
