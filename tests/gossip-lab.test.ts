// Gossip between the dicomds of four lab nodes (default settings: 500 ms period, window 16,
// 10 s maximum age): every node sees every other within a few periods, the load vectors carry
// a running MPI job's ranks and its DiCOM bytes per rank pair, and a killed node ages out of
// every view (and comes back when its dicomd restarts). Needs root; run it under
// `flock /tmp/dicom-lab.lock`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { labDown, labExec, labMpirun, labStatus, labUp, requireState } from '../control/lab/index.js';
import { DEFAULT_GOSSIP, startNodeDicomd } from '../control/lab/dicomd.js';
import { writeState } from '../control/lab/state.js';
import type { GossipView } from '../control/dicom/libdicom.js';
import { sleep } from '../control/daemon/proc.js';
import { defaultComponentDir, dicomdBin } from '../control/paths.js';
import { ensureComponent, ensureMpiPrograms, mpiProgramsDir } from '../control/runner/prereq.js';
import { dicomctlBin, isRoot } from './helpers/cli.js';
import { resultLine } from './helpers/correctness.js';

const NODES = 4;
const PERIOD = DEFAULT_GOSSIP.periodMs;
const MAX_AGE = DEFAULT_GOSSIP.maxAgeMs;
/** every node must have heard of every other within this many periods of its start */
const K = 10;

const lab = isRoot ? test.serial : test.skip;
if (!isRoot) test('gossip lab tests need root (network namespaces); skipped', (t) => t.pass());

test.before(async () => {
  if (!isRoot) return;
  await ensureMpiPrograms();
  await ensureComponent(() => {});
  if ((await labStatus()).up) await labDown();
  await labUp({ nodes: NODES });
});

test.after.always(async () => {
  if (isRoot) await labDown();
});

interface LogEvent {
  ts: string;
  event: string;
  node?: string;
}

function events(k: number): LogEvent[] {
  const file = path.join(requireState().nodes[k - 1]!.dir, 'dicomd.log');
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogEvent);
}

