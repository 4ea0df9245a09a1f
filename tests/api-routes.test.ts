// Every route's happy path and its bad inputs, against the real Postgres.
import test from 'ava';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';

let api: TestApi;
test.before(async () => {
  api = await startApi(await freshDatabase('routes'), { queue: true });
});
test.after.always(async () => {
  await api?.close();
});

const explicitTarget = {
  kind: 'ompi',
  version: '4.1.99',
  btlApi: '3.1',
  pkglibdir: '/opt/ompi/lib/openmpi',
  incdirs: ['/opt/ompi/include'],
  sysroot: '/opt/none',
};

test.serial('GET /healthz is public and reports the database', async (t) => {
  const r = await fetch(api.url + '/healthz');
  t.is(r.status, 200);
  t.deepEqual(await json(r), { status: 'ok', database: 'up', embedded: false });
});

test.serial('OpenAPI 3.1 is served at /docs without a token', async (t) => {
  const r = await fetch(api.url + '/docs/json');
  t.is(r.status, 200);
  const doc = await json<{ openapi: string; paths: Record<string, unknown> }>(r);
  t.is(doc.openapi, '3.1.0');
  for (const p of ['/healthz', '/metrics', '/targets', '/targets/{id}', '/builds', '/builds/{id}', '/builds/{id}/log', '/deployments', '/deployments/{id}', '/nodes', '/jobs', '/jobs/{id}']) {
    t.truthy(doc.paths[p], p);
  }
  const ui = await fetch(api.url + '/docs/');
  t.is(ui.status, 200);
  t.regex(ui.headers.get('content-type') ?? '', /text\/html/);
});

test.serial('no token, a wrong token and a malformed header are 401 on every protected route', async (t) => {
  for (const [m, p] of [
    ['GET', '/targets'],
    ['POST', '/targets'],
    ['GET', '/targets/1'],
    ['GET', '/builds'],
    ['POST', '/builds'],
    ['GET', '/builds/1'],
    ['GET', '/builds/1/log'],
    ['GET', '/metrics'],
  ] as const) {
    const none = await fetch(api.url + p, { method: m });
    t.is(none.status, 401, `${m} ${p} without token`);
    t.regex((await json<{ message: string }>(none)).message, /missing bearer token/);
    const wrong = await fetch(api.url + p, { method: m, headers: { authorization: 'Bearer dct_not-a-real-token' } });
    t.is(wrong.status, 401, `${m} ${p} wrong token`);
    t.regex((await json<{ message: string }>(wrong)).message, /invalid bearer token/);
    const bad = await fetch(api.url + p, { method: m, headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    t.is(bad.status, 401, `${m} ${p} basic auth`);
  }
});

test.serial('POST /targets registers explicit facts; a duplicate is 409; GET lists and shows it', async (t) => {
  const r = await api.req('POST', '/targets', explicitTarget);
  t.is(r.status, 201);
  const created = await json<{ id: number; version: string; btlApi: string }>(r);
  t.is(created.version, '4.1.99');
  t.is(created.btlApi, '3.1');
  const dup = await api.req('POST', '/targets', explicitTarget);
  t.is(dup.status, 409);
  t.regex((await json<{ message: string }>(dup)).message, /already registers ompi 4\.1\.99/);
  const list = await json<{ id: number }[]>(await api.req('GET', '/targets'));
  t.true(list.some((x) => x.id === created.id));
  const one = await api.req('GET', `/targets/${created.id}`);
  t.is(one.status, 200);
  t.is((await json<{ id: number }>(one)).id, created.id);
  const kernel = await api.req('POST', '/targets', { kind: 'kernel', version: '6.1.0' });
  t.is(kernel.status, 201);
});

test.serial('POST /targets {detect:"local"} reads the host Open MPI; detecting again returns the same target', async (t) => {
  const r = await api.req('POST', '/targets', { detect: 'local' });
  t.is(r.status, 201);
  const a = await json<{ id: number; kind: string; version: string; btlApi: string; pkglibdir: string; incdirs: string[] }>(r);
  t.is(a.kind, 'ompi');
  t.regex(a.version, /^\d+\.\d+\.\d+/);
  t.true(['3.1', '3.3'].includes(a.btlApi));
  t.true(a.incdirs.length > 0);
  const again = await api.req('POST', '/targets', { detect: 'local' });
  t.is(again.status, 200);
  t.is((await json<{ id: number }>(again)).id, a.id);
  const bad = await api.req('POST', '/targets', { detect: 'local', prefix: '/nonexistent/ompi' });
  t.is(bad.status, 400);
  t.regex((await json<{ message: string }>(bad)).message, /detection failed: .*ompi_info/);
});

test.serial('POST /targets bad inputs are 400 with a message', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{}, /detect:"local" or both "kind" and "version"/],
    [{ kind: 'ompi' }, /"kind" and "version"/],
    [{ kind: 'ompi', version: '4.1.5' }, /needs btlApi/],
    [{ kind: 'mpich', version: '4' }, /kind/],
    [{ kind: 'ompi', version: 415 }, /version/],
    [{ ...explicitTarget, btlApi: '9.9' }, /btlApi/],
    [{ ...explicitTarget, incdirs: 'notalist' }, /incdirs/],
    [{ ...explicitTarget, color: 'red' }, /additional properties|color/i],
    [{ detect: 'remote' }, /detect/],
    [{ detect: 'local', version: '1' }, /takes only "prefix"/],
    [{ kind: 'ompi', version: '../../etc' }, /version/],
    [[], /object/],
  ];
  for (const [body, re] of cases) {
    const r = await api.req('POST', '/targets', body);
    t.is(r.status, 400, JSON.stringify(body));
    const b = await json<{ message: string }>(r);
    t.regex(b.message, re, JSON.stringify(body));
  }
  const notJson = await api.req('POST', '/targets', '{"kind": ', { 'content-type': 'application/json' });
  t.is(notJson.status, 400);
  const wrongType = await api.req('POST', '/targets', 'kind=ompi', { 'content-type': 'application/x-www-form-urlencoded' });
  t.is(wrongType.status, 415);
});

