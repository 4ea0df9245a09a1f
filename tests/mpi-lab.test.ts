// Three lab nodes, each with its own sshd and dicomd: MPI jobs span them over
// ssh like a real cluster, and every byte between ranks goes through dicom.
import path from 'node:path';
import test from 'ava';
import { labDown, labMpirun, labStatus, labUp } from '../control/lab/index.js';
import { defaultComponentDir } from '../control/paths.js';
import { ensureComponent, ensureMpiPrograms, mpiProgramsDir } from '../control/runner/prereq.js';
import { correctnessSet, resultLine } from './helpers/correctness.js';
import { isRoot } from './helpers/cli.js';

const lab = isRoot ? test.serial : test.skip;
if (!isRoot) test('lab MPI tests need root (network namespaces); skipped', (t) => t.pass());

test.before(async () => {
  if (!isRoot) return;
  await ensureMpiPrograms();
  await ensureComponent(() => {});
  if ((await labStatus()).up) await labDown();
  await labUp({ nodes: 3 });
});

test.after.always(async () => {
  if (isRoot) await labDown();
});

function run(np: number, program: string, args: string[], nodes?: number[]) {
  return labMpirun({
    np,
    nodes,
    program: program.startsWith('/') ? program : path.join(mpiProgramsDir, program),
    args,
    btl: 'self,dicom',
    componentPath: defaultComponentDir,
    mca: { pml: 'ob1' },
    timeoutMs: 5 * 60_000,
  });
}

for (const np of [3, 8]) {
  for (const c of correctnessSet) {
    lab(`3 lab nodes, ${np} ranks over self,dicom: ${c.title}`, async (t) => {
      const r = await run(np, c.program, c.args);
      t.is(r.exitCode, 0, (r.stderr + r.stdout).slice(-3000));
      t.regex(resultLine(r.stdout) ?? '', /^RESULT ok/);
    });
  }
}

lab('3 lab nodes: checksummed stress of 1 GiB per rank pair over dicom', async (t) => {
  const r = await run(3, 'stress', ['--bytes', '1G']);
  t.is(r.exitCode, 0, (r.stderr + r.stdout).slice(-3000));
  t.regex(resultLine(r.stdout) ?? '', /^RESULT ok/);
  t.log(resultLine(r.stdout));
});

lab('3 lab nodes: ranks really are spread one per node', async (t) => {
  const r = await labMpirun({ np: 3, program: 'hostname', btl: 'self,dicom', componentPath: defaultComponentDir, timeoutMs: 60_000 });
  t.is(r.exitCode, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n').sort(), ['n1', 'n2', 'n3']);
});

lab('2 lab nodes: NetPIPE (NPopenmpi) completes over dicom, with its integrity check', async (t) => {
  const perf = await run(2, '/usr/bin/NPopenmpi', ['-u', String(16 << 20), '-n', '3', '-o', '/dev/null'], [1, 2]);
  t.is(perf.exitCode, 0, (perf.stderr + perf.stdout).slice(-3000));
  const integrity = await run(2, '/usr/bin/NPopenmpi', ['-i', '-u', String(1 << 20), '-n', '2', '-o', '/dev/null'], [1, 2]);
  t.is(integrity.exitCode, 0, (integrity.stderr + integrity.stdout).slice(-3000));
  t.notRegex(integrity.stdout + integrity.stderr, /integrity check failed/i);
});

lab('3 lab nodes: MPI_Abort propagates across nodes over dicom', async (t) => {
  const r = await run(3, 'abort', []);
  t.is(r.exitCode, 7, (r.stderr + r.stdout).slice(-2000));
  t.regex(r.stdout, /RESULT abort-sent/);
  t.false(r.timedOut);
  // The lab is still healthy for the next job: no rank left behind.
  const st = await labStatus();
  t.true(st.healthy);
});
