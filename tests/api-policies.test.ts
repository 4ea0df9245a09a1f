// /policies and /pools against the real Postgres: create, read, update, delete; every bad input a
// 400 that names what is wrong (an unknown field, a negative threshold, an unknown pool, ...); a dry
// run on a view given in the request and on a real dicomd's gossip view (through libdicom), with
// its decisions recorded.
import { spawn } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { dicomdBin } from '../control/paths.js';
import { abstractListening } from '../control/daemon/socket.js';
import { waitFor } from '../control/daemon/proc.js';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';
import { dicomctl } from './helpers/cli.js';

let api: TestApi;
test.before(async () => {
  api = await startApi(await freshDatabase('policies'));
});
test.after.always(async () => {
  await api?.close();
});

interface PolicyOut {
  id: number;
  name: string;
  kind: string;
  enabled: boolean;
  description: string;
  params: Record<string, unknown> & { threshold: number; pools: string[] };
  state: { overloaded: string[] };
}
interface Decision {
  action: string;
  job: string | null;
  rank: number | null;
  fromNode: string;
  toNode: string | null;
  reason: string;
  dryRun: boolean;
}

async function bad(t: import('ava').ExecutionContext, method: string, path: string, body: unknown, message: RegExp, status = 400): Promise<void> {
  const r = await api.req(method, path, body);
  const b = await json<{ message: string }>(r);
  t.is(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${b.message}`);
  t.regex(b.message, message);
}

test.serial('pools: create, list, bad nodes and names, duplicates', async (t) => {
  const r = await api.req('POST', '/pools', { name: 'rack-a', nodes: ['10.77.0.11', '10.77.0.13'] });
  t.is(r.status, 201);
  t.like(await json(r), { name: 'rack-a', nodes: ['10.77.0.11', '10.77.0.13'] });
  t.is((await api.req('POST', '/pools', { name: 'rack-b', nodes: ['10.77.0.12'] })).status, 201);
  t.deepEqual((await json<{ name: string }[]>(await api.req('GET', '/pools'))).map((p) => p.name), ['rack-a', 'rack-b']);
  await bad(t, 'POST', '/pools', { name: 'rack-a', nodes: ['10.77.0.12'] }, /pool "rack-a" exists already/, 409);
  await bad(t, 'POST', '/pools', { name: 'x', nodes: ['10.77.0.300'] }, /body\/nodes\/0 must match pattern/);
  await bad(t, 'POST', '/pools', { name: 'x', nodes: [] }, /body\/nodes must NOT have fewer than 1 items/);
  await bad(t, 'POST', '/pools', { name: '-x', nodes: ['10.0.0.1'] }, /body\/name must match pattern/);
  await bad(t, 'POST', '/pools', { name: 'x', nodes: ['10.0.0.1'], racks: 2 }, /body has an unknown field "racks"/);
  await bad(t, 'GET', '/pools/999', undefined, /pool 999 not found/, 404);
});

test.serial('policies: create with defaults or explicit parameters, read, list', async (t) => {
  const r = await api.req('POST', '/policies', { name: 'balance' });
  t.is(r.status, 201);
  const p = await json<PolicyOut>(r);
  t.like(p, { name: 'balance', kind: 'load-balance', enabled: true, description: '', state: { overloaded: [] } });
  t.deepEqual(p.params, { threshold: 1, hysteresis: 0.25, cooldownSec: 30, maxConcurrent: 1, minGain: 0.1, commCostPerGBps: 1, maxEntryAgeMs: 5000, pinnedJobs: [], pinnedRanks: [], pools: [] });

  const q = await api.req('POST', '/policies', {
    name: 'rack-a-only',
    description: 'keep rack a busy, never touch job 7',
    params: { threshold: 1.5, hysteresis: 0.5, cooldownSec: 60, maxConcurrent: 2, pinnedJobs: ['7'], pinnedRanks: ['8:0'], pools: ['rack-a'] },
  });
  t.is(q.status, 201);
  const qp = await json<PolicyOut>(q);
  t.like(qp.params, { threshold: 1.5, hysteresis: 0.5, cooldownSec: 60, maxConcurrent: 2, minGain: 0.1, pinnedJobs: ['7'], pools: ['rack-a'] });

  t.deepEqual((await json<PolicyOut[]>(await api.req('GET', '/policies'))).map((x) => x.name), ['balance', 'rack-a-only']);
  t.like(await json(await api.req('GET', `/policies/${qp.id}`)), { name: 'rack-a-only', description: 'keep rack a busy, never touch job 7' });
  await bad(t, 'GET', '/policies/4242', undefined, /policy 4242 not found/, 404);
  await bad(t, 'POST', '/policies', { name: 'balance' }, /policy "balance" exists already/, 409);
});

test.serial('policies: bad input is a 400 that says what is wrong', async (t) => {
  await bad(t, 'POST', '/policies', { name: 'x', color: 'red' }, /body has an unknown field "color"/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { thresold: 1 } }, /body\/params has an unknown field "thresold"/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { threshold: -1 } }, /body\/params\/threshold must be >= 0/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { cooldownSec: -5 } }, /body\/params\/cooldownSec must be >= 0/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { maxConcurrent: 0 } }, /body\/params\/maxConcurrent must be >= 1/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { threshold: 'high' } }, /body\/params\/threshold must be number/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { pools: ['gpu'] } }, /params\.pools: unknown pool "gpu"; defined pools: rack-a, rack-b/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { pools: ['rack-a', 'gpu', 'fpga'] } }, /unknown pools "gpu", "fpga"/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { threshold: 0.5, hysteresis: 0.8 } }, /hysteresis \(0\.8\) must not exceed threshold \(0\.5\)/);
  await bad(t, 'POST', '/policies', { name: 'x', params: { pinnedRanks: ['7'] } }, /body\/params\/pinnedRanks\/0 must match pattern/);
  await bad(t, 'POST', '/policies', { name: 'x', kind: 'random' }, /body\/kind must be one of "load-balance"/);
  await bad(t, 'POST', '/policies', { name: '' }, /body\/name must match pattern/);
  await bad(t, 'POST', '/policies', { params: {} }, /body must have required property 'name'/);
  await bad(t, 'PATCH', '/policies/1', { params: { pools: ['nope'] } }, /unknown pool "nope"/);
  await bad(t, 'PATCH', '/policies/1', { name: 'renamed' }, /body has an unknown field "name"/);
  await bad(t, 'PATCH', '/policies/999', { enabled: false }, /policy 999 not found/, 404);
  t.is((await json<PolicyOut[]>(await api.req('GET', '/policies'))).length, 2, 'nothing was created');
});

test.serial('policies: update and delete; a pool in use cannot be deleted', async (t) => {
  const [, rackA] = await json<PolicyOut[]>(await api.req('GET', '/policies'));
  const u = await api.req('PATCH', `/policies/${rackA!.id}`, { enabled: false, params: { threshold: 2, pools: ['rack-b'] } });
  t.is(u.status, 200);
  const up = await json<PolicyOut>(u);
  t.false(up.enabled);
  t.like(up.params, { threshold: 2, hysteresis: 0.25, pools: ['rack-b'], pinnedJobs: [] });
  t.is(up.description, 'keep rack a busy, never touch job 7', 'untouched fields stay');

  const pools = await json<{ id: number; name: string }[]>(await api.req('GET', '/pools'));
  const rackB = pools.find((p) => p.name === 'rack-b')!;
  await bad(t, 'DELETE', `/pools/${rackB.id}`, undefined, /pool "rack-b" is used by policy rack-a-only/, 409);
  t.is((await api.req('DELETE', `/policies/${rackA!.id}`)).status, 204);
  t.is((await api.req('GET', `/policies/${rackA!.id}`)).status, 404);
  t.is((await api.req('DELETE', `/pools/${rackB.id}`)).status, 204);
  await bad(t, 'DELETE', `/policies/${rackA!.id}`, undefined, /not found/, 404);
});

// two CPU-bound ranks of job J on a 1-CPU node, an idle node next to it
const view = [
  {
    node: '10.77.0.11',
    age_ms: 120,
    load: 2,
    cpus: 1,
    procs: [
      { addr: '10.77.0.11:100', pid: 100, rank: 0, job: 'J', cpu: 0.5 },
      { addr: '10.77.0.11:101', pid: 101, rank: 1, job: 'J', cpu: 0.5 },
    ],
    pairs: [{ src: '10.77.0.11:100', dst: '10.77.0.11:101', bytes: 1e9, rate: 1e6 }],
  },
  { node: '10.77.0.12', age_ms: 300, load: 0, cpus: 1, procs: [], pairs: [] },
];

test.serial('dry run on a given view: the decisions, taken and skipped, are returned and recorded', async (t) => {
  const [balance] = await json<PolicyOut[]>(await api.req('GET', '/policies'));
  const r = await api.req('POST', `/policies/${balance!.id}/dry-run`, { entries: view });
  const body = await json<{ evaluation: string; source: string; dryRun: boolean; decisions: Decision[]; nodes: { node: string; overloaded: boolean }[] }>(r);
  t.is(r.status, 200, JSON.stringify(body));
  t.is(body.source, 'the request');
  t.true(body.dryRun);
  t.deepEqual(body.nodes.map((n) => [n.node, n.overloaded]), [['10.77.0.11', true], ['10.77.0.12', false]]);
  const [move, stay] = body.decisions;
  t.like(move, { action: 'migrate', job: 'J', rank: 0, fromNode: '10.77.0.11', toNode: '10.77.0.12', dryRun: true });
  t.regex(move!.reason, /10\.77\.0\.11 is overloaded \(2\.00 load per CPU, threshold 1\.00\)/);
  t.like(stay, { action: 'skip', rank: 1, toNode: null });

  const rec = await json<{ action: string; jobLabel: string; rank: number; reason: string; dryRun: boolean }[]>(
    await api.req('GET', `/policies/${balance!.id}/decisions?evaluation=${body.evaluation}`),
  );
  t.deepEqual(rec.map((d) => [d.action, d.jobLabel, d.rank, d.dryRun]).sort(), [['migrate', 'J', 0, true], ['skip', 'J', 1, true]]);
  t.is(rec.find((d) => d.action === 'migrate')!.reason, move!.reason);

  // with the pair's rank pinned, the policy says so
  const p = await api.req('POST', '/policies', { name: 'pinned', params: { pinnedRanks: ['J:0', 'J:1'] } });
  const pinned = await json<PolicyOut>(p);
  const d = await json<{ decisions: Decision[] }>(await api.req('POST', `/policies/${pinned.id}/dry-run`, { entries: view }));
  t.deepEqual(d.decisions.map((x) => [x.action, x.reason]), [['skip', 'rank J:0 is pinned'], ['skip', 'rank J:1 is pinned']]);

  await bad(t, 'POST', `/policies/${balance!.id}/dry-run`, { entries: view, node: 'n1' }, /give either node or entries, not both/);
  await bad(t, 'POST', `/policies/${balance!.id}/dry-run`, { node: 'gpu7' }, /body\/node must match pattern/);
  await bad(t, 'POST', `/policies/${balance!.id}/dry-run`, { entries: [{ ...view[1], load: -1 }] }, /body\/entries\/0\/load must be >= 0/);
  await bad(t, 'POST', `/policies/${balance!.id}/dry-run`, { entries: [{ ...view[1], color: 1 }] }, /body\/entries\/0 has an unknown field "color"/);
  await bad(t, 'POST', '/policies/777/dry-run', { entries: view }, /policy 777 not found/, 404);
  await bad(t, 'GET', `/policies/${balance!.id}/decisions?evaluation=nope`, undefined, /querystring\/evaluation must match format "uuid"/);
});

test.serial("dry run on this host's dicomd: its gossip view, read through libdicom", async (t) => {
  const name = `dicomd-policy-test-${process.pid}`;
  const d = spawn(dicomdBin, ['--name', name, '--port', String(20000 + (process.pid % 20000)), '--gossip-period-ms', '100'], { stdio: 'ignore' });
  const saved = process.env.DICOM_DAEMON;
  try {
    t.true(await waitFor(() => abstractListening(name, d.pid!), 5000), 'dicomd listens');
    await new Promise((r) => setTimeout(r, 300)); // a few gossip periods: its own entry is sampled
    process.env.DICOM_DAEMON = name;
    const [balance] = await json<PolicyOut[]>(await api.req('GET', '/policies'));
    const r = await api.req('POST', `/policies/${balance!.id}/dry-run`, { node: 'local' });
    const body = await json<{ source: string; nodes: { node: string; loadPerCpu: number }[]; decisions: Decision[] }>(r);
    t.is(r.status, 200, JSON.stringify(body));
    t.is(body.source, "this host's dicomd");
    t.deepEqual(body.nodes.map((n) => n.node), ['127.0.0.1']);
    t.deepEqual(body.decisions, [], 'no DiCOM ranks run here, so there is nothing to decide');

    d.kill('SIGTERM');
    await waitFor(() => d.exitCode !== null, 5000);
    await bad(t, 'POST', `/policies/${balance!.id}/dry-run`, { node: 'local' }, new RegExp(`cannot read the gossip view of this host's dicomd: .*no dicomd on abstract socket @${name}`), 409);
  } finally {
    if (saved === undefined) delete process.env.DICOM_DAEMON;
    else process.env.DICOM_DAEMON = saved;
    if (d.exitCode === null) d.kill('SIGKILL');
  }
});

