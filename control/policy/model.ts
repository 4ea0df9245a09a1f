// The cluster as the policy sees it, built from a gossip view: nodes with their load per CPU,
// the ranks each runs with what they add to its load, and the traffic between ranks.
import type { GossipEntry } from '../dicom/libdicom.js';

export interface Rank {
  addr: string;
  job: string | null;
  rank: number | null;
  /** fraction of a CPU it used recently */
  cpu: number;
  /** how much of its node's load it accounts for (runnable tasks) */
  load: number;
  node: string;
}

export interface Node {
  id: string;
  load: number;
  cpus: number;
  ranks: Rank[];
}

export interface Cluster {
  nodes: Map<string, Node>;
  ranks: Map<string, Rank>;
  /** each rank's peers: addr -> addr -> bytes/s */
  peers: Map<string, Map<string, number>>;
}

export const pressure = (n: Node) => (n.cpus > 0 ? n.load / n.cpus : n.load > 0 ? Infinity : 0);

/**
 * What a rank adds to its node's load. A CPU-bound rank is always runnable, but on a
 * saturated node it only gets its share of a CPU: scale its CPU use back up by how
 * oversubscribed the node is, and count at most one task.
 */
export function contribution(cpu: number, node: { load: number; cpus: number }): number {
  const over = node.cpus > 0 ? Math.max(1, node.load / node.cpus) : 1;
  return Math.min(1, Math.max(0, cpu) * over);
}

export function buildCluster(entries: GossipEntry[], maxAgeMs: number): Cluster {
  const nodes = new Map<string, Node>();
  const ranks = new Map<string, Rank>();
  for (const e of entries) {
    if (e.age_ms > maxAgeMs) continue;
    const n: Node = { id: e.node, load: e.load, cpus: e.cpus, ranks: [] };
    for (const p of e.procs) {
      const r: Rank = { addr: p.addr, job: p.job || null, rank: p.rank, cpu: p.cpu, load: contribution(p.cpu, n), node: n.id };
      n.ranks.push(r);
      ranks.set(r.addr, r);
    }
    nodes.set(n.id, n);
  }
  const peers = new Map<string, Map<string, number>>();
  const add = (a: string, b: string, rate: number) => {
    const m = peers.get(a) ?? new Map<string, number>();
    m.set(b, (m.get(b) ?? 0) + rate);
    peers.set(a, m);
  };
  for (const e of entries) {
    if (e.age_ms > maxAgeMs) continue;
    for (const p of e.pairs) {
      if (p.src === p.dst || p.rate <= 0) continue;
      add(p.src, p.dst, p.rate);
      add(p.dst, p.src, p.rate);
    }
  }
  return { nodes, ranks, peers };
}

/** bytes/s between `addr` and the ranks now on node `node` (addr itself excluded). */
export function trafficWithNode(c: Cluster, addr: string, node: string): number {
  let sum = 0;
  for (const [peer, rate] of c.peers.get(addr) ?? []) if (peer !== addr && c.ranks.get(peer)?.node === node) sum += rate;
  return sum;
}