/** The gossip view of node k's dicomd, asked with dicomctl inside the node. */
async function view(k: number): Promise<GossipView> {
  const r = await labExec(k, [dicomctlBin, 'daemon', 'view', '--json'], { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`dicomctl daemon view in n${k}: ${r.stderr}`);
  return JSON.parse(r.stdout) as GossipView;
}

const ks = Array.from({ length: NODES }, (_, i) => i + 1);
const addr = (k: number) => requireState().nodes[k - 1]!.addr;

lab('gossip: every lab node hears of every other within K periods, with its load vector', async (t) => {
  const deadline = Date.now() + 30_000;
  const seen = (k: number) => new Set(events(k).filter((e) => e.event === 'gossip_node_seen').map((e) => e.node));
  while (ks.some((k) => seen(k).size < NODES - 1) && Date.now() < deadline) await sleep(100);
  for (const k of ks) {
    const ev = events(k);
    const start = Date.parse(ev.find((e) => e.event === 'start')!.ts);
    const firsts = ks.filter((j) => j !== k).map((j) => ev.find((e) => e.event === 'gossip_node_seen' && e.node === addr(j)));
    t.true(firsts.every(Boolean), `n${k} heard of every other node: ${JSON.stringify(firsts)}`);
    const took = Math.max(...firsts.map((e) => Date.parse(e!.ts) - start));
    t.log(`n${k} knew all ${NODES - 1} others ${took} ms = ${(took / PERIOD).toFixed(1)} periods after it started`);
    t.true(took <= K * PERIOD, `n${k}: ${took} ms > ${K} periods`);
  }
  const views = await Promise.all(ks.map(view));
  for (const [i, v] of views.entries()) {
    t.is(v.node, addr(i + 1));
    t.deepEqual(v.entries.map((e) => e.node).sort(), ks.map(addr).sort(), `n${i + 1} sees every node`);
    t.is(v.period_ms, 500);
    t.is(v.window, 16);
    const self = v.entries.find((e) => e.self)!;
    t.true(self.age_ms < 2 * PERIOD, `own entry is fresh: ${self.age_ms} ms`);
    for (const e of v.entries) {
      t.true(e.age_ms <= MAX_AGE, `entry of ${e.node} is ${e.age_ms} ms old`);
      t.true(e.cpus >= 1 && e.mem_total_kib > 0 && e.mem_free_kib > 0, JSON.stringify(e));
    }
  }
});

lab("gossip: the load vectors carry a running job's ranks and its DiCOM bytes per rank pair", async (t) => {
  const job = labMpirun({
    np: NODES,
    program: path.join(mpiProgramsDir, 'stress'),
    args: ['--bytes', '512M'],
    btl: 'self,dicom',
    componentPath: defaultComponentDir,
    mca: { pml: 'ob1' },
    timeoutMs: 5 * 60_000,
  });
  let done = false;
  void job.finally(() => (done = true));
  let last: GossipView | undefined;
  let ok = false;
  while (!done && !ok) {
    last = await view(1);
    const procs = last.entries.flatMap((e) => e.procs.map((p) => ({ ...p, node: e.node })));
    const pairs = last.entries.flatMap((e) => e.pairs);
    const ranks = procs.map((p) => p.rank).sort();
    // each rank sends to every other: 4 x 3 ordered pairs, each already past 1 MB
    ok = ranks.join() === '0,1,2,3' && pairs.filter((p) => p.bytes > 1e6).length === NODES * (NODES - 1);
  }
  const r = await job;
  t.is(r.exitCode, 0, (r.stderr + r.stdout).slice(-3000));
  t.regex(resultLine(r.stdout) ?? '', /^RESULT ok/);
  t.true(ok, `n1's view during the job: ${JSON.stringify(last?.entries.map((e) => ({ node: e.node, procs: e.procs, pairs: e.pairs.length })))}`);
  const procs = last!.entries.flatMap((e) => e.procs.map((p) => ({ ...p, node: e.node })));
  // map-by node: rank r runs on node r+1, and its address names that node as home
  for (const p of procs) t.is(p.node, addr(p.rank! + 1), JSON.stringify(p));
  t.is(new Set(procs.map((p) => p.job)).size, 1, 'all four ranks carry the same job label');
  const pairs = last!.entries.flatMap((e) => e.pairs);
  t.true(pairs.every((p) => procs.some((q) => q.addr === p.src) && procs.some((q) => q.addr === p.dst)), 'pairs name the ranks');
  t.log(`job label ${procs[0]!.job}; heaviest pair ${pairs.sort((a, b) => b.rate - a.rate)[0]!.rate / 1e6} MB/s`);
});

lab('gossip: a killed node ages out of every view after the maximum age, and returns when restarted', async (t) => {
  const state = requireState();
  const victim = state.nodes[NODES - 1]!;
  process.kill(victim.dicomdPid!, 'SIGKILL');
  const killedAt = Date.now();
  const expiredAt = (k: number) => events(k).find((e) => e.event === 'gossip_expired' && e.node === victim.addr);
  const others = ks.slice(0, -1);
  while (others.some((k) => !expiredAt(k)) && Date.now() - killedAt < MAX_AGE + 20 * PERIOD) await sleep(100);
  for (const k of others) {
    const e = expiredAt(k);
    t.truthy(e, `n${k} logged gossip_expired for ${victim.addr}`);
    if (!e) continue;
    const after = Date.parse(e.ts) - killedAt;
    t.log(`n${k} dropped ${victim.addr} ${after} ms after the kill (max age ${MAX_AGE} ms)`);
    t.true(after >= MAX_AGE - 2 * PERIOD && after <= MAX_AGE + 10 * PERIOD, `n${k}: ${after} ms`);
  }
  const views = await Promise.all(others.map(view));
  for (const v of views) t.deepEqual(v.entries.map((e) => e.node).sort(), others.map(addr).sort(), `${v.node} no longer lists ${victim.addr}`);

  victim.dicomdPid = await startNodeDicomd(NODES, victim.addr, dicomdBin);
  writeState(state);
  const back = Date.now();
  let v: GossipView | undefined;
  while (Date.now() - back < 30_000) {
    v = await view(1);
    if (v.entries.some((e) => e.node === victim.addr)) break;
  }
  t.true(v!.entries.some((e) => e.node === victim.addr), `n1 hears of the restarted ${victim.addr} again`);
  t.log(`n1 listed the restarted node again after ${Date.now() - back} ms`);
});
