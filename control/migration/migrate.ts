// Moves one live rank from a lab node to another (DESIGN.md §4), MOSIX style:
//   detach    its DiCOM thread drains the tunnel home and closes every external socket
//   dump      CRIU, inside the source node
//   transfer  the images, over ssh from the source node to the target node (the lab network)
//   restore   CRIU, inside the target node; the rank keeps its PID
//   reattach  the rank re-registers with the target's dicomd, which tells the home directory
//   first     the first message the rank receives after the move (peers re-resolved, retransmitted)
// A failure at any step rolls back: the rank runs on its source again, and the job goes on.
import { mkdirSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { pidAlive, sleep, stopPids, waitFor } from '../daemon/proc.js';
import { LibdicomError, inNetns, queryDetach, queryPing, queryResolve, queryStatus } from '../dicom/libdicom.js';
import { assertLabRoute } from '../lab/route.js';
import { parseSubnet } from '../lab/config.js';
import { joinNodeCgroups } from '../lab/cgroup.js';
import { labExec } from '../lab/mpirun.js';
import { type LabNode, type LabState, requireState } from '../lab/state.js';
import { dicomAdoptBin, stateDir } from '../paths.js';
import { runCriu } from './criu.js';

export class MigrationError extends Error {
  override name = 'MigrationError';
  constructor(message: string, readonly status: 400 | 404 | 409 | 500 = 400) {
    super(message);
  }
}

export type Phase = 'detach' | 'dump' | 'transfer' | 'restore' | 'reattach' | 'first_message';

export interface MigrationOutcome {
  outcome: 'succeeded' | 'rolled-back' | 'failed';
  /** rank's home address "a.b.c.d:pid" */
  addr: string;
  pid: number;
  from: string;
  to: string;
  /** where the rank runs when the migration is over */
  node: string;
  /** milliseconds per phase that ran */
  phases: Partial<Record<Phase, number>>;
  /** from detach to reattach: the rank could not communicate */
  downtimeMs: number | null;
  imageBytes: number;
  error?: string;
  /** the step that failed, when outcome is not succeeded */
  failedAt?: Phase | 'check';
}

export interface MigrateOptions {
  /** home address "a.b.c.d:pid" of the rank */
  addr: string;
  /** lab node names, e.g. "n1" */
  from: string;
  to: string;
  /** the rank reattaches by itself after this long if it was never dumped (dump failed) */
  holdMs?: number;
  /** how long to wait for the first message after the move (it may be computing) */
  firstMessageTimeoutMs?: number;
  onPhase?: (phase: Phase, ms: number) => void;
  /** receives the PID of the restore's CRIU on the target (a test stops it to prove the rollback) */
  onRestoreStart?: (pid: number) => void;
  /**
   * Try even a rank that is not on DiCOM (no endpoint to detach): the benchmark uses it to show
   * what happens to a btl/tcp job. CRIU then meets the rank's TCP sockets.
   */
  force?: boolean;
}

export function labNode(state: LabState, name: string): LabNode {
  const n = state.nodes.find((x) => x.name === name || x.addr === name);
  if (!n) throw new MigrationError(`unknown node "${name}"; the lab has ${state.nodes.map((x) => x.name).join(', ')}`, 404);
  return n;
}

/** The network namespace a process runs in, as the inode of /proc/PID/ns/net. */
function netnsOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

function nsInode(ns: string): string {
  return `net:[${statSync(`/run/netns/${ns}`).ino}]`;
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(path.join(dir, f)).size, 0);
}

/**
 * CRIU must share the rank's mount namespace, or it tries to dump that namespace too (a lab
 * node's processes live in the one `ip netns exec` made for its sshd). So dumps run in the rank's
 * namespaces, and restores in those of the target node's sshd, where the node's processes live.
 */
const enterProcess = (pid: number) => ['nsenter', '-t', String(pid), '-m', '-n', '-u', '--'];

/**
 * Restores on one machine take turns. An Open MPI 4.1 rank holds an fd on a deleted
 * /dev/shm/open_mpi.0000; CRIU restores such a "ghost" file by recreating it at that path for a
 * moment, so two ranks restored at once (the lab's nodes share /dev/shm) collide with EEXIST.
 */
let restoreTurn: Promise<unknown> = Promise.resolve();
function oneRestoreAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const mine = restoreTurn.then(fn, fn);
  restoreTurn = mine.catch(() => undefined);
  return mine;
}

/**
 * ssh options for image transfers: the source node keeps one master connection per target for a
 * minute, so a migration skips the key exchange (most of a small image's transfer time here), and
 * AES-GCM is the cipher this CPU does in hardware.
 */
