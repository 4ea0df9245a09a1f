// MPI jobs launched through the API on this host over self,dicom: the
// component comes from a deployment made through the API, the ranks register
// with a private dicomd. Small correctness programs only, never benchmarks.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { startDaemon, stopDaemon } from '../control/daemon/daemon.js';
import { ensureMpiPrograms } from '../control/runner/prereq.js';
import { dicomctl } from './helpers/cli.js';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';

const daemon = `dicomd-apitest-${process.pid}`;
const port = 18000 + (process.pid % 1000);
let api: TestApi;
let tmp: string;
let site: string;

interface Job {
  id: number;
  status: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  error: string | null;
}

async function waitJob(id: number): Promise<Job> {
  for (let i = 0; i < 1200; i++) {
    const j = await json<Job>(await api.req('GET', `/jobs/${id}`));
    if (j.status === 'succeeded' || j.status === 'failed') return j;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not finish`);
}

test.before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-jobs-'));
  site = path.join(tmp, 'site');
  await ensureMpiPrograms();
  api = await startApi(await freshDatabase('jobs'), { queue: true, buildsDir: path.join(tmp, 'builds') });
  const target = await json<{ id: number }>(await api.req('POST', '/targets', { detect: 'local' }));
  const b = await json<{ id: number }>(await api.req('POST', '/builds', { targetId: target.id }));
  for (let i = 0; i < 600; i++) {
    const s = (await json<{ status: string }>(await api.req('GET', `/builds/${b.id}`))).status;
    if (s === 'succeeded') break;
    if (s === 'failed') throw new Error('build failed');
    await new Promise((r) => setTimeout(r, 100));
  }
  const d = await json<{ id: number }>(await api.req('POST', '/deployments', { buildId: b.id, dest: site }));
  for (let i = 0; i < 300; i++) {
    const s = (await json<{ status: string }>(await api.req('GET', `/deployments/${d.id}`))).status;
    if (s === 'succeeded') break;
    if (s === 'failed') throw new Error('deployment failed');
    await new Promise((r) => setTimeout(r, 100));
  }
  await startDaemon({ name: daemon, port, nodeAddr: '127.0.0.1', dir: path.join(tmp, 'dicomd') });
});
test.after.always(async () => {
  await stopDaemon({ name: daemon, dir: path.join(tmp, 'dicomd') }).catch(() => {});
  await api?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test.serial('POST /jobs runs an MPI program over self,dicom and captures stdout and the exit status', async (t) => {
  const r = await api.req('POST', '/jobs', { program: 'collectives', np: 2, componentDir: site, daemon, timeoutSeconds: 120 });
  t.is(r.status, 202);
  const j = await waitJob((await json<Job>(r)).id);
  t.is(j.status, 'succeeded', `${j.error}\n${j.stderr.slice(-2000)}`);
  t.is(j.exitCode, 0);
  t.regex(j.stdout, /^RESULT ok ranks=2/m);
  const list = await json<Job[]>(await api.req('GET', '/jobs'));
  t.is(list[0]!.id, j.id);
});

test.serial('MPI jobs run two at a time (the default slots); a third waits for a free slot', async (t) => {
  interface Timed extends Job {
    startedAt: string | null;
    finishedAt: string | null;
  }
  // mpirun starts any program: three 2-second sleeps, submitted together.
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await api.req('POST', '/jobs', { program: '/bin/sleep', args: ['2'], np: 1, componentDir: site, daemon, timeoutSeconds: 60 });
    t.is(r.status, 202);
    ids.push((await json<Job>(r)).id);
  }
  for (const id of ids) t.is((await waitJob(id)).status, 'succeeded');
  const jobs = await Promise.all(ids.map(async (id) => json<Timed>(await api.req('GET', `/jobs/${id}`))));
  const span = jobs.map((j) => [Date.parse(j.startedAt!), Date.parse(j.finishedAt!)] as const).sort((x, y) => x[0] - y[0]);
  const overlap = (a: readonly [number, number], b: readonly [number, number]) => a[0] < b[1] && b[0] < a[1];
  t.true(overlap(span[0]!, span[1]!), `the first two ran at once: ${JSON.stringify(span)}`);
  // The third started only once one of the first two had finished: never three at once.
  t.true(span[2]![0] >= Math.min(span[0]![1], span[1]![1]) - 50, `the third waited for a slot: ${JSON.stringify(span)}`);
});

test.serial('a job\'s own MCA parameters reach its ranks', async (t) => {
  // mpirun hands MCA parameters to the processes it starts as OMPI_MCA_<name>.
  const r = await api.req('POST', '/jobs', { program: '/usr/bin/env', np: 1, componentDir: site, daemon, timeoutSeconds: 60, mca: { mpi_yield_when_idle: '1' } });
  t.is(r.status, 202);
  const j = await waitJob((await json<Job & { mca: Record<string, string> }>(r)).id);
  t.is(j.status, 'succeeded', j.stderr);
  t.regex(j.stdout, /^OMPI_MCA_mpi_yield_when_idle=1$/m);
  t.regex(j.stdout, /^OMPI_MCA_btl=self,dicom$/m);
  t.deepEqual((await json<{ mca: Record<string, string> }>(await api.req('GET', `/jobs/${j.id}`))).mca, { mpi_yield_when_idle: '1' });
});

test.serial('a failing MPI job is recorded as failed with its exit code', async (t) => {
  const r = await api.req('POST', '/jobs', { program: 'abort', np: 2, componentDir: site, daemon, timeoutSeconds: 60 });
  const j = await waitJob((await json<Job>(r)).id);
  t.is(j.status, 'failed');
  t.not(j.exitCode, 0);
  t.regex(j.error ?? '', /mpirun exited/);
  t.notRegex(j.stdout, /RESULT ok/);
});

test.serial('POST /jobs bad inputs are 400; unknown id 404; no token 401', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ program: 'collectives' }, /np/],
    [{ program: 'collectives', np: 0 }, /np/],
    [{ program: 'collectives', np: 'two' }, /np/],
    [{ program: 'collectives', np: 99 }, /np/],
    [{ np: 2 }, /program/],
    [{ program: '../../bin/sh', np: 2 }, /absolute path or a bare name/],
    [{ program: 'no-such-program', np: 2 }, /does not exist or is not executable/],
    [{ program: 'collectives', np: 2, nodes: ['node1'] }, /unknown node "node1"/],
    [{ program: 'collectives', np: 2, componentDir: tmp }, /holds no mca_btl_dicom\.so/],
    [{ program: 'collectives', np: 2, daemon: 'bad name!' }, /daemon/],
    [{ program: 'collectives', np: 2, args: 'x' }, /args/],
    [{ program: 'collectives', np: 2, mca: { btl: 'self,tcp' } }, /mca: btl is set by the job itself \(self,dicom\)/],
    [{ program: 'collectives', np: 2, mca: { mca_base_component_path: '/x' } }, /mca: mca_base_component_path is set by the job itself \(use "componentDir"\)/],
    [{ program: 'collectives', np: 2, mca: { 'Bad-Name': '1' } }, /mca: "Bad-Name" is not an MCA parameter name/],
    [{ program: 'collectives', np: 2, mca: { mpi_yield_when_idle: '1 2' } }, /mca: the value of mpi_yield_when_idle must be printable ASCII without spaces/],
    [{ program: 'collectives', np: 2, mca: { x: 1 } }, /mca/],
  ];
  for (const [body, re] of cases) {
    const r = await api.req('POST', '/jobs', body);
    t.is(r.status, 400, JSON.stringify(body));
    t.regex((await json<{ message: string }>(r)).message, re, JSON.stringify(body));
  }
  t.is((await api.req('GET', '/jobs/777777')).status, 404);
  t.is((await fetch(api.url + '/jobs')).status, 401);
});

test.serial('dicomctl jobs create/show/list', async (t) => {
  const env = { DICOM_URL: api.url, DICOM_TOKEN: api.token };
  const c = await dicomctl(['jobs', 'create', '--np', '2', '--component-dir', site, '--daemon', daemon, 'collectives'], { env });
  t.is(c.exitCode, 0, c.all);
  t.regex(c.stdout, /^RESULT ok ranks=2/m);
  t.regex(c.stderr, /job \d+ queued/);
  const l = await dicomctl(['jobs', 'list', '--json'], { env });
  t.is(l.exitCode, 0);
  const jobs = JSON.parse(l.stdout) as Job[];
  const s = await dicomctl(['jobs', 'show', String(jobs[0]!.id), '--json'], { env });
  t.is((JSON.parse(s.stdout) as Job).status, 'succeeded');
  const bad = await dicomctl(['jobs', 'create', '--np', '2', '--component-dir', site, '--daemon', daemon, 'abort'], { env });
  t.is(bad.exitCode, 1, 'a failed job is exit 1');
});
