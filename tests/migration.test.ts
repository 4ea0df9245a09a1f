// Live migration in the lab (DESIGN.md §4): a 4-rank job across 3 nodes streams checksummed
// messages in a ring and all-to-all while its ranks move between nodes with CRIU. The job must
// finish with exit 0, every message verified exactly once and in order (the program checks each
// one's source, round and payload), and a moved rank's output must still reach mpirun.
// DICOM_MIGRATION_MOVES sets the number of moves (default 8; `npm run test:migration` runs 24).
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { pidAlive, sleep, stopPids } from '../control/daemon/proc.js';
import { labDown, labMpirun, labStatus, labUp, readState, type ExecResult } from '../control/lab/index.js';
import { writeState } from '../control/lab/state.js';
import { startNodeDicomd } from '../control/lab/dicomd.js';
import { locateRanks, type RankLocation } from '../control/migration/locate.js';
import { migrateRank, type MigrationOutcome } from '../control/migration/migrate.js';
import { dicomdBin, dicomRunBin, defaultComponentDir } from '../control/paths.js';
import { ensureComponent, ensureMpiPrograms, mpiProgramsDir } from '../control/runner/prereq.js';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';
import { isRoot } from './helpers/cli.js';

const lab = isRoot ? test.serial : test.skip;
if (!isRoot) test('migration tests need root (network namespaces, CRIU); skipped', (t) => t.pass());

const MOVES = Number(process.env.DICOM_MIGRATION_MOVES ?? 8);
const NODES = ['n1', 'n2', 'n3'];
let tmp = '';

test.before(async () => {
  if (!isRoot) return;
  await ensureMpiPrograms();
  await ensureComponent(() => {});
  if (!existsSync(dicomRunBin)) throw new Error(`${dicomRunBin} is missing: make -C btl-dicom`);
  if ((await labStatus()).up) await labDown();
  await labUp({ nodes: 3 });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-mig-'));
});

test.after.always(async () => {
  if (!isRoot) return;
  await labDown();
  await rm(tmp, { recursive: true, force: true });
});

interface Job {
  label: string;
  stop: string;
  done: Promise<ExecResult>;
}

/** The migratable workload: every rank under its home stub dicom-run, until `stop` exists. */
function startJob(label: string, computeMs: number): Job {
  const stop = path.join(tmp, `${label}.stop`);
  const done = labMpirun({
    np: 4,
    program: dicomRunBin,
    args: [path.join(mpiProgramsDir, 'migrate_ring'), '--rounds', '100000', '--compute-ms', String(computeMs), '--report', '10', '--until-file', stop],
    btl: 'self,dicom',
    componentPath: defaultComponentDir,
    mca: { pml: 'ob1' },
    env: { DICOM_JOB: label },
    timeoutMs: 10 * 60_000,
  });
  return { label, stop, done };
}

async function ranksOf(label: string, n = 4): Promise<RankLocation[]> {
  for (let i = 0; i < 300; i++) {
    const r = locateRanks().filter((x) => x.job === label);
    if (r.length === n) return r;
    await sleep(100);
  }
  throw new Error(`job ${label}: its ${n} ranks did not all register with a lab dicomd`);
}

const nextNode = (node: string, step = 1) => NODES[(NODES.indexOf(node) + step) % NODES.length]!;

async function finish(job: Job): Promise<ExecResult> {
  await writeFile(job.stop, '');
  return job.done;
}

lab(`a 4-rank job across 3 nodes survives ${MOVES} live migrations, both ends of a stream at once included`, async (t) => {
  const job = startJob('mig-many', 15);
  const moved: { rank: number; to: string }[] = [];
  const outcomes: MigrationOutcome[] = [];
  await ranksOf(job.label);
  await sleep(1000);
  let m = 0;
  while (m < MOVES) {
    const ranks = await ranksOf(job.label);
    // Every third step moves two ring neighbours at once: both ends of one stream.
    const pair = m % 3 === 2 && m + 2 <= MOVES;
    const chosen = pair ? [ranks[m % 4]!, ranks[(m + 1) % 4]!] : [ranks[m % 4]!];
    const results = await Promise.all(chosen.map((r, i) => migrateRank({ addr: r.addr, from: r.node, to: nextNode(r.node, i + 1) })));
    results.forEach((o, i) => {
      outcomes.push(o);
      t.is(o.outcome, 'succeeded', `move of rank ${chosen[i]!.rank} ${o.from} -> ${o.to}: ${o.failedAt ?? ''} ${o.error ?? ''}`);
      moved.push({ rank: chosen[i]!.rank, to: o.to });
      t.log(`rank ${chosen[i]!.rank} ${o.from} -> ${o.to}: downtime ${o.downtimeMs} ms (${JSON.stringify(o.phases)})`);
    });
    m += chosen.length;
    await sleep(300);
  }
  const r = await finish(job);
  t.is(r.exitCode, 0, (r.stderr + r.stdout).slice(-3000));
  t.regex(r.stdout, /^RESULT ok ranks=4/m);
  t.notRegex(r.stdout, /RESULT fail/);
  const state = readState()!;
  for (const { rank, to } of moved) {
    const addr = state.nodes.find((n) => n.name === to)!.addr;
    t.regex(r.stdout, new RegExp(`^rank ${rank} round \\d+ at ${addr.replace(/\./g, '\\.')}$`, 'm'), `rank ${rank}'s output from ${to} reached mpirun`);
  }
  t.true(outcomes.length >= MOVES);
});