function sshFast(state: LabState, from: LabNode): string[] {
  const mux = path.join(path.dirname(state.sshConfig), `mux-${from.name}-%C`);
  return ['-o', 'ControlMaster=auto', '-o', `ControlPath=${mux}`, '-o', 'ControlPersist=60', '-c', 'aes128-gcm@openssh.com'];
}

/**
 * A restore runs in the node's cgroups (its CPU capacity, when the lab caps it) and its
 * namespaces; CRIU leaves cgroups alone, so the rank lands in the node's groups, not the ones
 * it had on its source.
 */
const enterNodeRestore = (n: LabNode) => [...joinNodeCgroups(Number(n.name.slice(1))), ...enterProcess(n.sshdPid)];

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

export async function migrateRank(o: MigrateOptions): Promise<MigrationOutcome> {
  const state = requireState();
  const from = labNode(state, o.from);
  const to = labNode(state, o.to);
  const pid = Number(o.addr.split(':')[1]);
  if (!/^\d+\.\d+\.\d+\.\d+:\d+$/.test(o.addr) || !Number.isInteger(pid) || pid < 2) {
    throw new MigrationError(`not a rank address (home node:pid): "${o.addr}"`);
  }
  const phases: Partial<Record<Phase, number>> = {};
  const result = (outcome: MigrationOutcome['outcome'], node: LabNode, extra: Partial<MigrationOutcome> = {}): MigrationOutcome => ({
    outcome, addr: o.addr, pid, from: from.name, to: to.name, node: node.name, phases, downtimeMs: null, imageBytes: 0, ...extra,
  });
  const mark = (p: Phase, t0: number) => {
    phases[p] = Math.round((performance.now() - t0) * 10) / 10;
    o.onPhase?.(p, phases[p]!);
  };

  // Checks that change nothing: a refusal here leaves the rank untouched.
  if (from.name === to.name) throw new MigrationError(`rank ${o.addr} is already on ${to.name}`, 409);
  if (!pidAlive(pid) || netnsOf(pid) !== nsInode(from.ns)) {
    throw new MigrationError(`no process ${pid} runs on ${from.name}`, 404);
  }
  try {
    queryStatus(inNetns(to.ns));
  } catch (e) {
    return result('failed', from, { failedAt: 'check', error: `the target's dicomd does not answer: ${errText(e)}` });
  }
  if (!o.force) {
    let ping: Record<string, unknown>;
    try {
      ping = queryPing(o.addr, inNetns(from.ns));
    } catch (e) {
      return result('failed', from, { failedAt: 'check', error: `the rank is not registered with ${from.name}'s dicomd: ${errText(e)}` });
    }
    if (ping.migratable !== 1) {
      return result('failed', from, { failedAt: 'check', error: 'the rank was not started by dicom-run (no home stub): it cannot leave its node' });
    }
  }
  await assertLabRoute(from.ns, to.addr, parseSubnet(state.subnet));

  const id = `${pid}-${Date.now()}`;
  const base = path.join(stateDir, 'migrations', id);
  const src = path.join(base, 'src');
  const dst = path.join(base, 'dst');
  mkdirSync(src, { recursive: true });
  const cleanup = () => rmSync(base, { recursive: true, force: true });
  const tDetach = performance.now();

  try {
    // 1. detach
    try {
      if (!o.force) queryDetach(o.addr, o.holdMs ?? 3000, inNetns(from.ns));
    } catch (e) {
      return result('failed', from, { failedAt: 'detach', error: errText(e) });
    }
    mark('detach', tDetach);

    // 2. dump (CRIU kills the rank once its images are complete)
    let t0 = performance.now();
    const dump = await runCriu(enterProcess(pid), ['dump', '-t', String(pid), '--shell-job', '--ghost-limit', '64M'], src, 'dump.log');
    if (!dump.ok) {
      // CRIU let it run again; it reattaches where it is when its hold ends.
      const back = o.force ? pidAlive(pid) : await waitReattached(o.addr, from, (o.holdMs ?? 3000) + 10_000);
      return result(back ? 'rolled-back' : 'failed', from, { failedAt: 'dump', error: `dump: ${dump.error}` });
    }
    mark('dump', t0);
    const imageBytes = dirBytes(src);

    // 3. transfer over the lab network, as between real hosts
    t0 = performance.now();
    const xfer = await labExec(
      Number(from.name.slice(1)),
      ['sh', '-c', 'tar -C "$1" -cf - . | ssh -F "$2" $5 "$3" "mkdir -p \'$4\' && tar -C \'$4\' -xf -"', 'xfer', src, state.sshConfig, to.addr, dst, sshFast(state, from).join(' ')],
      { timeoutMs: 60_000 },
    );
    if (xfer.exitCode !== 0) return await rollback('transfer', `transfer: ${xfer.stderr.trim().slice(-300) || `exit ${xfer.exitCode}`}`);
    mark('transfer', t0);

    // 4. restore on the target, same PID
    t0 = performance.now();
    const restore = await oneRestoreAtATime(() => runCriu([...enterNodeRestore(to), dicomAdoptBin], ['restore', '--shell-job', '-d', '--manage-cgroups=ignore'], dst, 'restore.log', { onStart: o.onRestoreStart }));
    if (!restore.ok) {
      // Stopped too late, the restore may have finished: a rank that runs and answers on the
      // target may already have exchanged messages there, and its old images must not be revived.
      if (pidAlive(pid) && netnsOf(pid) === nsInode(to.ns) && (await waitReattached(o.addr, to, 2000))) {
        mark('restore', t0);
      } else {
        return await rollback('restore', `restore: ${restore.error}`);
      }
    } else {
      mark('restore', t0);
    }

    // 5. reattach: registered with the target's dicomd, the home directory updated
    t0 = performance.now();
    if (!(await waitReattached(o.addr, to, 10_000))) {
      return result('failed', to, { failedAt: 'reattach', error: 'the rank was restored but did not reattach within 10 s', imageBytes });
    }
    mark('reattach', t0);
    const downtimeMs = Math.round((performance.now() - tDetach) * 10) / 10;
    await waitHomeKnows(o.addr, state, to);

    // 6. the first message after the move, as the rank itself saw it
    t0 = performance.now();
    const firstUs = await waitFirstMessage(o.addr, to, o.firstMessageTimeoutMs ?? 5000);
    if (firstUs !== null) {
      phases.first_message = Math.round(firstUs / 100) / 10;
      o.onPhase?.('first_message', phases.first_message);
    }
    return result('succeeded', to, { downtimeMs, imageBytes });

    async function rollback(at: Phase, error: string): Promise<MigrationOutcome> {
      // A restore stopped half-way may leave the rank's PID taken by what it had made of it, a
      // remnant that never ran (it would have reattached): the source copy is gone (dumped).
      await waitFor(() => !pidAlive(pid), 1000, 10);
      if (pidAlive(pid) && netnsOf(pid) !== nsInode(from.ns)) await stopPids([pid], 200);
      await waitFor(() => !pidAlive(pid), 5000, 10);
      const again = await oneRestoreAtATime(() => runCriu([...enterNodeRestore(from), dicomAdoptBin], ['restore', '--shell-job', '-d', '--manage-cgroups=ignore'], src, 'rollback.log'));
      if (!again.ok) return result('failed', from, { failedAt: at, error: `${error}; rollback restore on ${from.name} failed too: ${again.error}`, imageBytes });
      const back = await waitReattached(o.addr, from, 10_000);
      return result(back ? 'rolled-back' : 'failed', from, { failedAt: at, error, imageBytes });
    }
  } finally {
    cleanup();
  }
}

