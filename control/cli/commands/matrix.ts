// dicomctl matrix run|list|show|log: the CI matrix (ci/matrix.json), through
// the control plane (cells as jobs, results and logs in the database) or,
// with --local, right here without a server (logs under build/matrix/).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Command, type ParsedArgs, str } from '../command.js';
import { CliError, note, printJson, step } from '../output.js';
import { runCell } from '../../matrix/cell.js';
import { expandCells, loadMatrix, MatrixError, NOT_VARIED, type Selection } from '../../matrix/definition.js';
import { type CellRow, type Grid, type RunRow, toGrid } from '../../matrix/grid.js';
import { buildDir } from '../../paths.js';
import { call, client, clientOptions, positiveId } from './api-common.js';

const list = { type: 'string', multiple: true } as const;
const selectOptions = { set: list, kernel: list, ompi: list, name: { type: 'string' } } as const;

/** --ompi 4.1 --ompi 5.0, or --ompi 4.1,5.0 */
function values(args: ParsedArgs, key: string): string[] | undefined {
  const raw = args.values[key] as unknown;
  const all = (Array.isArray(raw) ? (raw as string[]) : typeof raw === 'string' ? [raw] : []).flatMap((v) => v.split(',')).map((v) => v.trim());
  if (all.some((v) => v === '')) throw new CliError(`--${key} needs a value`, 2);
  return all.length ? all : undefined;
}

function selection(args: ParsedArgs): Selection {
  const sel: Selection = {};
  const sets = values(args, 'set');
  const kernel = values(args, 'kernel');
  const ompi = values(args, 'ompi');
  if (sets) sel.sets = sets;
  if (kernel) sel.kernel = kernel;
  if (ompi) sel.ompi = ompi;
  return sel;
}

/** "btl on Open MPI 4.1", "kernel on Linux 6.1" */
const cellName = (c: { testSet: string; kernelVersion: string; ompiVersion: string }) =>
  `${c.testSet} on ${[c.kernelVersion !== NOT_VARIED ? `Linux ${c.kernelVersion}` : '', c.ompiVersion !== NOT_VARIED ? `Open MPI ${c.ompiVersion}` : ''].filter(Boolean).join(', ')}`;

const secs = (ms: number | null) => (ms === null ? '' : `${(ms / 1000).toFixed(1)} s`);

/** Which lines of a running cell are worth showing as progress. */
const progressLine = (l: string, verbose: boolean) => verbose || /^(not )?ok\b|^Bail out!|^\s*» /.test(l);

/** "PASS 7/7 21.3 s", or with a name "PASS btl ompi 4.1 7/7 21.3 s" */
function cellResult(c: Pick<CellRow, 'status' | 'passed' | 'failed' | 'durationMs' | 'error'>, name?: string): string {
  const word = { succeeded: 'PASS', failed: 'FAIL', running: 'RUNNING', queued: 'queued' }[c.status];
  const counts = c.passed !== null ? ` ${c.passed}/${(c.passed ?? 0) + (c.failed ?? 0)}` : '';
  return `${word}${name ? ` ${name}` : ''}${counts}${c.durationMs !== null ? ` ${secs(c.durationMs)}` : ''}`;
}

