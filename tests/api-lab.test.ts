// The control plane against the lab: deployments to lab nodes over ssh (copy,
// sha256, ompi_info on each node, rollback), Open MPI detected on a node over
// ssh, MPI jobs across lab nodes over dicom, and the nodes' dicomd status.
// The file brings its own 3-node lab up and down (run it under
// flock /tmp/dicom-lab.lock when other lab users may be around).
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { labDown, labStatus, labUp, readState } from '../control/lab/index.js';
import { stopPids } from '../control/daemon/proc.js';
import { ensureComponent, ensureMpiPrograms } from '../control/runner/prereq.js';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';
import { isRoot } from './helpers/cli.js';

const lab = isRoot ? test.serial : test.skip;
if (!isRoot) test('lab API tests need root (network namespaces, sshd); skipped', (t) => t.pass());

let api: TestApi;
let tmp: string;
let good: { id: number; sha256: string; targetId: number };

interface DNode {
  nodeName: string;
  status: string;
  error: string | null;
  log: string;
}
interface Deployment {
  id: number;
  status: string;
  dest: string;
  error: string | null;
  nodes: DNode[];
}

const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');
const message = async (r: Response) => (await json<{ message: string }>(r)).message;

async function until<T>(what: string, get: () => Promise<T>, done: (v: T) => boolean, tries = 1200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await get();
    if (done(v)) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not finish`);
}
const waitDeployment = (id: number) =>
  until(`deployment ${id}`, async () => json<Deployment>(await api.req('GET', `/deployments/${id}`)), (d) => d.status !== 'pending' && d.status !== 'running');
const deploy = async (body: unknown) => {
  const r = await api.req('POST', '/deployments', body);
  if (r.status !== 202) throw new Error(`POST /deployments ${JSON.stringify(body)}: ${r.status} ${await r.text()}`);
  return waitDeployment((await json<Deployment>(r)).id);
};

test.before(async () => {
  if (!isRoot) return;
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-apilab-'));
  await ensureMpiPrograms();
  api = await startApi(await freshDatabase('lab'), { queue: true, buildsDir: path.join(tmp, 'builds') });
  const target = await json<{ id: number }>(await api.req('POST', '/targets', { detect: 'local' }));
  // The artifact is the component `btl install` made (builds through the API
  // are tested in api-build.test.ts), copied so nobody else's install changes it.
  const artifact = path.join(tmp, 'artifact', 'mca_btl_dicom.so');
  await mkdir(path.dirname(artifact));
  await copyFile(path.join(await ensureComponent(() => {}), 'mca_btl_dicom.so'), artifact);
  const sha256 = await sha(artifact);
  const b = await api.db.prisma.build.create({ data: { targetId: target.id, status: 'succeeded', artifactPath: artifact, sha256, finishedAt: new Date() } });
  good = { id: b.id, sha256, targetId: target.id };
  if ((await labStatus()).up) await labDown();
  await labUp({ nodes: 3 });
});

test.after.always(async () => {
  if (!isRoot) return;
  await api?.close();
  await labDown();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

lab('POST /deployments to 2 lab nodes copies over ssh and verifies with ompi_info on each node', async (t) => {
  const dest = path.join(tmp, 'lab-site');
  const d = await deploy({ buildId: good.id, dest, nodes: ['n1', 'n2'] });
  t.is(d.status, 'succeeded', JSON.stringify(d, null, 1));
  t.deepEqual(d.nodes.map((n) => [n.nodeName, n.status]), [['n1', 'succeeded'], ['n2', 'succeeded']]);
  for (const n of d.nodes) {
    // the hostname comes from the node's own UTS namespace, seen through its sshd
    t.regex(n.log, new RegExp(`ssh ${n.nodeName} \\(10\\.77\\.0\\.\\d+\\): hostname ${n.nodeName}\\n`), n.log);
    t.regex(n.log, new RegExp(`copied over ssh to ${n.nodeName}:.*sha256 matches`));
    t.regex(n.log, new RegExp(`ompi_info on ${n.nodeName} \\(over ssh\\) lists btl dicom`));
    t.regex(n.log, /ompi_info lists btl dicom with \d+ parameters/);
  }
  t.is(await sha(path.join(dest, 'mca_btl_dicom.so')), good.sha256);
  t.regex(await readFile(path.join(dest, 'env.sh'), 'utf8'), new RegExp(`OMPI_MCA_mca_base_component_path=${dest}:`));
  const got = await json<Deployment>(await api.req('GET', `/deployments/${d.id}`));
  t.deepEqual(got.nodes.map((n) => n.status), ['succeeded', 'succeeded'], 'per-node status is in the database');
});

lab('a lab node whose verification fails is rolled back over ssh; the previous component stays', async (t) => {
  const dest = path.join(tmp, 'lab-site'); // holds the good component from the previous test
  const bogus = path.join(tmp, 'bogus.so');
  await writeFile(bogus, 'not an ELF object\n');
  const bad = await api.db.prisma.build.create({
    data: { targetId: good.targetId, status: 'succeeded', artifactPath: bogus, sha256: await sha(bogus), finishedAt: new Date() },
  });
  const d = await deploy({ buildId: bad.id, dest, nodes: ['n2', 'n3'] });
  t.is(d.status, 'failed');
  for (const n of d.nodes) {
    t.is(n.status, 'rolled_back', n.log);
    t.regex(n.error ?? '', /ompi_info/);
    t.regex(n.log, /copied over ssh/);
    t.regex(n.log, /rolled back to the previous component/);
  }
  t.is(await sha(path.join(dest, 'mca_btl_dicom.so')), good.sha256, 'the previous component is back');
  const leftovers = (await import('node:fs')).readdirSync(dest).filter((f) => f.startsWith('.'));
  t.deepEqual(leftovers, [], 'no backup or incoming file is left behind');
});

lab('a fresh dest on a failing node is removed again; other nodes keep theirs', async (t) => {
  const bogus = path.join(tmp, 'bogus2.so');
  await writeFile(bogus, 'still not an ELF object\n');
  const bad = await api.db.prisma.build.create({
    data: { targetId: good.targetId, status: 'succeeded', artifactPath: bogus, sha256: await sha(bogus), finishedAt: new Date() },
  });
  const dest = path.join(tmp, 'fresh-site');
  const d = await deploy({ buildId: bad.id, dest, nodes: ['n3'] });
  t.is(d.nodes[0]!.status, 'rolled_back');
  t.regex(d.nodes[0]!.log, /rolled back: removed the new component/);
  await t.throwsAsync(readFile(path.join(dest, 'mca_btl_dicom.so')));
});

lab('POST /deployments with lab nodes: 400 for unknown nodes and unsafe paths', async (t) => {
  const dest = path.join(tmp, 'x');
  const cases: [unknown, number, RegExp][] = [
    [{ buildId: good.id, dest, nodes: ['n9'] }, 400, /no lab node n9: the lab has n1, n2, n3/],
    [{ buildId: good.id, dest, nodes: ['node1'] }, 400, /unknown node "node1"/],
    [{ buildId: good.id, dest, nodes: ['n1', 'n1'] }, 400, /duplicate|identical/],
    [{ buildId: good.id, dest: '/tmp/a b', nodes: ['n1'] }, 400, /may hold only/],
    [{ buildId: good.id, dest: "/tmp/x';reboot", nodes: ['n1'] }, 400, /may hold only/],
    [{ buildId: 999999, dest, nodes: ['n1'] }, 404, /build 999999 not found/],
  ];
  for (const [body, code, re] of cases) {
    const r = await api.req('POST', '/deployments', body);
    t.is(r.status, code, JSON.stringify(body));
    t.regex(await message(r), re, JSON.stringify(body));
  }
});

lab('POST /targets {detect:"ssh", node} runs ompi_info on the lab node over ssh', async (t) => {
  const r = await api.req('POST', '/targets', { detect: 'ssh', node: 'n2' });
  t.is(r.status, 201);
  const tg = await json<{ id: number; version: string; btlApi: string; pkglibdir: string; nodeId: number; node: { name: string; address: string } }>(r);
  const local = await json<{ version: string; btlApi: string; pkglibdir: string }>(await api.req('GET', `/targets/${good.targetId}`));
  t.is(tg.version, local.version);
  t.is(tg.btlApi, local.btlApi);
  t.is(tg.pkglibdir, local.pkglibdir);
  t.deepEqual(tg.node, { name: 'n2', address: readState()!.nodes[1]!.addr });
  t.not(tg.id, good.targetId, 'a node target is its own row');
  const again = await api.req('POST', '/targets', { detect: 'ssh', node: 'n2' });
  t.is(again.status, 200);
  t.is((await json<{ id: number }>(again)).id, tg.id);
  const node = await api.db.prisma.node.findUniqueOrThrow({ where: { name: 'n2' } });
  t.is(node.address, tg.node.address);
  t.truthy(node.lastSeen);

  const cases: [unknown, number, RegExp][] = [
    [{ detect: 'ssh' }, 400, /needs "node"/],
    [{ detect: 'ssh', node: 'n7' }, 400, /no lab node n7/],
    [{ detect: 'ssh', node: 'local' }, 400, /use detect:"local"/],
    [{ detect: 'local', node: 'n2' }, 400, /"node" goes with detect:"ssh"/],
    [{ detect: 'ssh', node: 'n2', version: '1' }, 400, /takes only "prefix" and "node"/],
    [{ detect: 'ssh', node: 'n2', prefix: '/no/such/ompi' }, 400, /detection failed on n2 \(over ssh\): .*ompi_info/],
    [{ detect: 'ssh', node: 'n2', prefix: '/x;reboot' }, 400, /may hold only/],
    [{ detect: 'ssh', node: 3 }, 400, /node/],
  ];
  for (const [body, code, re] of cases) {
    const res = await api.req('POST', '/targets', body);
    t.is(res.status, code, JSON.stringify(body));
    t.regex(await message(res), re, JSON.stringify(body));
  }
});

lab('dicomctl targets detect --node n3 goes through the API', async (t) => {
  const { dicomctl } = await import('./helpers/cli.js');
  const env = { DICOM_URL: api.url, DICOM_TOKEN: api.token };
  const c = await dicomctl(['targets', 'detect', '--node', 'n3'], { env });
  t.is(c.exitCode, 0, c.all);
  t.regex(c.stderr, /detecting Open MPI on n3 over ssh/);
  t.regex(c.stdout, /\bn3\b.*ompi/);
  const bad = await dicomctl(['targets', 'detect', '--node', 'n8'], { env });
  t.is(bad.exitCode, 2, bad.all);
});

interface Job {
  id: number;
  nodes: string[];
  status: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  error: string | null;
}
const runJob = async (body: unknown) => {
  const r = await api.req('POST', '/jobs', body);
  if (r.status !== 202) throw new Error(`POST /jobs ${JSON.stringify(body)}: ${r.status} ${await r.text()}`);
  const id = (await json<Job>(r)).id;
  return until(`job ${id}`, async () => json<Job>(await api.req('GET', `/jobs/${id}`)), (j) => j.status === 'succeeded' || j.status === 'failed', 3000);
};
let clusterSite: string;

lab('POST /jobs across 3 lab nodes runs mpirun over dicom and captures stdout and the exit status', async (t) => {
  clusterSite = path.join(tmp, 'cluster-site');
  const d = await deploy({ buildId: good.id, dest: clusterSite, nodes: ['n1', 'n2', 'n3'] });
  t.is(d.status, 'succeeded', JSON.stringify(d.nodes.map((n) => n.error)));

  const where = await runJob({ nodes: ['n1', 'n2', 'n3'], np: 3, program: '/bin/hostname', componentDir: clusterSite, timeoutSeconds: 60 });
  t.is(where.status, 'succeeded', `${where.error}\n${where.stderr}`);
  t.deepEqual(where.stdout.trim().split('\n').sort(), ['n1', 'n2', 'n3'], 'one rank per node');

  const j = await runJob({ nodes: ['n1', 'n2', 'n3'], np: 6, program: 'collectives', componentDir: clusterSite, timeoutSeconds: 180 });
  t.is(j.status, 'succeeded', `${j.error}\n${j.stderr.slice(-3000)}`);
  t.is(j.exitCode, 0);
  t.regex(j.stdout, /^RESULT ok ranks=6/m);
  t.deepEqual(j.nodes, ['n1', 'n2', 'n3']);

  const two = await runJob({ nodes: ['n2', 'n3'], np: 2, program: 'pingpong', componentDir: clusterSite, timeoutSeconds: 180 });
  t.is(two.status, 'succeeded', `${two.error}\n${two.stderr.slice(-3000)}`);
  t.regex(two.stdout, /^RESULT ok/m);
});

lab('an MPI job that aborts across lab nodes is failed with its exit status; the lab stays healthy', async (t) => {
  const j = await runJob({ nodes: ['n1', 'n2', 'n3'], np: 3, program: 'abort', componentDir: clusterSite, timeoutSeconds: 60 });
  t.is(j.status, 'failed');
  t.is(j.exitCode, 7, j.stderr.slice(-2000));
  t.regex(j.error ?? '', /mpirun exited 7/);
  t.regex(j.stdout, /RESULT abort-sent/);
  t.true((await labStatus()).healthy);
});

lab('an MPI job over its timeout is failed and leaves nothing running in the nodes', async (t) => {
  const j = await runJob({ nodes: ['n1', 'n2'], np: 2, program: '/bin/sleep', args: ['600'], componentDir: clusterSite, timeoutSeconds: 2 });
  t.is(j.status, 'failed');
  t.is(j.error, 'timed out after 2 s');
  const { nsPids } = await import('../control/lab/index.js');
  const { readCmdline } = await import('../control/daemon/proc.js');
  const left = [];
  for (const n of readState()!.nodes) for (const p of await nsPids(n.ns)) if (/sleep|orted/.test(readCmdline(p)?.join(' ') ?? '')) left.push(p);
  t.deepEqual(left, []);
});

lab('POST /jobs on lab nodes: 400 for bad node lists', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ nodes: ['local', 'n1'], np: 2, program: 'collectives' }, /either on "local" or on lab nodes/],
    [{ nodes: ['n1', 'n9'], np: 2, program: 'collectives' }, /no lab node n9/],
    [{ nodes: ['n1'], np: 2, program: 'collectives', daemon: 'other' }, /lab nodes run their dicomd on @dicomd/],
    [{ nodes: 'n1', np: 2, program: 'collectives' }, /nodes/],
    [{ nodes: ['n1'], np: 2, program: 'no-such-program' }, /does not exist or is not executable/],
  ];
  for (const [body, re] of cases) {
    const r = await api.req('POST', '/jobs', body);
    t.is(r.status, 400, JSON.stringify(body));
    t.regex(await message(r), re, JSON.stringify(body));
  }
});

lab('dicomctl jobs create --node ... runs across lab nodes', async (t) => {
  const { dicomctl } = await import('./helpers/cli.js');
  const env = { DICOM_URL: api.url, DICOM_TOKEN: api.token };
  const c = await dicomctl(['jobs', 'create', '--np', '3', '--node', 'n1', '--node', 'n2', '--node', 'n3', '--component-dir', clusterSite, 'collectives'], { env });
  t.is(c.exitCode, 0, c.all);
  t.regex(c.stdout, /^RESULT ok ranks=3/m);
  t.regex(c.stderr, /on n1, n2, n3/);
});

interface NodeView {
  name: string;
  source: string;
  address: string | null;
  healthy: boolean | null;
  dicomd: { node: string; pid: number; endpoints: unknown[] } | null;
  dicomdError: string | null;
  sshd: boolean | null;
  registered: boolean;
  gossip: unknown;
}

lab('GET /nodes asks each lab node\'s own dicomd through libdicom, from inside its namespace', async (t) => {
  const state = readState()!;
  const ns = await json<NodeView[]>(await api.req('GET', '/nodes'));
  t.is(ns[0]!.source, 'local');
  const lab = ns.filter((n) => n.source === 'lab');
  t.deepEqual(lab.map((n) => n.name), ['n1', 'n2', 'n3']);
  for (const [i, n] of lab.entries()) {
    t.true(n.healthy, JSON.stringify(n));
    t.true(n.sshd);
    // the answer names the node's address and the daemon the lab started there
    t.is(n.dicomd?.node, state.nodes[i]!.addr);
    t.is(n.dicomd?.pid ?? null, state.nodes[i]!.dicomdPid);
    // and the cluster's gossip view has an entry for it: its load vector, with its age
    const g = n.gossip as { node?: string; cpus?: number } | null;
    t.is(g?.node, state.nodes[i]!.addr, `gossip entry of ${n.name}: ${JSON.stringify(n.gossip)}`);
    t.true((g?.cpus ?? 0) > 0);
  }
  t.true(lab.find((n) => n.name === 'n2')!.registered, 'detected over ssh earlier');
  t.false(ns.some((n) => n.source === 'registered' && n.name === 'n2'), 'a registered lab node is listed once');
  t.is((await fetch(api.url + '/nodes')).status, 401);

  const { dicomctl } = await import('./helpers/cli.js');
  const c = await dicomctl(['nodes', 'list'], { env: { DICOM_URL: api.url, DICOM_TOKEN: api.token } });
  t.is(c.exitCode, 0, c.all);
  for (const n of state.nodes) t.regex(c.stdout, new RegExp(`${n.name}\\s+lab\\s+${n.addr.replace(/\./g, '\\.')}\\s+yes\\s+pid ${n.dicomdPid}`));
});

lab('a lab node that cannot be reached fails on its own; the lab node next to it succeeds', async (t) => {
  const state = readState()!;
  const n3 = state.nodes[2]!;
  // A lab node whose sshd is gone: the API refuses it up front (409), and a
  // deployment queued before it went away records it as failed.
  const dest = path.join(tmp, 'partial-site');
  const r = await api.req('POST', '/deployments', { buildId: good.id, dest, nodes: ['n2', 'n3'] });
  t.is(r.status, 202);
  const id = (await json<Deployment>(r)).id;
  await stopPids([n3.sshdPid], 2000);
  const d = await waitDeployment(id);
  const after = await api.req('POST', '/deployments', { buildId: good.id, dest: path.join(tmp, 'other'), nodes: ['n3'] });
  t.is(after.status, 409);
  t.regex(await message(after), /lab node n3 is not healthy/);
  const [n2, n3d] = d.nodes;
  t.is(d.status, 'failed');
  t.is(n2!.status, 'succeeded', n2!.log);
  t.is(n3d!.status, 'failed', n3d!.log);
  t.regex(n3d!.error ?? '', /n3/);
  const nodes = await json<NodeView[]>(await api.req('GET', '/nodes'));
  const n3v = nodes.find((n) => n.name === 'n3')!;
  t.false(n3v.sshd);
  t.false(n3v.healthy);
  t.truthy(n3v.dicomd, 'its dicomd still answers');
});

lab('with the lab down, lab nodes are 409 on every route that takes them; GET /nodes still answers', async (t) => {
  await labDown();
  const cases: [string, unknown][] = [
    ['/deployments', { buildId: good.id, dest: path.join(tmp, 'gone'), nodes: ['n1'] }],
    ['/jobs', { nodes: ['n1', 'n2'], np: 2, program: 'collectives' }],
    ['/targets', { detect: 'ssh', node: 'n1' }],
  ];
  for (const [route, body] of cases) {
    const r = await api.req('POST', route, body);
    t.is(r.status, 409, route);
    t.regex(await message(r), /no lab is up/, route);
  }
  const r = await api.req('POST', '/deployments', { buildId: good.id, dest: path.join(tmp, 'gone'), nodes: ['nodeX'] });
  t.is(r.status, 400, 'a name that is never a lab node stays 400');
  const ns = await json<NodeView[]>(await api.req('GET', '/nodes'));
  t.deepEqual(ns.filter((n) => n.source === 'lab'), []);
  t.deepEqual(ns.filter((n) => n.source === 'registered').map((n) => n.name).sort(), ['n2', 'n3'], 'nodes detected over ssh stay registered');
});
