// The policy engine: pure. Given a gossip view, a policy's parameters, its node pools and what
// happened recently, it decides which ranks should move where, and says why for every rank it
// considered, moved or not. It orders nothing itself: the caller hands the migrate decisions to
// the migration orchestrator (or, in a dry run, only reports them).
import type { GossipEntry } from '../dicom/libdicom.js';
import { type Node, type Rank, buildCluster, pressure, trafficWithNode } from './model.js';
import type { PolicyParams } from './params.js';

export interface Pool {
  name: string;
  /** node ids as the gossip view names them (IPv4 addresses) */
  nodes: string[];
}

/** What the engine remembers between evaluations: which nodes it saw as overloaded. */
export interface PolicyState {
  overloaded: string[];
}

/** A rank by its labels, or by its address (home node:pid) as migration records have it. */
export interface RankRef {
  job?: string | null;
  rank?: number | null;
  addr?: string;
}

export interface PolicyInput {
  entries: GossipEntry[];
  params: PolicyParams;
  /** definitions of the pools params.pools names */
  pools?: Pool[];
  state?: PolicyState;
  /** recent migrations, `at` in ms since the epoch */
  history?: (RankRef & { at: number })[];
  /** migrations ordered and not finished yet */
  inFlight?: RankRef[];
  /** ms since the epoch */
  now: number;
  dryRun?: boolean;
}

export interface Decision {
  action: 'migrate' | 'skip';
  job: string | null;
  rank: number | null;
  addr: string;
  fromNode: string;
  toNode: string | null;
  reason: string;
  /** load per CPU the busier of the two nodes loses */
  gain?: number;
  /** bytes/s of the rank's traffic that the move makes cross nodes (negative: becomes local) */
  remoteDelta?: number;
  dryRun: boolean;
}

export interface NodeSummary {
  node: string;
  pool: string | null;
  loadPerCpu: number;
  overloaded: boolean;
}

export interface PolicyResult {
  decisions: Decision[];
  taken: Decision[];
  skipped: Decision[];
  nodes: NodeSummary[];
  state: PolicyState;
  dryRun: boolean;
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : String(x));
const mbps = (x: number) => `${(x / 1e6).toFixed(1)} MB/s`;
const rankName = (r: Rank) => (r.rank === null ? r.addr : `${r.job ?? '?'}:${r.rank}`);
const refKey = (job: string | null, rank: number | null) => `${job ?? ''}:${rank ?? ''}`;

interface Move {
  rank: Rank;
  from: Node;
  to: Node;
  gain: number;
  remoteDelta: number;
  net: number;
  fromAfter: number;
  toAfter: number;
}