/** The grid as a terminal table: one row per test set and kernel, one column per Open MPI. */
export function gridText(g: Grid): string {
  const cols = g.columns.length ? g.columns : [{ value: NOT_VARIED, label: 'result' }];
  const header = ['test set', 'kernel', ...cols.map((c) => c.label)];
  const rows = g.rows.map((r) => [
    r.testSet,
    r.kernelLabel,
    ...cols.map((col, i) => {
      const c = r.cells.find((x) => x.ompiVersion === col.value) ?? (r.cells.length === 1 && r.cells[0]!.ompiVersion === NOT_VARIED ? r.cells[0] : undefined);
      if (!c) return '—';
      if (c.ompiVersion === NOT_VARIED && i > 0) return '〃';
      return cellResult(c);
    }),
  ]);
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((x, i) => x.padEnd(width[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

function summaryLine(g: Grid): string {
  return `matrix run ${g.id} ${g.status}: ${g.counts.succeeded} passed, ${g.counts.failed} failed of ${g.counts.total} cells`;
}

async function runLocal(args: ParsedArgs, sel: Selection): Promise<void> {
  const def = await loadMatrix();
  const specs = expandCells(def, sel);
  const verbose = Boolean(args.values.verbose);
  const dir = path.join(buildDir, 'matrix', `local-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await mkdir(dir, { recursive: true });
  step(`matrix (local): ${specs.length} cell(s), one at a time; logs in ${dir}`);
  const now = new Date();
  const cells: CellRow[] = specs.map((s, i) => ({
    id: i + 1,
    runId: 0,
    ...s,
    status: 'queued',
    exitCode: null,
    passed: null,
    failed: null,
    skipped: null,
    error: null,
    durationMs: null,
    startedAt: null,
    finishedAt: null,
  }));
  for (const [i, c] of cells.entries()) {
    step(`[${i + 1}/${cells.length}] ${cellName(c)}: ${c.command.join(' ')}`);
    const lines: string[] = [`# ${c.command.join(' ')}`];
    c.startedAt = new Date();
    const o = await runCell(
      { command: c.command, timeoutMs: specs[i]!.timeoutMs },
      {
        onLine: (l) => {
          lines.push(l);
          if (progressLine(l, verbose)) note(l.trimStart());
        },
      },
    );
    Object.assign(c, { status: o.ok ? 'succeeded' : 'failed', exitCode: o.exitCode, passed: o.tap.passed, failed: o.tap.failed, skipped: o.tap.skipped, error: o.error ?? null, durationMs: o.durationMs, finishedAt: new Date() });
    const file = path.join(dir, `${c.testSet}_${c.kernelVersion}_${c.ompiVersion}.log`.replaceAll(NOT_VARIED, 'any'));
    await writeFile(file, lines.join('\n') + '\n');
    note(`${o.ok ? 'PASS' : 'FAIL'} ${cellName(c)} in ${secs(o.durationMs)}${o.error ? `: ${o.error}` : ''} (log ${file})`);
  }
  const failed = cells.filter((c) => c.status === 'failed').length;
  const run: RunRow = { id: 0, name: 'local', status: failed ? 'failed' : 'succeeded', selection: sel, createdAt: now, startedAt: now, finishedAt: new Date(), cells };
  const g = toGrid(run, def);
  if (args.values.json) printJson({ ...g, logs: dir });
  else process.stdout.write(gridText(g) + summaryLine(g).replace('matrix run 0', 'matrix (local)') + '\n');
  if (failed) throw new CliError(`${failed} of ${cells.length} matrix cell(s) failed`);
}

async function followRun(args: ParsedArgs, first: Grid): Promise<Grid> {
  const api = client(args);
  const verbose = Boolean(args.values.verbose);
  const seen = new Map<number, string>();
  const logOffset = new Map<number, number>();
  let lastNote = Date.now();
  let g = first;
  const total = g.counts.total;
  for (;;) {
    const cells = g.rows.flatMap((r) => r.cells);
    for (const c of cells) {
      if (seen.get(c.id) === c.status) continue;
      const done = cells.filter((x) => x.status === 'succeeded' || x.status === 'failed').length;
      if (c.status === 'running') step(`[${done + 1}/${total}] ${cellName(c)}: running ${c.command.join(' ')}`);
      if (c.status === 'succeeded' || c.status === 'failed') {
        if (c.status === 'failed' || verbose || seen.has(c.id)) note(`${cellResult(c, cellName(c))}${c.error ? `: ${c.error}` : ''}  (log: ${api.baseUrl.replace(/\/$/, '')}${c.logUrl})`);
      }
      seen.set(c.id, c.status);
    }
    // Progress of the running cell: its TAP points and steps as they arrive, and a heartbeat when it is quiet.
    for (const c of cells.filter((x) => x.status === 'running')) {
      const text = await call(async () => (await api.raw('GET', c.logUrl)).text());
      const from = logOffset.get(c.id) ?? 0;
      const fresh = text.slice(from).split('\n').slice(0, -1).filter((l) => progressLine(l, verbose));
      for (const l of fresh) note(l.trimStart());
      logOffset.set(c.id, text.lastIndexOf('\n') + 1);
      const running = c.startedAt ? (Date.now() - Date.parse(c.startedAt)) / 1000 : 0;
      if (fresh.length) lastNote = Date.now();
      else if (Date.now() - lastNote > 30_000) {
        note(`${cellName(c)}: still running (${running.toFixed(0)} s)`);
        lastNote = Date.now();
      }
    }
    if (g.status === 'succeeded' || g.status === 'failed') return g;
    await new Promise((r) => setTimeout(r, 2000));
    g = await call(() => api.json<Grid>('GET', `/matrix-runs/${g.id}`));
  }
}

const runCmd: Command = {
  name: 'matrix run',
  summary: 'run the CI matrix (ci/matrix.json) as jobs of the control plane, or --local without one',
  usage: 'matrix run [--set S] [--kernel 6.1|6.12] [--ompi 4.1|5.0] [--name N] [--local] [--detach] [--verbose] [--json]',
  options: { ...clientOptions, ...selectOptions, local: { type: 'boolean' }, detach: { type: 'boolean' }, verbose: { type: 'boolean' } },
  async run(args) {
    if (args.positionals.length) throw new CliError(`matrix run takes no positional arguments (got ${args.positionals.join(' ')})`, 2);
    const sel = selection(args);
    try {
      if (args.values.local) {
        if (args.values.detach) throw new CliError('--local runs here and now; --detach needs the control plane', 2);
        return await runLocal(args, sel);
      }
      // Fail fast on a bad selection, before talking to the server.
      expandCells(await loadMatrix(), sel);
    } catch (e) {
      if (e instanceof MatrixError) throw new CliError(e.message, 2);
      throw e;
    }
    const api = client(args);
    const name = str(args, 'name');
    let g = await call(() => api.json<Grid>('POST', '/matrix-runs', { ...sel, ...(name ? { name } : {}) }));
    const page = `${api.baseUrl.replace(/\/$/, '')}/matrix-runs/${g.id}/page`;
    step(`matrix run ${g.id} queued: ${g.counts.total} cell(s); grid at ${page}`);
    if (args.values.detach) return args.values.json ? printJson(g) : void process.stdout.write(`${g.id}\n`);
    g = await followRun(args, g);
    if (args.values.json) printJson(g);
    else process.stdout.write(gridText(g) + summaryLine(g) + `\n${page}\n`);
    if (g.status !== 'succeeded') throw new CliError(`matrix run ${g.id}: ${g.counts.failed} of ${g.counts.total} cell(s) failed`);
  },
};

interface RunSummary {
  id: number;
  name: string;
  status: string;
  createdAt: string;
  finishedAt: string | null;
  counts: Grid['counts'];
}

const listCmd: Command = {
  name: 'matrix list',
  summary: 'matrix runs, newest first',
  usage: 'matrix list [--json]',
  options: { ...clientOptions },
  async run(args) {
    const runs = await call(() => client(args).json<RunSummary[]>('GET', '/matrix-runs?limit=100'));
    if (args.values.json) return printJson(runs);
    if (runs.length === 0) return void process.stdout.write('no matrix runs\n');
    for (const r of runs) {
      process.stdout.write(`${String(r.id).padStart(4)}  ${r.status.padEnd(9)}  ${r.counts.succeeded}/${r.counts.total} passed  ${r.createdAt.slice(0, 19)}  ${r.name}\n`);
    }
  },
};

const showCmd: Command = {
  name: 'matrix show',
  summary: 'one matrix run as a grid',
  usage: 'matrix show RUN [--json]',
  options: { ...clientOptions },
  async run(args) {
    const id = positiveId(args, 'matrix run');
    const g = await call(() => client(args).json<Grid>('GET', `/matrix-runs/${id}`));
    if (args.values.json) return printJson(g);
    process.stdout.write(gridText(g) + summaryLine(g) + '\n');
  },
};

const logCmd: Command = {
  name: 'matrix log',
  summary: "a matrix cell's log",
  usage: 'matrix log RUN CELL',
  options: { ...clientOptions },
  async run(args) {
    const run = positiveId(args, 'matrix run');
    const cell = Number(args.positionals[1]);
    if (!Number.isInteger(cell) || cell < 1) throw new CliError(`expected a cell id (a positive integer) after the run id, got "${args.positionals[1] ?? ''}"`, 2);
    const text = await call(async () => (await client(args).raw('GET', `/matrix-runs/${run}/cells/${cell}/log`)).text());
    process.stdout.write(text);
  },
};

export const commands: Command[] = [runCmd, listCmd, showCmd, logCmd];
