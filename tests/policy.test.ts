// The policy engine on synthetic gossip views: threshold, hysteresis, cooldown, pinning, pools,
// the concurrency limit, and the communication-aware choice of which rank moves where.
import test from 'ava';
import type { GossipEntry } from '../control/dicom/libdicom.js';
import { type Decision, type PolicyInput, contribution, evaluate, withDefaults } from '../control/policy/index.js';

interface Proc {
  job?: string;
  rank: number | null;
  cpu: number;
}

const addrOf = (node: string, rank: number | null, job = 'J') => `${node}:${rank === null ? 9999 : 1000 + rank + (job === 'J' ? 0 : 500)}`;

function node(id: string, load: number, cpus: number, procs: Proc[] = [], ageMs = 100): GossipEntry {
  return {
    node: id,
    self: false,
    age_ms: ageMs,
    sampled_at_ms: 0,
    runnable: Math.round(load),
    load,
    cpus,
    mem_free_kib: 1 << 20,
    mem_total_kib: 2 << 20,
    procs: procs.map((p) => ({ addr: addrOf(id, p.rank, p.job), pid: 1, rank: p.rank, job: p.rank === null ? '' : p.job ?? 'J', cpu: p.cpu })),
    pairs: [],
  };
}

/** bytes/s from a to b, reported by a's node */
function talk(entries: GossipEntry[], a: string, b: string, rate: number): void {
  const e = entries.find((x) => x.procs.some((p) => p.addr === a))!;
  e.pairs.push({ src: a, dst: b, bytes: rate * 10, rate });
}

const run = (entries: GossipEntry[], over: Partial<PolicyInput> = {}, params: Parameters<typeof withDefaults>[0] = {}) =>
  evaluate({ entries, params: withDefaults(params), now: 1_000_000, ...over });

const who = (d: Decision) => `${d.job}:${d.rank}`;
const moves = (ds: Decision[]) => ds.filter((d) => d.action === 'migrate').map((d) => `${who(d)} ${d.fromNode}->${d.toNode}`);
const skipOf = (ds: Decision[], rank: number) => ds.find((d) => d.action === 'skip' && d.rank === rank)?.reason ?? '';

// two CPU-bound ranks on a 1-CPU node: each gets half a CPU, each is a whole runnable task
const busyPair = () => [node('n1', 2, 1, [{ rank: 0, cpu: 0.5 }, { rank: 1, cpu: 0.5 }]), node('n2', 0, 1)];

test('contribution: a CPU-bound rank on an oversubscribed node counts as one task', (t) => {
  t.is(contribution(0.5, { load: 2, cpus: 1 }), 1);
  t.is(contribution(0.1, { load: 0.5, cpus: 1 }), 0.1);
  t.is(contribution(0.9, { load: 3, cpus: 1 }), 1);
});

test('threshold: nothing moves below it; above it one rank moves to the idle node, the other is skipped with a reason', (t) => {
  const calm = run([node('n1', 0.9, 1, [{ rank: 0, cpu: 0.9 }]), node('n2', 0, 1)]);
  t.deepEqual(calm.decisions, []);
  t.deepEqual(calm.state.overloaded, []);

  const r = run(busyPair());
  t.deepEqual(moves(r.decisions), ['J:0 n1->n2']);
  t.regex(r.taken[0]!.reason, /n1 is overloaded \(2\.00 load per CPU, threshold 1\.00\): J:0 moves to n2, leaving 1\.00 and 1\.00 per CPU \(gain 1\.00\)/);
  t.regex(skipOf(r.decisions, 1), /n1 is no longer overloaded after the moves above/);
  t.deepEqual(r.state.overloaded, ['n1']);
  t.deepEqual(r.nodes.map((n) => [n.node, n.loadPerCpu, n.overloaded]), [['n1', 2, true], ['n2', 0, false]]);

  const higher = run(busyPair(), {}, { threshold: 2.5, hysteresis: 0.5 });
  t.deepEqual(higher.decisions, [], 'the same load under a higher threshold is fine');
});

test('threshold: a move that would overload the target is refused', (t) => {
  const r = run([node('n1', 2, 1, [{ rank: 0, cpu: 0.5 }, { rank: 1, cpu: 0.5 }]), node('n2', 0.6, 1)]);
  t.deepEqual(moves(r.decisions), []);
  t.regex(skipOf(r.decisions, 0), /no node would stay at or below the threshold 1\.00 after taking it \(least loaded after: n2 at 1\.60 per CPU\)/);
});

