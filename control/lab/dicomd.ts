// dicomd per lab node: started inside the node's namespace, where @dicomd is that node's own
// abstract socket (abstract sockets are per network namespace).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_SOCKET } from '../daemon/daemon.js';
import { isProgram, pidAlive, spawnDetached, tail, waitFor } from '../daemon/proc.js';
import { abstractListening } from '../daemon/socket.js';
import { DICOMD_PORT, LabError, nodeDir, nodeName, nodeNs, parseSubnet } from './config.js';
import { joinNodeCgroups } from './cgroup.js';
import { assertLabRoutes } from './route.js';
import { type LabGossip, readState } from './state.js';

export const DEFAULT_GOSSIP: LabGossip = { periodMs: 500, window: 16, maxAgeMs: 10_000 };

/** dicomd's gossip options for a lab node; peers are the other nodes' addresses. */
export function gossipArgs(peers: string[], g: LabGossip): string[] {
  return [
    ...(peers.length ? ['--peers', peers.join(',')] : []),
    '--gossip-period-ms', String(g.periodMs),
    '--gossip-window', String(g.window),
    '--gossip-max-age-ms', String(g.maxAgeMs),
  ];
}

/**
 * Starts node k's dicomd. It gossips with `peers` (default: the other nodes of the running lab,
 * with the lab's gossip settings), after the route check has shown that every peer is reached
 * through the lab bridge only.
 */
export async function startNodeDicomd(k: number, addr: string, bin: string, timeoutMs = 5000, gossip?: { peers: string[]; settings: LabGossip; subnet: string }): Promise<number> {
  const dir = nodeDir(k);
  mkdirSync(dir, { recursive: true });
  const log = path.join(dir, 'dicomd.log');
  const out = path.join(dir, 'dicomd.out');
  const state = gossip ? null : readState();
  const g = gossip ?? (state ? { peers: state.nodes.map((n) => n.addr), settings: state.gossip ?? DEFAULT_GOSSIP, subnet: state.subnet } : null);
  const peers = (g?.peers ?? []).filter((p) => p !== addr);
  if (g && peers.length) await assertLabRoutes(nodeNs(k), peers, parseSubnet(g.subnet));
  // nsenter --net, not ip netns exec: that remounts /sys without the cgroup file systems, and
  // dicomd reads its node's CPU quota there.
  const argv = [...joinNodeCgroups(k), 'nsenter', `--net=/run/netns/${nodeNs(k)}`, '--', bin, '--node-addr', addr, '--port', String(DICOMD_PORT), '--name', DEFAULT_SOCKET, '--log', log, ...(g ? gossipArgs(peers, g.settings) : [])];
  const pid = spawnDetached(argv, { outFile: out });
  // Until nsenter has exec'd dicomd, /proc/PID/net shows the host's
  // namespace, where another @dicomd may listen: check the program first.
  const ok = await waitFor(() => !pidAlive(pid) || (isProgram(pid, 'dicomd') && abstractListening(DEFAULT_SOCKET, pid)), timeoutMs, 5);
  if (!ok || !isProgram(pid, 'dicomd')) {
    const why = ok ? 'exited during startup' : `did not listen on @${DEFAULT_SOCKET} within ${timeoutMs} ms`;
    throw new LabError(`dicomd of ${nodeName(k)} ${why}\n--- ${out}\n${tail(out)}\n--- ${log}\n${tail(log)}`);
  }
  return pid;
}

/** Whether node's dicomd is alive and its @dicomd answers in the node's namespace. */
export function nodeDicomdHealth(pid: number | null): { alive: boolean; listening: boolean } {
  const alive = isProgram(pid, 'dicomd');
  return { alive, listening: alive && abstractListening(DEFAULT_SOCKET, pid!) };
}
