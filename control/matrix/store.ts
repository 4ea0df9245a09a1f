// Matrix runs in the job database: a run and its cells are created together,
// each cell is claimed (queued → running) by whoever runs it, its output
// streams into MatrixCell.log, and the run's status follows its cells.
import type { PrismaClient } from '../db/index.js';
import { type CellOutcome, runCell } from './cell.js';
import { type CellSpec, expandCells, type MatrixDefinition, type Selection } from './definition.js';

/** A cell's log is kept to this size; the rest is counted, not stored. */
export const MAX_CELL_LOG = 4 << 20;

export async function createRun(prisma: PrismaClient, def: MatrixDefinition, sel: Selection, name?: string) {
  const cells: CellSpec[] = expandCells(def, sel);
  const selection = Object.fromEntries(Object.entries(sel).filter(([, v]) => Array.isArray(v) && v.length > 0));
  return prisma.matrixRun.create({
    data: {
      name: name ?? `matrix ${new Date().toISOString().slice(0, 16).replace('T', ' ')}`,
      selection,
      cells: { create: cells.map((c) => ({ testSet: c.testSet, kernelVersion: c.kernelVersion, ompiVersion: c.ompiVersion, command: c.command })) },
    },
    include: { cells: { orderBy: { id: 'asc' }, omit: { log: true } } },
  });
}

/** Appends output to a cell's log in batches (every 250 ms), bounded by MAX_CELL_LOG. */
class CellLog {
  private buf: string[] = [];
  private size = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  constructor(private prisma: PrismaClient, private cellId: number) {}

  line(l: string): void {
    if (this.size + l.length + 1 > MAX_CELL_LOG) {
      this.dropped++;
      return;
    }
    this.size += l.length + 1;
    this.buf.push(l + '\n');
    this.timer ??= setTimeout(() => void this.flush(), 250);
  }

  flush(final = false): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (final && this.dropped > 0) this.buf.push(`[log truncated at ${MAX_CELL_LOG} bytes: ${this.dropped} more lines not stored]\n`);
    if (this.buf.length === 0) return this.chain;
    const text = this.buf.join('');
    this.buf = [];
    this.chain = this.chain
      .then(() => this.prisma.$executeRaw`UPDATE "MatrixCell" SET "log" = "log" || ${text} WHERE "id" = ${this.cellId}`)
      .then(
        () => {},
        () => {},
      );
    return this.chain;
  }
}

/** Ends a run once none of its cells is queued or running: failed if any cell failed. */
export async function settleRun(prisma: PrismaClient, runId: number): Promise<void> {
  const open = await prisma.matrixCell.count({ where: { runId, status: { in: ['queued', 'running'] } } });
  if (open > 0) return;
  const failed = await prisma.matrixCell.count({ where: { runId, status: 'failed' } });
  await prisma.matrixRun.updateMany({
    where: { id: runId, status: { in: ['queued', 'running'] } },
    data: { status: failed > 0 ? 'failed' : 'succeeded', finishedAt: new Date() },
  });
}

export interface RunStoredCellOptions {
  signal?: AbortSignal;
  timeoutMs: (testSet: string) => number;
  /** progress for whoever runs the worker */
  log?: (msg: string) => void;
}

/** Runs cell `id` if it is still queued; a duplicate or stale job is a no-op. */
export async function runStoredCell(prisma: PrismaClient, id: number, o: RunStoredCellOptions): Promise<CellOutcome | undefined> {
  const claimed = await prisma.matrixCell.updateMany({ where: { id, status: 'queued' }, data: { status: 'running', startedAt: new Date() } });
  if (claimed.count === 0) return undefined;
  const cell = await prisma.matrixCell.findUniqueOrThrow({ where: { id } });
  await prisma.matrixRun.updateMany({ where: { id: cell.runId, status: 'queued' }, data: { status: 'running', startedAt: new Date() } });
  const where = `${cell.testSet} kernel=${cell.kernelVersion} ompi=${cell.ompiVersion}`;
  o.log?.(`matrix run ${cell.runId}: cell ${id} (${where}) started`);
  const log = new CellLog(prisma, id);
  log.line(`# ${cell.command.join(' ')}`);
  let outcome: CellOutcome;
  try {
    outcome = await runCell({ command: cell.command, timeoutMs: o.timeoutMs(cell.testSet) }, { onLine: (l) => log.line(l), signal: o.signal });
  } catch (e) {
    outcome = { ok: false, exitCode: null, tap: { planned: undefined, passed: 0, failed: 0, skipped: 0, todo: 0, bailOut: undefined, failures: [] }, error: (e as Error).message, durationMs: 0 };
  }
  log.line(`# ${outcome.ok ? 'passed' : `failed: ${outcome.error}`} in ${(outcome.durationMs / 1000).toFixed(1)} s`);
  await log.flush(true);
  await prisma.matrixCell.update({
    where: { id },
    data: {
      status: outcome.ok ? 'succeeded' : 'failed',
      exitCode: outcome.exitCode,
      passed: outcome.tap.passed,
      failed: outcome.tap.failed,
      skipped: outcome.tap.skipped,
      error: outcome.error ?? null,
      durationMs: outcome.durationMs,
      finishedAt: new Date(),
    },
  });
  o.log?.(`matrix run ${cell.runId}: cell ${id} (${where}) ${outcome.ok ? 'passed' : `failed: ${outcome.error}`}`);
  await settleRun(prisma, cell.runId);
  return outcome;
}

/**
 * After a crash: cells left running by a dead server failed (their process
 * is gone) and their runs are settled; the queued ones are returned to be
 * sent again.
 */
export async function recoverMatrix(prisma: PrismaClient): Promise<{ failed: number; queued: number[] }> {
  const stale = await prisma.matrixCell.findMany({ where: { status: 'running' }, select: { id: true, runId: true } });
  if (stale.length > 0) {
    await prisma.matrixCell.updateMany({
      where: { id: { in: stale.map((c) => c.id) }, status: 'running' },
      data: { status: 'failed', error: 'interrupted: the server stopped while this cell was running', finishedAt: new Date() },
    });
    for (const runId of new Set(stale.map((c) => c.runId))) await settleRun(prisma, runId);
  }
  const queued = await prisma.matrixCell.findMany({ where: { status: 'queued' }, select: { id: true }, orderBy: { id: 'asc' } });
  return { failed: stale.length, queued: queued.map((c) => c.id) };
}
