// lab up: bridge, nodes, sshd per node, dicomd per node, client ssh config, hostfile, state.
// Every step is timed; a failure half way tears down what was made.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as paths from '../paths.js';
import { DICOMD_MISSING, assertExecutable } from '../daemon/daemon.js';
import { BRIDGE_NS, LabError, SLOTS_PER_NODE, labDir, labSubnet, nodeAddr, nodeDir, nodeName, nodeNs, validateNodeCount } from './config.js';
import { createNodeCgroups, parseCapacity } from './cgroup.js';
import { DEFAULT_GOSSIP, startNodeDicomd } from './dicomd.js';
import { labDown } from './down.js';
import { assertNoOverlap, createBridge, createNode, listLabNamespaces } from './net.js';
import { assertLabRoutes } from './route.js';
import { run } from './sh.js';
import { startSshd, writeClientFiles } from './ssh.js';
import { type LabGossip, type LabNode, type LabState, readState, writeState } from './state.js';

export interface LabUpOptions {
  nodes: number;
  /** start dicomd on every node (default true); fails if the binary is not built */
  dicomd?: boolean;
  dicomdBin?: string;
  /** after startup, ssh from n1 into every node (default true) */
  verify?: boolean;
  /** dicomd gossip between the nodes (defaults: 500 ms period, window 16, max age 10 s) */
  gossip?: Partial<LabGossip>;
  /** cpusets per node, e.g. "n1=0,n2=1" (cgroup v1 cpuset; unlisted nodes keep every CPU) */
  cpus?: string;
  /** CPU quotas per node in CPUs, e.g. "n1=0.5,n3=1.5" (cgroup v1 cpu, CFS quota) */
  cpuQuota?: string;
  log?: (msg: string) => void;
}

export interface LabUpResult {
  state: LabState;
  /** milliseconds per step, and total */
  timings: Record<string, number>;
}

/** The ranges dicomd accepts, checked before anything is created. */
function validGossip(g: LabGossip): LabGossip {
  const check = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new LabError(`gossip ${name} must be an integer from ${min} to ${max}, got ${String(v)}`);
  };
  check('period (ms)', g.periodMs, 10, 60_000);
  check('window', g.window, 1, 1024);
  check('max age (ms)', g.maxAgeMs, 10, 86_400_000);
  return g;
}

export async function labUp(opts: LabUpOptions): Promise<LabUpResult> {
  const log = opts.log ?? (() => {});
  validateNodeCount(opts.nodes);
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (network namespaces, sshd)');
  const bin = path.resolve(opts.dicomdBin ?? paths.dicomdBin);
  const withDicomd = opts.dicomd ?? true;
  if (withDicomd && !existsSync(bin)) throw new LabError(`${DICOMD_MISSING} (or pass --no-dicomd)`);
  if (withDicomd) {
    try {
      assertExecutable(bin);
    } catch (e) {
      throw new LabError((e as Error).message);
    }
  }
  const subnet = labSubnet();
  const gossip = validGossip({ ...DEFAULT_GOSSIP, ...opts.gossip });
  const capacity = parseCapacity(opts.cpus, opts.cpuQuota, opts.nodes);
  const existing = await listLabNamespaces();
  if (existing.length > 0 || readState()) {
    throw new LabError(`a lab is already up (${existing.join(' ') || 'state file present'}); run: dicomctl lab down`);
  }
  await assertNoOverlap(subnet);

  const timings: Record<string, number> = {};
  const t0 = performance.now();
  let t = t0;
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = Math.round(now - t);
    log(`${name}: ${timings[name]} ms`);
    t = now;
  };
  const ks = Array.from({ length: opts.nodes }, (_, i) => i + 1);
  const addrs = ks.map((k) => nodeAddr(k, subnet));
  try {
    log(`creating ${opts.nodes} nodes on ${subnet.cidr} (bridge in ${BRIDGE_NS})`);
    await createBridge();
    await Promise.all(ks.map((k) => createNode(k, subnet)));
    for (const [k, c] of capacity) {
      createNodeCgroups(k, c);
      log(`${nodeName(k)}: ${[c.cpus !== undefined ? `cpuset ${c.cpus}` : '', c.quota !== undefined ? `quota ${c.quota} CPU` : ''].filter(Boolean).join(', ')}`);
    }
    lap('network');

    const { sshConfig, identity, authorizedKeys } = await writeClientFiles(addrs);
    log('starting sshd on every node');
    const sshds = await Promise.all(ks.map((k) => startSshd(k, addrs[k - 1]!, authorizedKeys)));
    lap('sshd');

    let dicomdPids: (number | null)[] = ks.map(() => null);
    if (withDicomd) {
      log('starting dicomd on every node');
      dicomdPids = await Promise.all(ks.map((k) => startNodeDicomd(k, addrs[k - 1]!, bin, undefined, { peers: addrs, settings: gossip, subnet: subnet.cidr })));
      lap('dicomd');
    }

    const hostfile = path.join(labDir(), 'hostfile');
    writeFileSync(hostfile, addrs.map((a) => `${a} slots=${SLOTS_PER_NODE}`).join('\n') + '\n');
    const nodes: LabNode[] = ks.map((k) => ({
      name: nodeName(k),
      ns: nodeNs(k),
      addr: addrs[k - 1]!,
      sshdPid: sshds[k - 1]!.pid,
      dicomdPid: dicomdPids[k - 1] ?? null,
      hostname: sshds[k - 1]!.hostname,
      dir: nodeDir(k),
      ...(capacity.has(k) ? { capacity: capacity.get(k) } : {}),
    }));
    const state: LabState = {
      subnet: subnet.cidr,
      bridgeNs: BRIDGE_NS,
      nodes,
      sshConfig,
      hostfile,
      identity,
      dicomd: withDicomd,
      gossip,
      createdAt: new Date().toISOString(),
    };
    writeState(state);

    if (opts.verify ?? true) {
      log(`checking routes and ssh from ${nodeNs(1)} to every node`);
      await assertLabRoutes(nodeNs(1), addrs, subnet);
      await Promise.all(
        nodes.map(async (n) => {
          const r = await run(['ip', 'netns', 'exec', nodeNs(1), 'ssh', '-F', sshConfig, n.addr, 'true'], { allowFail: true, timeoutMs: 15_000 });
          if (r.exitCode !== 0) throw new LabError(`ssh from n1 to ${n.name} (${n.addr}) failed: ${r.stderr.trim()}`);
        }),
      );
      lap('verify');
    }
    timings.total = Math.round(performance.now() - t0);
    return { state, timings };
  } catch (e) {
    log(`lab up failed; tearing down: ${(e as Error).message.split('\n')[0]}`);
    await labDown().catch(() => {});
    throw e;
  }
}
