// A matrix run as a grid: one row per test set and kernel, one column per
// Open MPI version; a test set that does not vary over Open MPI has one cell
// spanning the row. The same view serves GET /matrix-runs/:id, the HTML page
// and dicomctl.
import { type AxisLabel, axisLabels, type MatrixDefinition, NOT_VARIED } from './definition.js';

export type Status = 'queued' | 'running' | 'succeeded' | 'failed';
export const statuses: readonly Status[] = ['queued', 'running', 'succeeded', 'failed'];

export interface CellRow {
  id: number;
  runId: number;
  testSet: string;
  kernelVersion: string;
  ompiVersion: string;
  command: string[];
  status: Status;
  exitCode: number | null;
  passed: number | null;
  failed: number | null;
  skipped: number | null;
  error: string | null;
  durationMs: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface RunRow {
  id: number;
  name: string;
  status: Status;
  selection: unknown;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  cells: CellRow[];
}

export interface CellView extends Omit<CellRow, 'startedAt' | 'finishedAt'> {
  startedAt: string | null;
  finishedAt: string | null;
  logUrl: string;
}

export interface GridRow {
  testSet: string;
  title: string;
  kernelVersion: string;
  kernelLabel: string;
  /** in column order; a single spanning cell when the set does not vary over Open MPI */
  cells: CellView[];
}

export interface Grid {
  id: number;
  name: string;
  status: Status;
  selection: Record<string, string[]>;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  counts: Record<Status, number> & { total: number };
  columns: AxisLabel[];
  rows: GridRow[];
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export const cellLogUrl = (runId: number, cellId: number) => `/matrix-runs/${runId}/cells/${cellId}/log`;

export function toCellView(c: CellRow): CellView {
  return { ...c, startedAt: iso(c.startedAt), finishedAt: iso(c.finishedAt), logUrl: cellLogUrl(c.runId, c.id) };
}

export function countStatuses(cells: { status: Status }[]): Record<Status, number> & { total: number } {
  const counts = { queued: 0, running: 0, succeeded: 0, failed: 0, total: cells.length };
  for (const c of cells) counts[c.status]++;
  return counts;
}

function order(known: readonly string[], value: string): number {
  const i = known.indexOf(value);
  return i < 0 ? known.length : i;
}

export function toGrid(run: RunRow, def: MatrixDefinition): Grid {
  const labels = axisLabels(def);
  const ompiInRun = [...new Set(run.cells.map((c) => c.ompiVersion).filter((v) => v !== NOT_VARIED))];
  const ompiOrder = labels.ompi.map((l) => l.value);
  const columns = ompiInRun
    .sort((a, b) => order(ompiOrder, a) - order(ompiOrder, b))
    .map((v) => labels.ompi.find((l) => l.value === v) ?? { value: v, label: `Open MPI ${v}` });
  const setOrder = def.sets.map((s) => s.id);
  const rows = new Map<string, GridRow>();
  const kernelLabel = (k: string) => (k === NOT_VARIED ? 'host kernel' : (labels.kernel.find((l) => l.value === k)?.label ?? `Linux ${k}`));
  const sorted = [...run.cells].sort(
    (a, b) =>
      order(setOrder, a.testSet) - order(setOrder, b.testSet) ||
      order(def.axes.kernel, a.kernelVersion) - order(def.axes.kernel, b.kernelVersion) ||
      order(ompiOrder, a.ompiVersion) - order(ompiOrder, b.ompiVersion),
  );
  for (const c of sorted) {
    const key = `${c.testSet}\0${c.kernelVersion}`;
    let row = rows.get(key);
    if (!row) {
      const title = def.sets.find((s) => s.id === c.testSet)?.title ?? c.testSet;
      row = { testSet: c.testSet, title, kernelVersion: c.kernelVersion, kernelLabel: kernelLabel(c.kernelVersion), cells: [] };
      rows.set(key, row);
    }
    row.cells.push(toCellView(c));
  }
  const selection = (typeof run.selection === 'object' && run.selection !== null ? run.selection : {}) as Record<string, string[]>;
  return {
    id: run.id,
    name: run.name,
    status: run.status,
    selection,
    createdAt: run.createdAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    counts: countStatuses(run.cells),
    columns,
    rows: [...rows.values()],
  };
}
