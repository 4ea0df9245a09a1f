// Deployments through the API, locally: install + ompi_info verification,
// rollback of a node whose verification fails, and the bad inputs.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';

let api: TestApi;
let tmp: string;
let good: { id: number; sha256: string; targetId: number };

interface Deployment {
  id: number;
  status: string;
  dest: string;
  error: string | null;
  nodes: { nodeName: string; status: string; error: string | null; log: string }[];
}

const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');

async function waitDeployment(id: number): Promise<Deployment> {
  for (let i = 0; i < 300; i++) {
    const d = await json<Deployment>(await api.req('GET', `/deployments/${id}`));
    if (d.status !== 'pending' && d.status !== 'running') return d;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`deployment ${id} did not finish`);
}

test.before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-deploy-'));
  api = await startApi(await freshDatabase('deploy'), { queue: true, buildsDir: path.join(tmp, 'builds') });
  const target = await json<{ id: number }>(await api.req('POST', '/targets', { detect: 'local' }));
  const b = await json<{ id: number }>(await api.req('POST', '/builds', { targetId: target.id }));
  await api.queue!.idle();
  for (let i = 0; i < 300; i++) {
    const cur = await json<{ status: string; sha256: string }>(await api.req('GET', `/builds/${b.id}`));
    if (cur.status === 'succeeded') {
      good = { id: b.id, sha256: cur.sha256, targetId: target.id };
      return;
    }
    if (cur.status === 'failed') throw new Error('setup build failed');
    await new Promise((r) => setTimeout(r, 100));
  }
});
test.after.always(async () => {
  await api?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test.serial('POST /deployments installs a build locally and verifies it with ompi_info', async (t) => {
  const dest = path.join(tmp, 'site');
  const r = await api.req('POST', '/deployments', { buildId: good.id, dest });
  t.is(r.status, 202);
  const d0 = await json<Deployment>(r);
  t.deepEqual(d0.nodes.map((n) => n.nodeName), ['local']);
  const d = await waitDeployment(d0.id);
  t.is(d.status, 'succeeded', JSON.stringify(d));
  t.is(d.nodes[0]!.status, 'succeeded');
  t.regex(d.nodes[0]!.log, /ompi_info lists btl dicom with \d+ parameters/);
  t.is(await sha(path.join(dest, 'mca_btl_dicom.so')), good.sha256);
  t.regex(await readFile(path.join(dest, 'env.sh'), 'utf8'), /OMPI_MCA_mca_base_component_path=/);
  const list = await json<Deployment[]>(await api.req('GET', '/deployments'));
  t.is(list[0]!.id, d.id);
});

test.serial('a node whose verification fails is rolled back to its previous component', async (t) => {
  const dest = path.join(tmp, 'site'); // holds the good component from the previous test
  const bogus = path.join(tmp, 'bogus.so');
  await writeFile(bogus, 'not an ELF object\n');
  const prisma = api.db.prisma;
  const bad = await prisma.build.create({
    data: { targetId: good.targetId, status: 'succeeded', artifactPath: bogus, sha256: await sha(bogus), finishedAt: new Date() },
  });
  const d = await waitDeployment((await json<Deployment>(await api.req('POST', '/deployments', { buildId: bad.id, dest }))).id);
  t.is(d.status, 'failed');
  t.is(d.nodes[0]!.status, 'rolled_back');
  t.regex(d.nodes[0]!.error ?? '', /ompi_info/);
  t.regex(d.nodes[0]!.log, /rolled back to the previous component/);
  t.is(await sha(path.join(dest, 'mca_btl_dicom.so')), good.sha256, 'the previous component is back');

  // An artifact that changed since its build is refused before anything is installed.
  await prisma.build.update({ where: { id: bad.id }, data: { sha256: '0'.repeat(64) } });
  const d2 = await waitDeployment((await json<Deployment>(await api.req('POST', '/deployments', { buildId: bad.id, dest }))).id);
  t.is(d2.status, 'failed');
  t.is(d2.nodes[0]!.status, 'failed');
  t.regex(d2.nodes[0]!.error ?? '', /changed since build/);
  t.is(await sha(path.join(dest, 'mca_btl_dicom.so')), good.sha256);
});

test.serial('POST /deployments bad inputs: 400, 404, 409', async (t) => {
  const dest = path.join(tmp, 'x');
  const cases: [unknown, number, RegExp][] = [
    [{ buildId: good.id }, 400, /dest/],
    [{ dest }, 400, /buildId/],
    [{ buildId: good.id, dest: 'relative/dir' }, 400, /dest/],
    [{ buildId: good.id, dest: '/tmp/../etc' }, 400, /"\.\."/],
    [{ buildId: 'x', dest }, 400, /buildId/],
    [{ buildId: good.id, dest, nodes: [] }, 400, /nodes/],
    [{ buildId: good.id, dest, nodes: ['local', 'local'] }, 400, /duplicate|identical/],
    [{ buildId: good.id, dest, nodes: ['node1'] }, 400, /unknown node "node1"/],
    [{ buildId: 999999, dest }, 404, /build 999999 not found/],
  ];
  for (const [body, code, re] of cases) {
    const r = await api.req('POST', '/deployments', body);
    t.is(r.status, code, JSON.stringify(body));
    t.regex((await json<{ message: string }>(r)).message, re, JSON.stringify(body));
  }
  const failed = await api.db.prisma.build.create({ data: { targetId: good.targetId, status: 'failed', error: 'x' } });
  const c = await api.req('POST', '/deployments', { buildId: failed.id, dest });
  t.is(c.status, 409);
  t.regex((await json<{ message: string }>(c)).message, /only a succeeded build can be deployed/);
  t.is((await api.req('GET', '/deployments/424242')).status, 404);
  t.is((await fetch(api.url + '/deployments')).status, 401);
});

test.serial('dicomctl deployments create/list/show and nodes list go through the API', async (t) => {
  const { dicomctl } = await import('./helpers/cli.js');
  const env = { DICOM_URL: api.url, DICOM_TOKEN: api.token };
  const dest = path.join(tmp, 'cli-site');
  const c = await dicomctl(['deployments', 'create', '--build', String(good.id), '--dest', dest, '--json'], { env });
  t.is(c.exitCode, 0, c.all);
  t.regex(c.stderr, /local: succeeded/);
  const d = JSON.parse(c.stdout) as Deployment;
  t.is(d.status, 'succeeded');
  const show = await dicomctl(['deployments', 'show', String(d.id)], { env });
  t.regex(show.stdout, /\[local\] succeeded/);
  const list = await dicomctl(['deployments', 'list'], { env });
  t.regex(list.stdout, new RegExp(`${dest}`));
  t.is((await dicomctl(['deployments', 'create', '--build', '999999', '--dest', dest], { env })).exitCode, 3);
  t.is((await dicomctl(['deployments', 'create', '--dest', dest], { env })).exitCode, 2);
  const nodes = await dicomctl(['nodes', 'list', '--json'], { env });
  t.is(nodes.exitCode, 0, nodes.all);
  const ns = JSON.parse(nodes.stdout) as { name: string; source: string; dicomdError: string | null; healthy: boolean }[];
  const local = ns.find((n) => n.source === 'local')!;
  t.truthy(local);
  // The host dicomd answers through libdicom, or the error says why it did not.
  t.true(local.healthy || typeof local.dicomdError === 'string');
});