test.serial('dicomctl policy and pool over the API: create, dry run from a view file, update, bad input, delete', async (t) => {
  const env = { DICOM_URL: api.url, DICOM_TOKEN: api.token };
  const ctl = (args: string[]) => dicomctl(args, { env: { ...process.env, ...env } as Record<string, string>, timeoutMs: 120_000 });
  const pool = await ctl(['pool', 'create', 'cli-pool', '--nodes', '10.77.0.11,10.77.0.12', '--json']);
  t.is(pool.exitCode, 0, pool.all);
  const poolId = (JSON.parse(pool.stdout) as { id: number }).id;
  const c = await ctl(['policy', 'create', 'cli', '--threshold', '1.2', '--hysteresis', '0.3', '--pin-job', 'K', '--pin-rank', 'J:1', '--pool', 'cli-pool', '--description', 'from the CLI', '--json']);
  t.is(c.exitCode, 0, c.all);
  const p = JSON.parse(c.stdout) as PolicyOut;
  t.like(p.params, { threshold: 1.2, hysteresis: 0.3, pinnedJobs: ['K'], pinnedRanks: ['J:1'], pools: ['cli-pool'] });

  const file = path.join(os.tmpdir(), `policy-view-${process.pid}.json`);
  writeFileSync(file, JSON.stringify({ node: '10.77.0.11', entries: view }));
  const dry = await ctl(['policy', 'dry-run', String(p.id), '--view', file]);
  unlinkSync(file);
  t.is(dry.exitCode, 0, dry.all);
  t.regex(dry.stdout, /MIGRATE J:0 10\.77\.0\.11 -> 10\.77\.0\.12: 10\.77\.0\.11 is overloaded \(2\.00 load per CPU, threshold 1\.20\)/);
  t.regex(dry.stdout, /skip {4}J:1 10\.77\.0\.11: rank J:1 is pinned/);
  const dec = await ctl(['policy', 'decisions', String(p.id), '--json']);
  t.is((JSON.parse(dec.stdout) as unknown[]).length, 2);

  const u = await ctl(['policy', 'update', String(p.id), '--threshold', '3', '--disabled']);
  t.is(u.exitCode, 0, u.all);
  t.regex(u.stdout, /policy \d+ "cli" \(load-balance, disabled\): from the CLI\n {2}threshold=3 hysteresis=0\.3 .*pinnedJobs=K pinnedRanks=J:1 pools=cli-pool/);

  const neg = await ctl(['policy', 'create', 'neg', '--threshold=-1']);
  t.is(neg.exitCode, 2);
  t.regex(neg.stderr, /body\/params\/threshold must be >= 0/);
  const unknownPool = await ctl(['policy', 'update', String(p.id), '--pool', 'gpu']);
  t.is(unknownPool.exitCode, 2);
  t.regex(unknownPool.stderr, /unknown pool "gpu"/);
  const field = await ctl(['policy', 'create', 'f', '--params', '{"speed":3}']);
  t.is(field.exitCode, 2);
  t.regex(field.stderr, /body\/params has an unknown field "speed"/);
  const inUse = await ctl(['pool', 'delete', String(poolId)]);
  t.is(inUse.exitCode, 4);
  t.regex(inUse.stderr, /used by policy cli/);
  const missing = await ctl(['policy', 'show', '999']);
  t.is(missing.exitCode, 3);

  t.is((await ctl(['policy', 'delete', String(p.id)])).exitCode, 0);
  t.is((await ctl(['pool', 'delete', String(poolId)])).exitCode, 0);
  const list = await ctl(['pool', 'list', '--json']);
  t.false((JSON.parse(list.stdout) as { name: string }[]).some((x) => x.name === 'cli-pool'));
});
