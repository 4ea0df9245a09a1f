// The balancer in the lab: every rank of a job starts on node n1 (one CPU), n2 (one CPU) is idle.
// The policy engine, fed by the dicomds' gossip, must move ranks off the overloaded node through
// live migration, and the job must still finish with every message checked.
import path from 'node:path';
import test from 'ava';
import { startBalancer } from '../control/balancer/balancer.js';
import { startPolicyRunner } from '../control/balancer/runner.js';
import { freshDatabase, startApi } from './helpers/api.js';
import { labDown, labMpirun, labStatus, labUp } from '../control/lab/index.js';
import { dicomRunBin, defaultComponentDir } from '../control/paths.js';
import { withDefaults } from '../control/policy/index.js';
import { ensureComponent, ensureMpiPrograms, mpiProgramsDir } from '../control/runner/prereq.js';
import { isRoot } from './helpers/cli.js';

const lab = isRoot ? test.serial : test.skip;
if (!isRoot) test('balancer tests need root (network namespaces, cgroups, CRIU); skipped', (t) => t.pass());

test.before(async () => {
  if (!isRoot) return;
  await ensureMpiPrograms();
  await ensureComponent(() => {});
  if ((await labStatus()).up) await labDown();
  await labUp({ nodes: 2, cpus: 'n1=0,n2=1', gossip: { periodMs: 250 } });
});

test.after.always(async () => {
  if (isRoot) await labDown();
});

lab('the policy moves ranks off an overloaded node, and the job completes correctly', async (t) => {
  const decisions: string[] = [];
  const balancer = startBalancer({
    params: withDefaults({ threshold: 2.0, hysteresis: 0.5, cooldownSec: 30, maxConcurrent: 1, minGain: 0.2 }),
    periodMs: 1000,
    record: (d, outcome) => void decisions.push(`${d.action} ${d.job}:${d.rank} ${outcome ? `-> ${outcome.outcome}` : ''}: ${d.reason}`),
  });
  let job;
  try {
    job = await labMpirun({
      np: 4,
      nodes: [1],
      program: dicomRunBin,
      args: [path.join(mpiProgramsDir, 'migrate_ring'), '--rounds', '300', '--work-mflop', '20', '--report', '100'],
      btl: 'self,dicom',
      componentPath: defaultComponentDir,
      mca: { pml: 'ob1', mpi_yield_when_idle: 1 },
      env: { DICOM_JOB: 'balance' },
      timeoutMs: 5 * 60_000,
    });
  } finally {
    await balancer.stop();
  }
  t.log(decisions.filter((d) => d.startsWith('migrate')).join('\n'));
  t.is(job.exitCode, 0, (job.stderr + job.stdout).slice(-3000));
  t.regex(job.stdout, /^RESULT ok ranks=4/m);
  const moved = balancer.moves.filter((m) => m.outcome.outcome === 'succeeded');
  t.true(moved.length >= 1, `no rank was moved; decisions:\n${decisions.slice(0, 20).join('\n')}`);
  for (const m of moved) {
    t.is(m.outcome.from, 'n1');
    t.is(m.outcome.to, 'n2');
    t.regex(m.decision.reason, /overloaded/);
  }
});

lab('an enabled policy in the job database runs by itself: its migrations and decisions are recorded', async (t) => {
  const api = await startApi(await freshDatabase('balancer'));
  const prisma = api.db.prisma;
  const runner = startPolicyRunner(prisma, { checkMs: 500, periodMs: 1000 });
  try {
    const res = await api.req('POST', '/policies', { name: 'spread', params: { threshold: 2.0, hysteresis: 0.5, cooldownSec: 30, maxConcurrent: 1, minGain: 0.2 } });
    t.is(res.status, 201, await res.clone().text());
    const policy = (await res.json()) as { id: number };
    const job = await labMpirun({
      np: 4,
      nodes: [1],
      program: dicomRunBin,
      args: [path.join(mpiProgramsDir, 'migrate_ring'), '--rounds', '250', '--work-mflop', '20', '--report', '250'],
      btl: 'self,dicom',
      componentPath: defaultComponentDir,
      mca: { pml: 'ob1', mpi_yield_when_idle: 1 },
      env: { DICOM_JOB: 'by-policy' },
      timeoutMs: 5 * 60_000,
    });
    await runner.stop();
    t.is(job.exitCode, 0, (job.stderr + job.stdout).slice(-3000));
    t.regex(job.stdout, /^RESULT ok ranks=4/m);
    const moves = await prisma.migration.findMany({ where: { policyId: policy.id } });
    t.true(moves.some((m) => m.outcome === 'succeeded' && m.fromNode === 'n1' && m.toNode === 'n2'), moves.map((m) => `${m.fromNode}->${m.toNode} ${m.outcome} ${m.error ?? ''}`).join('; '));
    const decisions = await prisma.policyDecision.findMany({ where: { policyId: policy.id, dryRun: false } });
    t.true(decisions.some((d) => d.action === 'migrate' && /overloaded/.test(d.reason)), 'a taken decision with its reason');
    t.true(decisions.some((d) => d.action === 'skip' && d.reason.length > 0), 'a skipped decision with its reason');
  } finally {
    await runner.stop();
    await api.close();
  }
});