/** True once the rank answers a PING through node's dicomd, i.e. it registered there. */
async function waitReattached(addr: string, node: LabNode, timeoutMs: number): Promise<boolean> {
  return waitFor(() => {
    try {
      const p = queryPing(addr, inNetns(node.ns));
      return p.detached === 0;
    } catch {
      return false;
    }
  }, timeoutMs, 2);
}

/** The home directory must point at the new node before peers can find the rank. */
async function waitHomeKnows(addr: string, state: LabState, node: LabNode): Promise<boolean> {
  const homeAddr = addr.split(':')[0];
  const home = state.nodes.find((n) => n.addr === homeAddr);
  if (!home) return false;
  return waitFor(() => {
    try {
      return queryResolve(addr, inNetns(home.ns)).node === node.addr;
    } catch (e) {
      if (e instanceof LibdicomError) return false;
      throw e;
    }
  }, 5000, 5);
}

/** Microseconds from the reattach to the first message the rank received after it, or null. */
async function waitFirstMessage(addr: string, node: LabNode, timeoutMs: number): Promise<number | null> {
  let us: number | null = null;
  await waitFor(() => {
    try {
      const v = Number(queryPing(addr, inNetns(node.ns)).first_msg_after_reattach_us);
      if (v > 0) us = v;
    } catch {
      /* between registrations */
    }
    return us !== null;
  }, timeoutMs, 5);
  await sleep(0);
  return us;
}