test('hysteresis: an overloaded node stays overloaded until it drops below threshold - hysteresis', (t) => {
  const view = () => [node('n1', 1.8, 2, [{ rank: 0, cpu: 0.9 }, { rank: 1, cpu: 0.9 }]), node('n2', 0, 2)];
  // 0.9 per CPU: not overloaded for a node that was fine ...
  const fresh = run(view());
  t.deepEqual(fresh.decisions, []);
  t.deepEqual(fresh.state.overloaded, []);
  // ... but still overloaded for one that was (0.9 > 1.0 - 0.25)
  const sticky = run(view(), { state: { overloaded: ['n1'] } });
  t.deepEqual(moves(sticky.decisions), ['J:0 n1->n2']);
  t.deepEqual(sticky.state.overloaded, ['n1']);
  // below threshold - hysteresis it is released
  const released = run([node('n1', 1.4, 2, [{ rank: 0, cpu: 0.7 }, { rank: 1, cpu: 0.7 }]), node('n2', 0, 2)], { state: { overloaded: ['n1'] } });
  t.deepEqual(released.decisions, []);
  t.deepEqual(released.state.overloaded, []);
  // a wider band keeps it
  const wide = run([node('n1', 1.4, 2, [{ rank: 0, cpu: 0.7 }, { rank: 1, cpu: 0.7 }]), node('n2', 0, 2)], { state: { overloaded: ['n1'] } }, { hysteresis: 0.5 });
  t.deepEqual(wide.state.overloaded, ['n1']);
});

test('cooldown: a rank that just moved stays; another one moves instead, and after the cooldown it may move again', (t) => {
  const now = 1_000_000;
  const recent = run(busyPair(), { now, history: [{ job: 'J', rank: 0, at: now - 10_000 }] }, { cooldownSec: 30 });
  t.deepEqual(moves(recent.decisions), ['J:1 n1->n2']);
  t.regex(skipOf(recent.decisions, 0), /in cooldown: moved 10\.00 s ago, cooldown 30 s/);

  const both = run(busyPair(), { now, history: [{ job: 'J', rank: 0, at: now - 10_000 }, { job: 'J', rank: 1, at: now - 20_000 }] }, { cooldownSec: 30 });
  t.deepEqual(moves(both.decisions), []);
  t.is(both.skipped.length, 2);

  const byAddr = run(busyPair(), { now, history: [{ addr: addrOf('n1', 1), at: now - 5_000 }] }, { cooldownSec: 30 });
  t.deepEqual(moves(byAddr.decisions), ['J:0 n1->n2'], 'a migration record names the rank by its address');

  const later = run(busyPair(), { now, history: [{ job: 'J', rank: 0, at: now - 40_000 }] }, { cooldownSec: 30 });
  t.deepEqual(moves(later.decisions), ['J:0 n1->n2']);
});

test('pinning: a pinned job never moves; a pinned rank stays while its siblings move', (t) => {
  const job = run(busyPair(), {}, { pinnedJobs: ['J'] });
  t.deepEqual(moves(job.decisions), []);
  t.deepEqual(job.skipped.map((d) => d.reason), ['job J is pinned', 'job J is pinned']);

  const rank = run(busyPair(), {}, { pinnedRanks: ['J:0'] });
  t.deepEqual(moves(rank.decisions), ['J:1 n1->n2']);
  t.is(skipOf(rank.decisions, 0), 'rank J:0 is pinned');

  const other = run(busyPair(), {}, { pinnedJobs: ['K'], pinnedRanks: ['K:0'] });
  t.deepEqual(moves(other.decisions), ['J:0 n1->n2'], 'pins of another job do not matter');
});

test('communication-aware: of equal candidates the rank that talks least leaves its peers', (t) => {
  // n1: three CPU-bound ranks on 2 CPUs; ranks 0 and 1 exchange 2 GB/s, rank 2 talks to nobody
  const view = () => {
    const v = [node('n1', 3, 2, [{ rank: 0, cpu: 0.67 }, { rank: 1, cpu: 0.67 }, { rank: 2, cpu: 0.67 }]), node('n2', 0, 2)];
    talk(v, addrOf('n1', 0), addrOf('n1', 1), 1e9);
    talk(v, addrOf('n1', 1), addrOf('n1', 0), 1e9);
    return v;
  };
  const r = run(view());
  t.deepEqual(moves(r.decisions), ['J:2 n1->n2']);
  t.is(r.taken[0]!.remoteDelta, 0);
  t.regex(skipOf(r.decisions, 0), /communication outweighs the gain/, 'splitting the pair was considered and refused');

  // with the quiet rank pinned, splitting the pair costs more than it gains: nobody moves
  const pinned = run(view(), {}, { pinnedRanks: ['J:2'] });
  t.deepEqual(moves(pinned.decisions), []);
  t.regex(skipOf(pinned.decisions, 0), /communication outweighs the gain: to n2 it gains 0\.50 load per CPU but makes 2000\.0 MB\/s cross nodes \(cost 2\.00\)/);

  // unless the load gain outweighs it (traffic made cheap)
  const cheap = run(view(), {}, { pinnedRanks: ['J:2'], commCostPerGBps: 0.1 });
  t.deepEqual(moves(cheap.decisions), ['J:0 n1->n2']);
  t.regex(cheap.taken[0]!.reason, /2000\.0 MB\/s of its traffic becomes remote/);
});

