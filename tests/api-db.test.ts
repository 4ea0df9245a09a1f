// The database paths: an outage gives 503 and the API recovers by itself when
// Postgres returns (a throwaway embedded cluster, never the shared one), and
// with no DATABASE_URL `dicomctl serve` starts the embedded default,
// applies the migrations and stops it cleanly.
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { migrate, pendingMigrations } from '../control/db/index.js';
import { startEmbedded } from '../control/db/embedded.js';
import { dicomctl, dicomctlBin } from './helpers/cli.js';
import { json, startApi } from './helpers/api.js';

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), prefix));
  await chmod(d, 0o755); // postgres runs as its own user
  return d;
}

test.serial('a database outage is 503 on every route, and the API recovers by itself', async (t) => {
  const dir = await tempDir('dicom-outage-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let emb = await startEmbedded(dir);
  t.teardown(() => emb.stop());
  const tm = performance.now();
  await migrate(emb.url);
  t.log(`migrated a fresh cluster in ${((performance.now() - tm) / 1000).toFixed(1)} s`);
  const api = await startApi(emb.url, { queue: true });
  t.teardown(() => api.close());
  t.is((await api.req('GET', '/targets')).status, 200);
  t.is((await api.req('GET', '/builds')).status, 200, 'a cached page of builds exists before the outage');

  await emb.stop();
  const t0 = performance.now();
  for (const [m, p, body] of [
    ['GET', '/targets', undefined],
    ['POST', '/targets', { kind: 'kernel', version: '6.1.1' }],
    ['GET', '/builds', undefined],
    ['GET', '/builds/1', undefined],
    ['POST', '/builds', { targetId: 1 }],
    ['GET', '/metrics', undefined],
  ] as const) {
    const r = await api.req(m, p, body);
    t.is(r.status, 503, `${m} ${p}`);
    t.is(r.headers.get('retry-after'), '2');
    t.regex((await json<{ message: string }>(r)).message, /job database is unreachable/);
  }
  const h = await fetch(api.url + '/healthz');
  t.is(h.status, 503);
  t.like(await json(h), { status: 'degraded', database: 'down' });
  t.log(`503s answered in ${(performance.now() - t0).toFixed(0)} ms`);
  // Bad input is still a 4xx, not a 503 or 500, while the database is down.
  t.is((await api.req('POST', '/targets', { kind: 42 })).status, 400);

  emb = await startEmbedded(dir, () => {}, emb.port);
  const t1 = performance.now();
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    status = (await api.req('GET', '/targets')).status;
    if (status !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  t.is(status, 200, 'recovered');
  t.log(`recovered ${(performance.now() - t1).toFixed(0)} ms after Postgres came back`);
  t.is((await fetch(api.url + '/healthz')).status, 200);
  const created = await api.req('POST', '/targets', { kind: 'kernel', version: '6.1.1' });
  t.is(created.status, 201);
  // The job queue came back too: a build is queued and its worker picks it up
  // (this target's headers do not exist, so the build fails, quickly and on record).
  const bogus = await json<{ id: number }>(
    await api.req('POST', '/targets', { kind: 'ompi', version: '0.0.1', btlApi: '3.1', pkglibdir: '/nonexistent/lib', incdirs: ['/nonexistent/include'] }),
  );
  const b = await api.req('POST', '/builds', { targetId: bogus.id });
  t.is(b.status, 202);
  const id = (await json<{ id: number }>(b)).id;
  let st = '';
  for (let i = 0; i < 600 && st !== 'failed' && st !== 'succeeded'; i++) {
    st = (await json<{ status: string }>(await api.req('GET', `/builds/${id}`))).status;
    if (st !== 'failed' && st !== 'succeeded') await new Promise((r) => setTimeout(r, 100));
  }
  t.is(st, 'failed', 'the worker ran the build after the outage');
  const tc = performance.now();
  await api.close();
  t.log(`closed in ${(performance.now() - tc).toFixed(0)} ms`);
});

test.serial('no DATABASE_URL: dicomctl serve starts the embedded postgres, migrates, serves, and stops it', async (t) => {
  const dir = await tempDir('dicom-embedded-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env: Record<string, string> = { DICOM_DB_DIR: dir };
  const port = 20000 + Math.floor(Math.random() * 20000);
  const t0 = performance.now();
  // the embedded path is what is under test: hide any DATABASE_URL of the caller
  const server = execa(dicomctlBin, ['serve', '--port', String(port), '--json'], {
    env: { ...env, DATABASE_URL: undefined },
    reject: false,
    all: true,
  });
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}`;
  let up = false;
  for (let i = 0; i < 300 && !up; i++) {
    up = await fetch(base + '/healthz').then((r) => r.ok, () => false);
    if (!up) await new Promise((r) => setTimeout(r, 200));
  }
  t.true(up, 'server came up');
  t.log(`embedded first start (initdb + migrations) ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  t.like(await json(await fetch(base + '/healthz')), { status: 'ok', database: 'up', embedded: true });

  // The CLI shares the running embedded database to mint a token.
  const tok = await dicomctl(['token', 'create', 'embedded-test'], { env: { ...env, DATABASE_URL: '' } });
  t.is(tok.exitCode, 0, tok.all);
  const token = tok.stdout.trim();
  t.regex(token, /^dct_/);
  const r = await fetch(base + '/targets', { headers: { authorization: `Bearer ${token}` } });
  t.is(r.status, 200);
  t.deepEqual(await r.json(), []);

  const pidFile = path.join(dir, 'pg17', 'postmaster.pid');
  const pgPid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  const url = `postgresql://dicom:dicom@127.0.0.1:${Number((await readFile(pidFile, 'utf8')).split('\n')[3])}/dicom`;
  t.deepEqual(await pendingMigrations(url), [], 'all migrations applied');

  server.kill('SIGTERM');
  const done = await server;
  t.is(done.exitCode, 0, done.all);
  t.throws(() => process.kill(pgPid, 0), undefined, 'embedded postgres stopped with the server');
  await t.throwsAsync(stat(pidFile));

  // Second start reuses the data directory: no initdb, no migration.
  const t1 = performance.now();
  const again = execa(dicomctlBin, ['serve', '--port', String(port)], { env: { ...env, DATABASE_URL: undefined }, reject: false, all: true });
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    ok = await fetch(base + '/targets', { headers: { authorization: `Bearer ${token}` } }).then((x) => x.status === 200, () => false);
    if (!ok) await new Promise((r) => setTimeout(r, 100));
  }
  t.true(ok, 'the token persisted in the embedded data directory');
  t.log(`embedded restart ready in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  again.kill('SIGTERM');
  t.is((await again).exitCode, 0);
});
