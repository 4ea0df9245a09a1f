// A build job end to end through the API: pg-boss queue, the real generator
// (gcc), install into the build's own directory, ompi_info verification, the
// log streamed while it grows; then dicomctl over the same API; then restart
// recovery of a build whose server was killed with SIGKILL.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { createClient } from '../control/db/index.js';
import { createToken } from '../control/api/auth.js';
import { dicomctl, dicomctlBin } from './helpers/cli.js';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';

let api: TestApi;
let dbUrl: string;
let buildsDir: string;
let targetId: number;

test.before(async () => {
  dbUrl = await freshDatabase('build');
  buildsDir = await mkdtemp(path.join(os.tmpdir(), 'dicom-builds-'));
  api = await startApi(dbUrl, { queue: true, buildsDir });
  const r = await api.req('POST', '/targets', { detect: 'local' });
  targetId = (await json<{ id: number }>(r)).id;
});
test.after.always(async () => {
  await api?.close();
  if (buildsDir) await rm(buildsDir, { recursive: true, force: true });
});

interface Build {
  id: number;
  status: string;
  artifactPath: string | null;
  sha256: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

test.serial('POST /builds runs the real generator; the log follows the build; a second build meanwhile is 409', async (t) => {
  const t0 = performance.now();
  const r = await api.req('POST', '/builds', { targetId });
  t.is(r.status, 202);
  const b = await json<Build>(r);
  t.is(b.status, 'queued');
  t.is(r.headers.get('location'), `/builds/${b.id}`);

  const again = await api.req('POST', '/builds', { targetId });
  t.is(again.status, 409);
  t.regex((await json<{ message: string }>(again)).message, new RegExp(`build ${b.id} of target ${targetId} is already (queued|running)`));

  // Follow the log: chunks arrive while the build runs, the stream ends when it does.
  const logRes = await api.req('GET', `/builds/${b.id}/log`);
  t.is(logRes.status, 200);
  t.regex(logRes.headers.get('content-type') ?? '', /text\/plain/);
  const chunks: string[] = [];
  const dec = new TextDecoder();
  for await (const c of logRes.body!) chunks.push(dec.decode(c as Uint8Array, { stream: true }));
  const followed = chunks.join('');
  t.true(chunks.length >= 2, `log arrived in ${chunks.length} chunk(s)`);
  t.regex(followed, /» building btl_dicom for Open MPI/);
  t.regex(followed, /» verifying with ompi_info/);
  t.regex(followed, /btl_dicom_eager_limit/);
  t.regex(followed, /» succeeded in [\d.]+ s, sha256 [0-9a-f]{64}/);

  const done = await json<Build>(await api.req('GET', `/builds/${b.id}`));
  t.log(`build ${b.id}: ${done.status} in ${((performance.now() - t0) / 1000).toFixed(1)} s end to end`);
  t.is(done.status, 'succeeded', done.error ?? '');
  t.is(done.artifactPath, path.join(buildsDir, String(b.id), 'mca_btl_dicom.so'));
  const bytes = await readFile(done.artifactPath!);
  t.is(done.sha256, createHash('sha256').update(bytes).digest('hex'));
  t.truthy(done.startedAt && done.finishedAt);

  // The stored log equals what was followed; follow=false on a finished build returns it at once.
  const stored = await (await api.req('GET', `/builds/${b.id}/log?follow=false`)).text();
  t.is(stored, followed);

  const list = await json<Build[]>(await api.req('GET', `/builds?targetId=${targetId}&status=succeeded`));
  t.true(list.some((x) => x.id === b.id));
  const metrics = await (await api.req('GET', '/metrics')).text();
  t.regex(metrics, /^dicom_builds\{status="succeeded"\} [1-9]\d*$/m);
  t.regex(metrics, /^dicom_queue_jobs\{state="completed"\} [1-9]\d*$/m);
});

test.serial('dicomctl targets/builds drive the same API: progress, --json, exit codes', async (t) => {
  const env = { DICOM_URL: api.url, DICOM_TOKEN: api.token };
  const list = await dicomctl(['targets', 'list', '--json'], { env });
  t.is(list.exitCode, 0, list.all);
  t.true((JSON.parse(list.stdout) as { id: number }[]).some((x) => x.id === targetId));
  const human = await dicomctl(['targets', 'list'], { env });
  t.regex(human.stdout, /id\s+node\s+kind\s+version/);

  const created = await dicomctl(['builds', 'create', '--target', String(targetId), '--json'], { env });
  t.is(created.exitCode, 0, created.all);
  const b = JSON.parse(created.stdout) as Build;
  t.is(b.status, 'succeeded');
  t.regex(created.stderr, /build \d+ queued/);
  t.regex(created.stderr, /succeeded \(/);

  const streamed = await dicomctl(['builds', 'create', '--target', String(targetId)], { env });
  t.is(streamed.exitCode, 0, streamed.all);
  t.regex(streamed.stderr, /» verifying with ompi_info/, 'the log is shown as progress');
  t.regex(streamed.stdout, /^build \d+ succeeded in [\d.]+ s: .*mca_btl_dicom\.so \(sha256 [0-9a-f]{64}\)$/m);

  const show = await dicomctl(['builds', 'show', String(b.id), '--json'], { env });
  t.is(show.exitCode, 0);
  t.is((JSON.parse(show.stdout) as Build).sha256, b.sha256);
  const log = await dicomctl(['builds', 'log', String(b.id)], { env });
  t.regex(log.stdout, /» succeeded/);
  const bl = await dicomctl(['builds', 'list'], { env });
  t.regex(bl.stdout, /succeeded/);

  t.is((await dicomctl(['builds', 'show', '987654'], { env })).exitCode, 3, 'not found');
  t.is((await dicomctl(['builds', 'show', 'x'], { env })).exitCode, 2, 'usage');
  t.is((await dicomctl(['builds', 'create'], { env })).exitCode, 2, 'usage');
  t.is((await dicomctl(['builds', 'list'], { env: { ...env, DICOM_TOKEN: 'wrong' } })).exitCode, 5, 'unauthorized');
  const down = await dicomctl(['builds', 'list', '--url', 'http://127.0.0.1:9'], { env });
  t.is(down.exitCode, 6, 'unreachable');
  t.regex(down.stderr, /cannot reach the control plane/);
  const add = await dicomctl(['targets', 'add', '--kind', 'kernel', '--version', '6.6.1', '--json'], { env });
  t.is(add.exitCode, 0, add.all);
  const dup = await dicomctl(['targets', 'add', '--kind', 'kernel', '--version', '6.6.1'], { env });
  t.is(dup.exitCode, 4, 'conflict');
});

test.serial('restart recovery: a build left running by a killed server is failed, a queued one runs', async (t) => {
  // A second control plane on its own database, as a real process.
  const url = await freshDatabase('recovery');
  const prisma = createClient(url);
  t.teardown(() => prisma.$disconnect());
  const { token } = await createToken(prisma, 'recovery');
  const env = { DATABASE_URL: url, DICOM_BUILDS_DIR: buildsDir };
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = execa(dicomctlBin, ['serve', '--port', String(port)], { env, reject: false, all: true });
  const base = `http://127.0.0.1:${port}`;
  const h = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  for (let i = 0; i < 100; i++) {
    if (await fetch(base + '/healthz').then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const target = await json<{ id: number }>(await fetch(base + '/targets', { method: 'POST', headers: h, body: JSON.stringify({ detect: 'local' }) }));
  const b = await json<Build>(await fetch(base + '/builds', { method: 'POST', headers: h, body: JSON.stringify({ targetId: target.id }) }));
  for (let i = 0; i < 200; i++) {
    const cur = await prisma.build.findUniqueOrThrow({ where: { id: b.id } });
    if (cur.status === 'running') break;
    await new Promise((r) => setTimeout(r, 25));
  }
  server.kill('SIGKILL');
  await server;
  const orphan = await prisma.build.findUniqueOrThrow({ where: { id: b.id } });
  if (orphan.status !== 'running') {
    t.log(`the build finished (${orphan.status}) before the kill landed; forcing the crash state`);
    await prisma.build.update({ where: { id: b.id }, data: { status: 'running', finishedAt: null } });
  }
  // A queued build whose job never reached the queue (crash between insert and send).
  const queued = await prisma.build.create({ data: { targetId: target.id } });
  await new Promise((r) => setTimeout(r, 1500)); // let the orphaned make finish with the shared build dir

  const restarted = await startApi(url, { queue: true, buildsDir });
  t.teardown(() => restarted.close());
  const failed = await json<Build>(await restarted.req('GET', `/builds/${b.id}`));
  t.is(failed.status, 'failed');
  t.regex(failed.error ?? '', /interrupted: the server stopped while this build was running/);
  t.truthy(failed.finishedAt);
  let last: Build | undefined;
  for (let i = 0; i < 300; i++) {
    last = await json<Build>(await restarted.req('GET', `/builds/${queued.id}`));
    if (last.status === 'succeeded' || last.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(last?.status, 'succeeded', last?.error ?? '');
  t.is(await prisma.build.count({ where: { status: 'running' } }), 0, 'nothing left running');
});