test('communication-aware: a rank goes to the node where its peer runs', (t) => {
  const v = [node('n1', 2, 1, [{ rank: 0, cpu: 0.5 }, { rank: 1, cpu: 0.5, job: 'Q' }]), node('n2', 0, 1), node('n3', 0, 1, [{ rank: 5, cpu: 0.01 }])];
  talk(v, addrOf('n1', 0), addrOf('n3', 5), 5e8);
  const r = run(v, {}, { pinnedJobs: ['Q'] });
  t.deepEqual(moves(r.decisions), ['J:0 n1->n3']);
  t.is(r.taken[0]!.remoteDelta, -5e8);
  t.regex(r.taken[0]!.reason, /500\.0 MB\/s of its traffic becomes local/);
});

test('maxConcurrent: at most that many moves are ordered, counting those in flight', (t) => {
  const view = () => [
    node('n1', 4, 1, [0, 1, 2, 3].map((rank) => ({ rank, cpu: 0.25 }))),
    node('n2', 0, 1),
    node('n3', 0, 1),
    node('n4', 0, 1),
  ];
  const two = run(view(), {}, { maxConcurrent: 2 });
  t.is(two.taken.length, 2);
  t.deepEqual(new Set(two.taken.map((d) => d.toNode)).size, 2, 'to two different nodes');
  t.is(two.skipped.length, 2);
  for (const s of two.skipped) t.regex(s.reason, /2 migrations already in flight or ordered \(maxConcurrent\)/);

  const busy = run(view(), { inFlight: [{ job: 'J', rank: 0 }, { job: 'J', rank: 1 }] }, { maxConcurrent: 2 });
  t.is(busy.taken.length, 0);
  t.is(skipOf(busy.decisions, 0), 'already migrating');
  const byAddr = run(view(), { inFlight: [{ addr: addrOf('n1', 3) }] }, { maxConcurrent: 2 });
  t.is(byAddr.taken.length, 1);
  t.is(skipOf(byAddr.decisions, 3), 'already migrating');

  const all = run(view(), {}, { maxConcurrent: 10 });
  t.is(all.taken.length, 3, 'three moves bring n1 from 4 to 1 load per CPU');
});

test('pools: ranks move only within their pool; nodes outside the policy pools are left alone', (t) => {
  const view = [node('n1', 2, 1, [{ rank: 0, cpu: 0.5 }, { rank: 1, cpu: 0.5 }]), node('n2', 0, 2), node('n3', 0.5, 2), node('n4', 3, 1, [{ rank: 7, cpu: 0.3 }])];
  const pools = [
    { name: 'a', nodes: ['n1', 'n3'] },
    { name: 'b', nodes: ['n2'] },
  ];
  const r = run(view, { pools }, { pools: ['a'] });
  t.deepEqual(moves(r.decisions), ['J:0 n1->n3'], 'n2 is emptier but in pool b');
  t.false(r.decisions.some((d) => d.rank === 7), 'n4 is in no pool of this policy');
  t.deepEqual(r.nodes.find((n) => n.node === 'n2')!.pool, null);
  t.deepEqual(r.nodes.find((n) => n.node === 'n1')!.pool, 'a');

  const alone = run([node('n1', 2, 1, [{ rank: 0, cpu: 0.5 }]), node('n2', 0, 1)], { pools: [{ name: 'a', nodes: ['n1'] }, { name: 'b', nodes: ['n2'] }] }, { pools: ['a'] });
  t.is(skipOf(alone.decisions, 0), 'no other node in pool a');
  t.throws(() => run(view, { pools }, { pools: ['c'] }), { message: 'pool "c" is not defined' });
});

test('dry run: the same decisions, marked as not carried out', (t) => {
  const real = run(busyPair());
  const dry = run(busyPair(), { dryRun: true });
  t.true(dry.dryRun);
  t.true(dry.decisions.every((d) => d.dryRun));
  t.false(real.decisions.some((d) => d.dryRun));
  t.deepEqual(dry.decisions.map((d) => ({ ...d, dryRun: false })), real.decisions);
});

test('stale entries and endpoints that are not MPI ranks are not used', (t) => {
  const stale = run([node('n1', 2, 1, [{ rank: 0, cpu: 0.5 }, { rank: 1, cpu: 0.5 }]), node('n2', 0, 1, [], 60_000)]);
  t.deepEqual(moves(stale.decisions), []);
  t.is(skipOf(stale.decisions, 0), 'no other node in the cluster');

  const anon = run([node('n1', 2, 1, [{ rank: null, cpu: 1 }, { rank: null, cpu: 1 }]), node('n2', 0, 1)]);
  t.deepEqual(moves(anon.decisions), []);
  t.regex(anon.skipped[0]!.reason, /not an MPI rank/);

  const idle = run([node('n1', 2, 1, [{ rank: 0, cpu: 0 }]), node('n2', 0, 1)]);
  t.regex(skipOf(idle.decisions, 0), /uses no CPU/);
});
