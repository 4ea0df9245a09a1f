// The CI matrix: ci/matrix.json and its cells, the TAP verdicts, the runner's
// process-group handling, and a tiny grid run as jobs through the API against
// the real Postgres: one real cell that passes (`dicomctl btl check --ompi
// 4.1 --tap`) and one real command that fails, the page in headless Chromium,
// dicomctl matrix, and restart recovery. The full grid runs behind
// `dicomctl matrix run`.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import puppeteer from 'puppeteer-core';
import { runCell } from '../control/matrix/cell.js';
import { expandCells, loadMatrix, MatrixError, parseDefinition } from '../control/matrix/definition.js';
import type { Grid } from '../control/matrix/grid.js';
import { renderPage, statusColours } from '../control/matrix/page.js';
import { createRun } from '../control/matrix/store.js';
import { parseTap, tapVerdict } from '../control/matrix/tap.js';
import { buildDir, root } from '../control/paths.js';
import { freshDatabase, json, startApi, type TestApi } from './helpers/api.js';
import { dicomctl } from './helpers/cli.js';

const real = JSON.parse(await readFile(new URL('../ci/matrix.json', import.meta.url), 'utf8')) as Record<string, unknown>;

// ---- the definition -------------------------------------------------------

test('ci/matrix.json: kernels 6.1 and 6.12, Open MPI 4.1 and 5.0, the btl set per Open MPI and the kernel set per kernel', async (t) => {
  const def = await loadMatrix(path.join(root, 'ci/matrix.json'));
  t.deepEqual(def.axes, { kernel: ['6.1', '6.12'], ompi: ['4.1', '5.0'] });
  const cells = expandCells(def);
  t.deepEqual(
    cells.map((c) => `${c.testSet} ${c.kernelVersion} ${c.ompiVersion}: ${c.command.slice(1).join(' ')}`),
    [
      'btl - 4.1: btl check --ompi 4.1 --tap',
      'btl - 5.0: btl check --ompi 5.0 --tap',
      'kernel 6.1 -: kernel test --kernel 6.1 --mpi --relay',
      'kernel 6.12 -: kernel test --kernel 6.12 --mpi --relay',
    ],
  );
  t.true(cells.every((c) => c.command[0]!.endsWith('/bin/dicomctl')));
  t.deepEqual(expandCells(def, { ompi: ['5.0'] }).map((c) => c.ompiVersion), ['5.0'], 'an Open MPI column leaves out the kernel-only cells');
  t.deepEqual(expandCells(def, { kernel: ['6.12'] }).map((c) => `${c.testSet} ${c.kernelVersion}`), ['kernel 6.12']);
  t.is(expandCells(def, { sets: ['btl'] }).length, 2);
  t.throws(() => expandCells(def, { ompi: ['9.9'] }), { instanceOf: MatrixError, message: /unknown Open MPI version "9\.9": the matrix has 4\.1, 5\.0/ });
  t.throws(() => expandCells(def, { sets: ['nope'] }), { message: /unknown test set "nope"/ });
  t.throws(() => expandCells(def, { sets: ['btl'], kernel: ['6.1'] }), { message: /matches no cell/ });
});

test('a broken matrix definition is refused with where the defect is', (t) => {
  const withSet = (patch: Record<string, unknown>) => ({ ...real, sets: [{ ...(real.sets as Record<string, unknown>[])[0], ...patch }] });
  const cases: [unknown, RegExp][] = [
    [[], /expected a JSON object/],
    [{ ...real, axes: { kernel: ['6.1'], ompi: ['4.1'], cuda: ['12'] } }, /unknown axis "cuda"/],
    [{ ...real, axes: { kernel: ['6.1'], ompi: ['4.2'] } }, /axes\.ompi: "4\.2" is not an Open MPI the tooling can select/],
    [{ ...real, axes: { kernel: ['six'], ompi: ['4.1'] } }, /axes\.kernel: "six" is not a version/],
    [{ ...real, axes: { kernel: ['5.10'], ompi: ['4.1'] } }, /axes\.kernel: "5\.10" is not a kernel series the tooling supports \(6\.1, 6\.12\)/],
    [withSet({ axes: ['kernel'] }), /the command does not use \{kernel\} but axes list it/],
    [withSet({ axes: [] }), /the command uses \{ompi\} but axes do not list it/],
    [withSet({ command: [] }), /command must be a non-empty argv list/],
    [withSet({ timeoutMinutes: 0 }), /timeoutMinutes must be an integer/],
    [{ ...real, sets: [(real.sets as unknown[])[0], (real.sets as unknown[])[0]] }, /declared twice/],
  ];
  for (const [json, re] of cases) t.throws(() => parseDefinition(json, 'm.json'), { instanceOf: MatrixError, message: re }, JSON.stringify(json).slice(0, 80));
});