export function evaluate(input: PolicyInput): PolicyResult {
  const p = input.params;
  const dryRun = input.dryRun ?? false;
  const cluster = buildCluster(input.entries, p.maxEntryAgeMs);

  // Which pool each node is in; without pools every node is in one.
  const poolOf = new Map<string, string | null>();
  for (const id of cluster.nodes.keys()) poolOf.set(id, p.pools.length ? null : '*');
  for (const name of [...p.pools].reverse()) {
    const def = input.pools?.find((x) => x.name === name);
    if (!def) throw new Error(`pool "${name}" is not defined`);
    for (const n of def.nodes) if (poolOf.has(n)) poolOf.set(n, name);
  }
  const inScope = (n: Node) => poolOf.get(n.id) !== null;

  // Threshold with hysteresis: a node becomes overloaded above the threshold and stays so
  // until it drops below threshold - hysteresis.
  const was = new Set(input.state?.overloaded ?? []);
  const isOver = (n: Node) => pressure(n) > p.threshold || (was.has(n.id) && pressure(n) > p.threshold - p.hysteresis);
  const measured = [...cluster.nodes.values()].filter((n) => inScope(n) && isOver(n)).map((n) => n.id);
  const nodes: NodeSummary[] = [...cluster.nodes.values()].map((n) => ({
    node: n.id,
    pool: poolOf.get(n.id) === '*' ? null : poolOf.get(n.id) ?? null,
    loadPerCpu: pressure(n),
    overloaded: measured.includes(n.id),
  }));

  const pinnedJobs = new Set(p.pinnedJobs);
  const pinnedRanks = new Set(p.pinnedRanks);
  // Ranks are matched by labels and by address; both keys go into the same sets.
  const keys = (r: RankRef) => [...(r.job != null && r.rank != null ? [refKey(r.job, r.rank)] : []), ...(r.addr ? [`@${r.addr}`] : [])];
  const inFlight = new Set((input.inFlight ?? []).flatMap(keys));
  const lastMove = new Map<string, number>();
  for (const h of input.history ?? []) for (const k of keys(h)) lastMove.set(k, Math.max(lastMove.get(k) ?? 0, h.at));
  const lastMoveOf = (r: Rank) => Math.max(lastMove.get(refKey(r.job, r.rank)) ?? -Infinity, lastMove.get(`@${r.addr}`) ?? -Infinity);

  const taken: Decision[] = [];
  const skips = new Map<string, Decision>();
  const moved = new Set<string>();
  const skip = (r: Rank, reason: string, extra: Partial<Decision> = {}) =>
    skips.set(r.addr, { action: 'skip', job: r.job, rank: r.rank, addr: r.addr, fromNode: r.node, toNode: null, reason, dryRun, ...extra });

  /** Why a rank may not move at all, or null. */
  const barred = (r: Rank): string | null => {
    if (r.rank === null || r.job === null) return 'not an MPI rank (its endpoint reports no rank and job)';
    if (pinnedJobs.has(r.job)) return `job ${r.job} is pinned`;
    if (pinnedRanks.has(`${r.job}:${r.rank}`)) return `rank ${r.job}:${r.rank} is pinned`;
    if (inFlight.has(refKey(r.job, r.rank)) || inFlight.has(`@${r.addr}`)) return 'already migrating';
    const last = lastMoveOf(r);
    if (last > -Infinity && input.now - last < p.cooldownSec * 1000) {
      return `in cooldown: moved ${f2((input.now - last) / 1000)} s ago, cooldown ${p.cooldownSec} s`;
    }
    if (r.load < 0.01) return `uses no CPU (${f2(r.cpu)} of a CPU): moving it would not lower the load`;
    return null;
  };

  /** The best target for r, or a reason there is none. */
  const bestMove = (r: Rank, from: Node): Move | string => {
    const targets = [...cluster.nodes.values()].filter((t) => t.id !== from.id && t.cpus > 0 && poolOf.get(t.id) === poolOf.get(from.id));
    if (targets.length === 0) return `no other node in ${poolOf.get(from.id) === '*' ? 'the cluster' : `pool ${poolOf.get(from.id)}`}`;
    const before = pressure(from);
    const fromAfter = (from.load - r.load) / from.cpus;
    const local = trafficWithNode(cluster, r.addr, from.id);
    let best: Move | undefined;
    let fullest: { node: string; after: number } | undefined;
    for (const to of targets) {
      const toAfter = (to.load + r.load) / to.cpus;
      if (toAfter > p.threshold) {
        if (!fullest || toAfter < fullest.after) fullest = { node: to.id, after: toAfter };
        continue;
      }
      const gain = before - Math.max(fromAfter, toAfter);
      const remoteDelta = local - trafficWithNode(cluster, r.addr, to.id);
      const net = gain - (p.commCostPerGBps * remoteDelta) / 1e9;
      if (!best || net > best.net) best = { rank: r, from, to, gain, remoteDelta, net, fromAfter, toAfter };
    }
    if (!best) return `no node would stay at or below the threshold ${f2(p.threshold)} after taking it (least loaded after: ${fullest!.node} at ${f2(fullest!.after)} per CPU)`;
    if (best.net < p.minGain) {
      const penalty = best.gain - best.net;
      return best.gain >= p.minGain && penalty > 0
        ? `communication outweighs the gain: to ${best.to.id} it gains ${f2(best.gain)} load per CPU but makes ${mbps(best.remoteDelta)} cross nodes (cost ${f2(penalty)})`
        : `best move (to ${best.to.id}) gains only ${f2(best.net)} load per CPU, below minGain ${f2(p.minGain)}`;
    }
    return best;
  };

  let budget = p.maxConcurrent - (input.inFlight ?? []).length;
  for (;;) {
    const sources = [...cluster.nodes.values()].filter((n) => inScope(n) && isOver(n)).sort((a, b) => pressure(b) - pressure(a));
    let best: Move | undefined;
    for (const from of sources) {
      for (const r of from.ranks) {
        if (moved.has(r.addr)) continue;
        const why = barred(r);
        if (why) {
          skip(r, why);
          continue;
        }
        if (budget <= 0) {
          skip(r, `${p.maxConcurrent} migration${p.maxConcurrent === 1 ? '' : 's'} already in flight or ordered (maxConcurrent)`);
          continue;
        }
        const m = bestMove(r, from);
        if (typeof m === 'string') {
          skip(r, m);
          continue;
        }
        if (!best || m.net > best.net) best = m;
      }
    }
    if (!best) break;
    const { rank: r, from, to } = best;
    const comm =
      best.remoteDelta > 0
        ? `; ${mbps(best.remoteDelta)} of its traffic becomes remote`
        : best.remoteDelta < 0
          ? `; ${mbps(-best.remoteDelta)} of its traffic becomes local`
          : '';
    taken.push({
      action: 'migrate',
      job: r.job,
      rank: r.rank,
      addr: r.addr,
      fromNode: from.id,
      toNode: to.id,
      reason: `${from.id} is overloaded (${f2(pressure(from))} load per CPU, threshold ${f2(p.threshold)}): ${rankName(r)} moves to ${to.id}, leaving ${f2(best.fromAfter)} and ${f2(best.toAfter)} per CPU (gain ${f2(best.gain)})${comm}`,
      gain: best.gain,
      remoteDelta: best.remoteDelta,
      dryRun,
    });
    // What the cluster will look like once it moved, for the next choice.
    from.load -= r.load;
    to.load += r.load;
    from.ranks = from.ranks.filter((x) => x !== r);
    to.ranks.push(r);
    r.node = to.id;
    moved.add(r.addr);
    skips.delete(r.addr);
    budget--;
  }
  // Ranks of overloaded nodes that were candidates but another rank's move was enough.
  for (const id of measured) {
    const n = cluster.nodes.get(id)!;
    for (const r of n.ranks) {
      if (!moved.has(r.addr) && !skips.has(r.addr)) skip(r, `${id} is no longer overloaded after the moves above (${f2(pressure(n))} load per CPU)`);
    }
  }
  const skipped = [...skips.values()];
  return { decisions: [...taken, ...skipped], taken, skipped, nodes, state: { overloaded: measured }, dryRun };
}
