// One node: after `dicomctl btl install` and `dicomctl daemon start`,
// `mpirun --mca btl self,dicom ./app` just works on this machine.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { startDaemon, stopDaemon } from '../control/daemon/daemon.js';
import { componentPath } from '../control/generator/install.js';
import { detectOmpi } from '../control/generator/detect.js';
import { defaultComponentDir } from '../control/paths.js';
import { ensureComponent, ensureMpiPrograms, mpiProgramsDir } from '../control/runner/prereq.js';
import { correctnessSet, resultLine } from './helpers/correctness.js';

// A private daemon name and port, so a user's own dicomd is never touched.
const daemonName = `dicomd-test-${process.pid}`;
const port = 17000 + (process.pid % 1000);
let stateDir = '';
let env: Record<string, string> = {};

test.before(async () => {
  await ensureMpiPrograms();
  await ensureComponent(() => {});
  const t = await detectOmpi();
  env = { OMPI_MCA_mca_base_component_path: componentPath(t, defaultComponentDir) };
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'dicomd-host-'));
  await startDaemon({ name: daemonName, port, nodeAddr: '127.0.0.1', dir: stateDir });
});

test.after.always(async () => {
  await stopDaemon({ name: daemonName, dir: stateDir });
  await rm(stateDir, { recursive: true, force: true });
});

function mpirun(np: number, program: string, args: string[], extra: string[] = []) {
  return execa(
    'mpirun',
    [
      '--allow-run-as-root', '--oversubscribe', '-np', String(np), '--bind-to', 'none',
      '--mca', 'pml', 'ob1', '--mca', 'btl', 'self,dicom', '--mca', 'btl_dicom_daemon', daemonName,
      '--mca', 'oob_tcp_if_include', 'lo',
      ...extra, path.join(mpiProgramsDir, program), ...args,
    ],
    { env, reject: false, timeout: 5 * 60_000, all: true },
  );
}

for (const np of [2, 8]) {
  for (const c of correctnessSet) {
    test.serial(`one node, ${np} ranks over self,dicom: ${c.title}`, async (t) => {
      const r = await mpirun(np, c.program, c.args);
      t.is(r.exitCode, 0, String(r.all).slice(-3000));
      t.regex(resultLine(String(r.stdout)) ?? '', /^RESULT ok/);
    });
  }
}

for (const np of [2, 4]) {
  test.serial(`one node, ${np} ranks: MPI_THREAD_MULTIPLE, 4 threads per rank exchanging at once`, async (t) => {
    const r = await mpirun(np, 'threads', ['--threads', '4', '--iters', '200']);
    t.is(r.exitCode, 0, String(r.all).slice(-3000));
    t.regex(resultLine(String(r.stdout)) ?? '', /^RESULT ok/);
  });
}

test.serial('one node: the checker catches corrupted data (the tests can fail)', async (t) => {
  const r = await mpirun(2, 'pingpong', ['--neighbors', '--self-test-corrupt', '--max-size', '64K']);
  t.not(r.exitCode, 0);
  t.regex(String(r.stdout), /RESULT fail/);
});

test.serial('one node: MPI_Abort propagates over dicom', async (t) => {
  const t0 = Date.now();
  const r = await mpirun(4, 'abort', []);
  t.is(r.exitCode, 7, String(r.all).slice(-2000));
  t.regex(String(r.stdout), /RESULT abort-sent/);
  t.true(Date.now() - t0 < 30_000);
});

test.serial('without a reachable dicomd, MPI_Init fails and names the fix', async (t) => {
  const r = await execa(
    'mpirun',
    ['--allow-run-as-root', '-np', '2', '--mca', 'pml', 'ob1', '--mca', 'btl', 'self,dicom', '--mca', 'btl_dicom_daemon', 'no-such-dicomd', '--mca', 'oob_tcp_if_include', 'lo', path.join(mpiProgramsDir, 'pingpong')],
    { env, reject: false, timeout: 60_000, all: true },
  );
  t.not(r.exitCode, 0);
  t.regex(String(r.all), /btl_dicom: cannot start: no dicomd on abstract socket @no-such-dicomd.*dicomctl daemon start/);
});