// ---- TAP and the cell runner ------------------------------------------------

test('TAP: counts, directives, plans, bail-outs and the verdict', (t) => {
  const good = parseTap('TAP version 13\n1..3\nok 1 - a # time=3ms\nok 2 - b # SKIP no qemu\nnot ok 3 - c # TODO later\n    not ok 1 - nested, not counted\n');
  t.like(good, { planned: 3, passed: 1, skipped: 1, todo: 1, failed: 0 });
  t.is(tapVerdict(good), undefined);
  t.regex(tapVerdict(parseTap('1..2\nok 1 - a\nnot ok 2 - pingpong: sizes # time=5ms\n'))!, /1 failed: pingpong: sizes$/);
  t.regex(tapVerdict(parseTap('1..3\nok 1\nok 2\n'))!, /planned 3 tests but 2 ran/);
  t.regex(tapVerdict(parseTap('TAP version 13\nBail out! no dicomd\n'))!, /bailed out: no dicomd/);
  t.is(tapVerdict(parseTap('hello\n')), 'no TAP test point in the output');
  t.is(tapVerdict(parseTap('1..1\nok 1 # skip\n')), 'every test was skipped');
});

test('a cell passes only with exit 0 and passing TAP; a timeout stops its whole process group', async (t) => {
  const sh = (script: string, timeoutMs = 20_000) => runCell({ command: ['sh', '-c', script], timeoutMs });
  t.like(await sh('echo 1..1; echo ok 1 - fine'), { ok: true, exitCode: 0, error: undefined });
  t.like(await sh('echo 1..1; echo ok 1 - fine; exit 3'), { ok: false, exitCode: 3, error: 'exit 3' });
  t.like(await sh('echo 1..2; echo ok 1; echo not ok 2 - broken'), { ok: false, error: '1 failed: broken' });
  t.like(await sh('echo nothing'), { ok: false, error: 'no TAP test point in the output' });
  t.like(await runCell({ command: ['/nonexistent/cell'], timeoutMs: 5000 }), { ok: false });

  const pidFile = path.join(os.tmpdir(), `matrix-cell-${process.pid}.pid`);
  const lines: string[] = [];
  const r = await runCell({ command: ['sh', '-c', `sleep 300 & echo $! > ${pidFile}; echo started; wait`], timeoutMs: 1500 }, { onLine: (l) => lines.push(l), killAfterMs: 500 });
  t.false(r.ok);
  t.regex(r.error ?? '', /timed out after 2 s/);
  t.deepEqual(lines, ['started']);
  const child = Number(await readFile(pidFile, 'utf8'));
  await rm(pidFile, { force: true });
  // Gone, or a zombie waiting for init to reap it.
  const alive = async () => !/^\d+ \(.*\) Z/.test(await readFile(`/proc/${child}/stat`, 'utf8').catch(() => '0 (x) Z'));
  for (let i = 0; i < 30 && (await alive()); i++) await new Promise((res) => setTimeout(res, 100));
  t.false(await alive(), `the cell's background child ${child} must be gone`);
});