lab('a rank in a compute loop that makes no MPI calls is migrated', async (t) => {
  const job = startJob('mig-compute', 400); // 400 ms of pure computation per round
  const [r0] = await ranksOf(job.label);
  await sleep(600);
  const o = await migrateRank({ addr: r0!.addr, from: r0!.node, to: nextNode(r0!.node) });
  t.is(o.outcome, 'succeeded', `${o.failedAt ?? ''} ${o.error ?? ''}`);
  t.true((o.phases.detach ?? 1e9) < 400, `detach answered by the DiCOM thread while the rank computed: ${o.phases.detach} ms`);
  const r = await finish(job);
  t.is(r.exitCode, 0, (r.stderr + r.stdout).slice(-3000));
  t.regex(r.stdout, /^RESULT ok ranks=4/m);
});

lab('a target whose dicomd is down: a clean failure, the rank stays and the job goes on', async (t) => {
  const job = startJob('mig-down', 20);
  const ranks = await ranksOf(job.label);
  const r1 = ranks.find((r) => r.node !== 'n3')!;
  const state = readState()!;
  const n3 = state.nodes[2]!;
  await stopPids([n3.dicomdPid!], 2000);
  try {
    const o = await migrateRank({ addr: r1.addr, from: r1.node, to: 'n3' });
    t.is(o.outcome, 'failed');
    t.is(o.failedAt, 'check');
    t.regex(o.error ?? '', /dicomd does not answer/);
    t.is(o.node, r1.node);
    t.true(pidAlive(r1.pid), 'the rank still runs on its source');
  } finally {
    n3.dicomdPid = await startNodeDicomd(3, n3.addr, dicomdBin);
    writeState(state);
  }
  const r = await finish(job);
  t.is(r.exitCode, 0, (r.stderr + r.stdout).slice(-3000));
});

lab('killing the restore on the target mid-way rolls back: the rank resumes on its source', async (t) => {
  const job = startJob('mig-kill', 20);
  const [r0] = await ranksOf(job.label);
  const o = await migrateRank({
    addr: r0!.addr,
    from: r0!.node,
    to: nextNode(r0!.node),
    onRestoreStart: (pid) => void setTimeout(() => void stopPids([pid], 0), 15),
  });
  t.is(o.outcome, 'rolled-back', `${o.failedAt ?? ''} ${o.error ?? ''}`);
  t.is(o.failedAt, 'restore');
  t.is(o.node, r0!.node);
  const again = (await ranksOf(job.label)).find((r) => r.rank === r0!.rank)!;
  t.is(again.node, r0!.node, 'registered on its source again');
  const r = await finish(job);
  t.is(r.exitCode, 0, (r.stderr + r.stdout).slice(-3000));
  t.regex(r.stdout, /^RESULT ok ranks=4/m);
});

lab('POST /migrations moves a rank of a job launched through the API; bad requests are 400/404', async (t) => {
  let api: TestApi | undefined;
  try {
    api = await startApi(await freshDatabase('migrations'), { queue: true });
    const created = await json<{ id: number }>(await api.req('POST', '/jobs', {
      program: 'migrate_ring', args: ['--rounds', '100000', '--compute-ms', '20', '--report', '10', '--until-file', path.join(tmp, 'api.stop')],
      np: 4, nodes: ['n1', 'n2', 'n3'], timeoutSeconds: 600,
    }));
    const ranks = await ranksOf(String(created.id));
    const r1 = ranks.find((r) => r.rank === 1)!;

    const bad = async (body: unknown, status: number, re: RegExp) => {
      const res = await api!.req('POST', '/migrations', body);
      t.is(res.status, status, JSON.stringify(body));
      t.regex((await json<{ message: string }>(res)).message, re);
    };
    await bad({ job: 99999, rank: 0, toNode: 'n2' }, 404, /job 99999 not found/);
    await bad({ job: created.id, rank: 7, toNode: 'n2' }, 404, /no rank 7/);
    await bad({ job: created.id, rank: 1, toNode: 'n9' }, 404, /unknown node "n9"/);
    await bad({ job: created.id, rank: -1, toNode: 'n2' }, 400, /rank/);
    await bad({ job: created.id, rank: 1 }, 400, /toNode/);
    await bad({ job: created.id, rank: 1, toNode: 'n2', extra: 1 }, 400, /additional/i);
    t.is((await fetch(`${api.url}/migrations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401);

    const res = await api.req('POST', '/migrations', { job: created.id, rank: 1, toNode: nextNode(r1.node) });
    const m = await json<{ id: number; outcome: string; phases: Record<string, number>; downtimeMs: number; error: string | null }>(res);
    t.is(res.status, 201, JSON.stringify(m));
    t.is(m.outcome, 'succeeded', m.error ?? '');
    for (const p of ['detach', 'dump', 'transfer', 'restore', 'reattach']) t.true(m.phases[p]! > 0, `phase ${p} recorded`);
    const again = await json<{ id: number; downtimeMs: number }>(await api.req('GET', `/migrations/${m.id}`));
    t.is(again.downtimeMs, m.downtimeMs);

    await writeFile(path.join(tmp, 'api.stop'), '');
    for (let i = 0; i < 600; i++) {
      const j = await json<{ status: string; exitCode: number | null; stdout: string; stderr: string }>(await api.req('GET', `/jobs/${created.id}`));
      if (j.status === 'succeeded' || j.status === 'failed') {
        t.is(j.status, 'succeeded', (j.stderr + j.stdout).slice(-2000));
        t.regex(j.stdout, /^RESULT ok ranks=4/m);
        return;
      }
      await sleep(200);
    }
    t.fail('the API job did not finish');
  } finally {
    await api?.close();
  }
});