test.serial('an oversized body is 413 (limit 64 KiB), never 500', async (t) => {
  const big = { ...explicitTarget, version: '4.1.98', incdirs: ['x'.repeat(70 * 1024)] };
  const r = await api.req('POST', '/targets', big);
  t.is(r.status, 413);
  t.regex((await json<{ message: string }>(r)).message, /too large/i);
  const rb = await api.req('POST', '/builds', { targetId: 1, pad: 'y'.repeat(100 * 1024) });
  t.is(rb.status, 413);
});

test.serial('unknown ids are 404, malformed ids 400, unknown routes 404', async (t) => {
  for (const p of ['/targets/999999', '/builds/999999', '/builds/999999/log']) {
    const r = await api.req('GET', p);
    t.is(r.status, 404, p);
    t.regex((await json<{ message: string }>(r)).message, /999999 not found/);
  }
  for (const p of ['/targets/abc', '/builds/0', '/builds/-1', '/builds/1.5', '/builds/99999999999/log']) {
    t.is((await api.req('GET', p)).status, 400, p);
  }
  t.is((await api.req('GET', '/nope')).status, 404);
  t.is((await api.req('GET', '/builds?limit=0')).status, 400);
  t.is((await api.req('GET', '/builds?status=exploded')).status, 400);
});

test.serial('POST /builds: bad types 400, unknown target 404, kernel target 400', async (t) => {
  for (const body of [{}, { targetId: 'one' }, { targetId: -3 }, { targetId: 1.5 }, { targetId: 1, extra: true }]) {
    const r = await api.req('POST', '/builds', body);
    t.is(r.status, 400, JSON.stringify(body));
    t.truthy((await json<{ message: string }>(r)).message);
  }
  const unknown = await api.req('POST', '/builds', { targetId: 424242 });
  t.is(unknown.status, 404);
  t.regex((await json<{ message: string }>(unknown)).message, /target 424242 not found/);
  const targets = await json<{ id: number; kind: string }[]>(await api.req('GET', '/targets'));
  const kernel = targets.find((x) => x.kind === 'kernel')!;
  const k = await api.req('POST', '/builds', { targetId: kernel.id });
  t.is(k.status, 400);
  t.regex((await json<{ message: string }>(k)).message, /kernel target/);
});

test.serial('GET /builds lists (empty, then filtered) and GET /metrics speaks Prometheus', async (t) => {
  const r = await api.req('GET', '/builds?status=succeeded&limit=5');
  t.is(r.status, 200);
  t.true(Array.isArray(await r.json()));
  const m = await api.req('GET', '/metrics');
  t.is(m.status, 200);
  t.regex(m.headers.get('content-type') ?? '', /text\/plain/);
  const text = await m.text();
  t.regex(text, /^# TYPE dicom_builds gauge$/m);
  t.regex(text, /^dicom_builds\{status="queued"\} \d+$/m);
  t.regex(text, /^dicom_queue_jobs\{state="active"\} \d+$/m);
  t.regex(text, /^dicom_http_requests_total\{method="GET",route="\/targets",status="401"\} \d+$/m);
});

test.serial('GET /builds pages are cached until Postgres notifies a change, by any writer', async (t) => {
  const { prisma } = api.db;
  const target = await prisma.target.create({ data: { kind: 'ompi', version: '4.1.77', btlApi: '3.1', pkglibdir: '/x', incdirs: ['/x'], sysroot: '/cache-test' } });
  const list = async () => json<{ id: number; status: string; error: string | null }[]>(await api.req('GET', `/builds?targetId=${target.id}`));
  t.deepEqual(await list(), []);
  t.deepEqual(await list(), [], 'the page is now cached');
  // another writer (not this API): only the trigger's notification can tell the cache
  const other = new (await import('pg')).default.Client({ connectionString: api.db.url });
  await other.connect();
  t.teardown(() => other.end());
  const { rows } = await other.query<{ id: number }>(`INSERT INTO "Build" ("targetId", status) VALUES ($1, 'failed') RETURNING id`, [target.id]);
  const id = rows[0]!.id;
  const seen = async (ok: (l: { id: number; status: string; error: string | null }[]) => boolean) => {
    for (let i = 0; i < 100; i++) {
      if (ok(await list())) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  };
  t.true(await seen((l) => l.length === 1 && l[0]!.id === id), 'the insert shows up');
  await other.query(`UPDATE "Build" SET error = 'changed elsewhere' WHERE id = $1`, [id]);
  t.true(await seen((l) => l[0]?.error === 'changed elsewhere'), 'an update shows up');
  await other.query(`DELETE FROM "Build" WHERE id = $1`, [id]);
  t.true(await seen((l) => l.length === 0), 'a delete shows up');
});