test('the page: one row per test set and kernel, a cell spanning the Open MPI columns when the set does not vary over them, text escaped', (t) => {
  const cell = (id: number, testSet: string, kernelVersion: string, ompiVersion: string, status: Grid['status'], error: string | null = null) => ({
    id, runId: 7, testSet, kernelVersion, ompiVersion, command: ['x'], status, exitCode: null, passed: 1, failed: 0, skipped: 0, error, durationMs: 1000,
    startedAt: null, finishedAt: null, logUrl: `/matrix-runs/7/cells/${id}/log`,
  });
  const g: Grid = {
    id: 7, name: 'n <b>', status: 'running', selection: {}, createdAt: '', startedAt: null, finishedAt: null,
    counts: { queued: 0, running: 1, succeeded: 1, failed: 1, total: 3 },
    columns: [{ value: '4.1', label: 'Open MPI 4.1.4 (host)' }, { value: '5.0', label: 'Open MPI 5.0.7 (trixie root)' }],
    rows: [
      { testSet: 'btl', title: 't', kernelVersion: '-', kernelLabel: 'host kernel', cells: [cell(1, 'btl', '-', '4.1', 'succeeded'), cell(2, 'btl', '-', '5.0', 'failed', 'exit 1; <script>')] },
      { testSet: 'kernel', title: 't', kernelVersion: '6.1', kernelLabel: 'Linux 6.1', cells: [cell(3, 'kernel', '6.1', '-', 'running')] },
    ],
  };
  const html = renderPage(g);
  t.regex(html, /<td class="cell running" data-status="running" data-cell="3" colspan="2">/);
  t.regex(html, /<a href="\/matrix-runs\/7\/cells\/2\/log">FAIL<\/a>/);
  t.notRegex(html, /<script>|<b>/);
  t.regex(html, /exit 1; &lt;script&gt;/);
  t.regex(html, /<meta http-equiv="refresh" content="5">/, 'a running grid reloads itself');
  t.notRegex(renderPage({ ...g, status: 'failed' }), /http-equiv="refresh"/);
});

// ---- through the API, as jobs ------------------------------------------------

let api: TestApi | undefined;
let tmp: string;

/** The real grid's axes, with a tiny cell set: the btl check, and a real command that must fail (a refused --np). */
async function tinyMatrix(): Promise<string> {
  const file = path.join(tmp, 'matrix.json');
  const btl = (real.sets as { id: string }[]).find((s) => s.id === 'btl')!;
  await writeFile(
    file,
    JSON.stringify({
      axes: real.axes,
      sets: [
        btl,
        { id: 'refused', title: 'btl check refuses --np 99', axes: ['ompi'], command: ['dicomctl', 'btl', 'check', '--ompi', '{ompi}', '--np', '99', '--tap'], timeoutMinutes: 2 },
      ],
    }),
  );
  return file;
}

async function waitRun(id: number, done = (g: Grid) => g.status === 'succeeded' || g.status === 'failed', seconds = 900): Promise<Grid> {
  for (let i = 0; i < seconds * 4; i++) {
    const g = await json<Grid>(await api!.req('GET', `/matrix-runs/${id}`));
    if (done(g)) return g;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`matrix run ${id} did not get there`);
}

const cellsOf = (g: Grid) => g.rows.flatMap((r) => r.cells);

test.before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-matrix-'));
  process.env.DICOM_MATRIX_FILE = await tinyMatrix();
});
test.after.always(async () => {
  delete process.env.DICOM_MATRIX_FILE;
  await api?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test.serial('POST /matrix-runs runs the cells as jobs; the grid, the logs and the page in headless Chromium show them', async (t) => {
  api = await startApi(await freshDatabase('matrix'), { queue: true });
  const r = await api.req('POST', '/matrix-runs', { name: 'tiny', ompi: ['4.1'] });
  t.is(r.status, 202);
  const queued = await json<Grid>(r);
  t.is(queued.counts.total, 2);
  t.deepEqual(queued.columns.map((c) => c.label), ['Open MPI 4.1.4 (host)']);
  const g = await waitRun(queued.id);
  t.is(g.status, 'failed', 'one cell fails, so the run fails');
  const [btl, refused] = [cellsOf(g).find((c) => c.testSet === 'btl')!, cellsOf(g).find((c) => c.testSet === 'refused')!];
  const btlLog = await (await api.req('GET', btl.logUrl)).text();
  t.is(btl.status, 'succeeded', `${btl.error}\n${btlLog.slice(-3000)}`);
  t.is(btl.exitCode, 0);
  t.is(btl.passed, 7);
  t.is(btl.failed, 0);
  t.true((btl.durationMs ?? 0) > 0);
  t.regex(btlLog, /^# \S+\/bin\/dicomctl btl check --ompi 4\.1 --tap$/m);
  t.regex(btlLog, /^ok 1 - pingpong: /m);
  t.regex(btlLog, /^ok 7 - rma: /m);
  t.is(refused.status, 'failed');
  t.is(refused.exitCode, 2);
  t.regex(refused.error ?? '', /^exit 2; no TAP test point/);
  t.regex(await (await api.req('GET', refused.logUrl)).text(), /--np must be an integer between 2 and 8/);

  const list = await json<{ id: number; counts: { failed: number } }[]>(await api.req('GET', '/matrix-runs'));
  t.is(list[0]!.id, g.id);
  t.is(list[0]!.counts.failed, 1);

  // The page in headless Chromium: colours by status, each cell linked to its log.
  const chromium = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));
  if (!chromium) return t.fail('chromium is not installed (ci/provision.sh installs it)');
  const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage();
    await page.setExtraHTTPHeaders({ authorization: `Bearer ${api.token}` });
    const res = await page.goto(`${api.url}/matrix-runs/${g.id}/page`, { waitUntil: 'load' });
    t.is(res?.status(), 200);
    t.regex(res?.headers()['content-type'] ?? '', /^text\/html/);
    const seen = await page.$$eval('#grid td.cell', (tds) =>
      tds.map((td) => ({ status: td.getAttribute('data-status'), bg: getComputedStyle(td).backgroundColor, href: td.querySelector('a')?.getAttribute('href'), text: td.textContent })),
    );
    const rgb = (hex: string) => `rgb(${[1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(', ')})`;
    t.deepEqual(
      seen.map((s) => [s.status, s.bg, s.href]),
      [
        ['succeeded', rgb(statusColours.succeeded), btl.logUrl],
        ['failed', rgb(statusColours.failed), refused.logUrl],
      ],
    );
    t.regex(seen[0]!.text ?? '', /^PASS 7 ok, 0 failed/);
    t.is(await page.$eval('#run-status', (e) => e.textContent), 'failed');
    await Promise.all([page.waitForNavigation(), page.click(`td[data-cell="${btl.id}"] a`)]);
    t.regex(await page.evaluate(() => document.body.innerText), /ok 1 - pingpong/);
    await page.goBack();
    await Promise.all([page.waitForNavigation(), page.click(`td[data-cell="${refused.id}"] a`)]);
    t.regex(await page.evaluate(() => document.body.innerText), /--np must be an integer between 2 and 8/);
  } finally {
    await browser.close();
  }
});

test.serial('matrix routes: bad inputs are 400, unknown ids 404, no token 401', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ ompi: ['9.9'] }, /unknown Open MPI version "9\.9"/],
    [{ sets: ['nope'] }, /unknown test set "nope"/],
    [{ kernel: '6.1' }, /kernel/],
    [{ ompi: ['4.1', '4.1'] }, /duplicate|unique/i],
    [{ colour: 'red' }, /additional/i],
    [{ sets: ['btl'], kernel: ['6.1'] }, /matches no cell/],
  ];
  for (const [body, re] of cases) {
    const r = await api!.req('POST', '/matrix-runs', body);
    t.is(r.status, 400, JSON.stringify(body));
    t.regex((await json<{ message: string }>(r)).message, re, JSON.stringify(body));
  }
  t.is((await api!.req('GET', '/matrix-runs/999999')).status, 404);
  t.is((await api!.req('GET', '/matrix-runs/999999/page')).status, 404);
  t.is((await api!.req('GET', '/matrix-runs/1/cells/999999/log')).status, 404);
  t.is((await api!.req('GET', '/matrix-runs/abc')).status, 400);
  t.is((await fetch(`${api!.url}/matrix-runs/1/page`)).status, 401);
});

test.serial('dicomctl matrix run|show|list|log through the API, and --local without it', async (t) => {
  const env = { DICOM_URL: api!.url, DICOM_TOKEN: api!.token, DICOM_MATRIX_FILE: process.env.DICOM_MATRIX_FILE! };
  const run = await dicomctl(['matrix', 'run', '--set', 'refused', '--ompi', '4.1'], { env });
  t.is(run.exitCode, 1, run.all);
  t.regex(run.stderr, /matrix run \d+ queued: 1 cell\(s\); grid at http:\/\/127\.0\.0\.1:\d+\/matrix-runs\/\d+\/page/);
  t.regex(run.stderr, /FAIL refused on Open MPI 4\.1 0\/0 \d+\.\d s: exit 2; no TAP test point/);
  t.regex(run.stdout, /^test set\s+kernel\s+Open MPI 4\.1\.4 \(host\)$/m);
  t.regex(run.stdout, /^refused\s+host kernel\s+FAIL 0\/0/m);
  const id = Number(/matrix run (\d+) failed/.exec(run.stdout)?.[1]);
  t.true(id > 0, run.stdout);

  const show = await dicomctl(['matrix', 'show', String(id), '--json'], { env });
  t.is(show.exitCode, 0, show.all);
  const g = JSON.parse(show.stdout) as Grid;
  const cell = cellsOf(g)[0]!;
  const log = await dicomctl(['matrix', 'log', String(id), String(cell.id)], { env });
  t.regex(log.stdout, /--np must be an integer/);
  const list = await dicomctl(['matrix', 'list'], { env });
  t.regex(list.stdout, new RegExp(`^\\s*${id}\\s+failed\\s+0/1 passed`, 'm'));

  const bad = await dicomctl(['matrix', 'run', '--ompi', '9.9'], { env });
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /unknown Open MPI version "9\.9"/);
  t.is((await dicomctl(['matrix', 'show', '999999'], { env })).exitCode, 3);
  t.is((await dicomctl(['matrix', 'list'], { env: { ...env, DICOM_URL: 'http://127.0.0.1:9' } })).exitCode, 6);

  const local = await dicomctl(['matrix', 'run', '--local', '--set', 'refused', '--ompi', '4.1'], { env });
  t.is(local.exitCode, 1, local.all);
  t.regex(local.stdout, /^refused\s+host kernel\s+FAIL/m);
  const logDir = /logs in (\S+)/.exec(local.stderr)?.[1];
  t.truthy(logDir, local.stderr);
  t.true(logDir!.startsWith(path.join(buildDir, 'matrix')));
  const files = await readdir(logDir!);
  t.deepEqual(files, ['refused_any_4.1.log']);
  t.regex(await readFile(path.join(logDir!, files[0]!), 'utf8'), /--np must be an integer/);
  await rm(logDir!, { recursive: true, force: true });
});

test.serial('a cell running when the server stops is failed as interrupted; cells queued while no server runs run after a restart', async (t) => {
  const url = api!.db.url;
  const r = await json<Grid>(await api!.req('POST', '/matrix-runs', { sets: ['btl'], ompi: ['4.1'] }));
  await waitRun(r.id, (g) => g.status === 'running', 120);
  await new Promise((res) => setTimeout(res, 1000));
  await api!.close();
  api = await startApi(url, { queue: true });
  const stopped = await json<Grid>(await api.req('GET', `/matrix-runs/${r.id}`));
  t.is(stopped.status, 'failed');
  t.like(cellsOf(stopped)[0], { status: 'failed', error: 'interrupted: the server stopped while this cell was running' });
  t.regex(await (await api.req('GET', cellsOf(stopped)[0]!.logUrl)).text(), /interrupted: the server stopped/);
  await api.close();
  // Queued while no server runs: the next server's worker picks them up.
  const { createClients } = await import('../control/db/index.js');
  const { prisma, pool } = createClients(url);
  const queued = await createRun(prisma, await loadMatrix(), { sets: ['refused'], ompi: ['4.1'] }, 'queued while down');
  await prisma.$disconnect();
  await pool.end();
  api = await startApi(url, { queue: true });
  const after = await waitRun(queued.id, undefined, 120);
  t.is(after.status, 'failed');
  t.like(cellsOf(after)[0], { status: 'failed', exitCode: 2 });
});
