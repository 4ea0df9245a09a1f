// The CI matrix as ci/matrix.json declares it, and the cells it expands to.
// A cell is one command that prints TAP; a test set lists the axes it varies
// over, and its cells hold NOT_VARIED ("-") for the others. Axis values must
// be what the tooling can select: kernel series of control/kernel/versions.ts,
// Open MPI specs of control/generator/select.ts.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ompiAxis } from '../generator/select.js';
import { SERIES } from '../kernel/versions.js';
import { root } from '../paths.js';

/** ci/matrix.json, or DICOM_MATRIX_FILE (another grid, e.g. a site's own or a test's) */
export const matrixFile = (): string => process.env.DICOM_MATRIX_FILE ?? path.join(root, 'ci/matrix.json');
export const dicomctlBin = path.join(root, 'bin/dicomctl');
export const NOT_VARIED = '-';

export const axisNames = ['kernel', 'ompi'] as const;
export type AxisName = (typeof axisNames)[number];

export interface TestSet {
  id: string;
  title: string;
  axes: AxisName[];
  /** argv; {kernel} and {ompi} are replaced per cell, "dicomctl" is this checkout's */
  command: string[];
  timeoutMinutes: number;
}

export interface MatrixDefinition {
  axes: Record<AxisName, string[]>;
  sets: TestSet[];
}

/** A subset of the grid; an empty or missing list means "all". */
export interface Selection {
  sets?: string[];
  kernel?: string[];
  ompi?: string[];
}

export interface CellSpec {
  testSet: string;
  kernelVersion: string;
  ompiVersion: string;
  command: string[];
  timeoutMs: number;
}

export class MatrixError extends Error {}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0);
const AXIS_VALUE: Record<AxisName, RegExp> = { kernel: /^\d+\.\d+$/, ompi: /^\d+\.\d+$/ };

/** Checks a parsed ci/matrix.json; every defect is reported with where it is. */
export function parseDefinition(json: unknown, source = 'ci/matrix.json'): MatrixDefinition {
  const fail = (msg: string): never => {
    throw new MatrixError(`${source}: ${msg}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('expected a JSON object with "axes" and "sets"');
  const o = json as { axes?: unknown; sets?: unknown };
  if (typeof o.axes !== 'object' || o.axes === null) fail('"axes" must be an object {"kernel": [...], "ompi": [...]}');
  const rawAxes = o.axes as Record<string, unknown>;
  for (const k of Object.keys(rawAxes)) if (!(axisNames as readonly string[]).includes(k)) fail(`unknown axis "${k}" (axes are ${axisNames.join(', ')})`);
  const axes = {} as Record<AxisName, string[]>;
  for (const name of axisNames) {
    const values = rawAxes[name];
    if (!isStringArray(values) || values.length === 0) fail(`axes.${name} must be a non-empty list of version strings`);
    const list = values as string[];
    for (const v of list) if (!AXIS_VALUE[name].test(v)) fail(`axes.${name}: "${v}" is not a version like 6.1`);
    if (new Set(list).size !== list.length) fail(`axes.${name} lists a version twice`);
    axes[name] = list;
  }
  for (const v of axes.kernel) {
    if (!SERIES.some((k) => k.series === v)) fail(`axes.kernel: "${v}" is not a kernel series the tooling supports (${SERIES.map((k) => k.series).join(', ')})`);
  }
  for (const v of axes.ompi) {
    if (!ompiAxis.some((a) => a.spec === v)) fail(`axes.ompi: "${v}" is not an Open MPI the tooling can select (${ompiAxis.map((a) => a.spec).join(', ')})`);
  }
  if (!Array.isArray(o.sets) || o.sets.length === 0) fail('"sets" must be a non-empty list of test sets');
  const sets: TestSet[] = [];
  for (const [i, raw] of (o.sets as unknown[]).entries()) {
    const s = raw as Partial<Record<keyof TestSet, unknown>>;
    const where = `sets[${i}]`;
    if (typeof s.id !== 'string' || !/^[a-z0-9][a-z0-9-]{0,31}$/.test(s.id)) fail(`${where}.id must be a short lower-case name`);
    const id = s.id as string;
    if (sets.some((x) => x.id === id)) fail(`${where}: test set "${id}" is declared twice`);
    if (typeof s.title !== 'string' || !s.title) fail(`${where} (${id}).title must be a string`);
    if (!isStringArray(s.axes) || s.axes.some((a) => !(axisNames as readonly string[]).includes(a))) fail(`${where} (${id}).axes must list some of ${axisNames.join(', ')}`);
    if (!isStringArray(s.command) || s.command.length === 0) fail(`${where} (${id}).command must be a non-empty argv list`);
    const setAxes = s.axes as AxisName[];
    for (const name of axisNames) {
      const used = (s.command as string[]).some((a) => a.includes(`{${name}}`));
      if (used !== setAxes.includes(name)) fail(`${where} (${id}): the command ${used ? 'uses' : 'does not use'} {${name}} but axes ${used ? 'do not list' : 'list'} it`);
    }
    const timeout = s.timeoutMinutes;
    if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > 180) fail(`${where} (${id}).timeoutMinutes must be an integer from 1 to 180`);
    sets.push({ id, title: s.title as string, axes: setAxes, command: s.command as string[], timeoutMinutes: timeout as number });
  }
  return { axes, sets };
}

export async function loadMatrix(file = matrixFile()): Promise<MatrixDefinition> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new MatrixError(`cannot read the matrix definition ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new MatrixError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  return parseDefinition(json, path.relative(root, file) || file);
}

function checkSelected(kind: string, asked: string[] | undefined, known: string[]): string[] | undefined {
  if (!asked || asked.length === 0) return undefined;
  for (const v of asked) if (!known.includes(v)) throw new MatrixError(`unknown ${kind} "${v}": the matrix has ${known.join(', ')}`);
  return asked;
}

/**
 * The cells of `sel`. Selecting values of an axis keeps the cells at those
 * values: `--ompi 5.0` is the Open MPI 5.0 column, without the cells that do
 * not vary over Open MPI (the kernel checks).
 */
export function expandCells(def: MatrixDefinition, sel: Selection = {}): CellSpec[] {
  const sets = checkSelected('test set', sel.sets, def.sets.map((s) => s.id));
  const pick: Record<AxisName, string[] | undefined> = {
    kernel: checkSelected('kernel version', sel.kernel, def.axes.kernel),
    ompi: checkSelected('Open MPI version', sel.ompi, def.axes.ompi),
  };
  const cells: CellSpec[] = [];
  for (const set of def.sets) {
    if (sets && !sets.includes(set.id)) continue;
    const values = (name: AxisName): string[] => {
      if (!set.axes.includes(name)) return pick[name] ? [] : [NOT_VARIED];
      return pick[name] ?? def.axes[name];
    };
    for (const kernel of values('kernel')) {
      for (const ompi of values('ompi')) {
        const command = set.command.map((a, i) =>
          i === 0 && a === 'dicomctl' ? dicomctlBin : a.replaceAll('{kernel}', kernel).replaceAll('{ompi}', ompi),
        );
        cells.push({ testSet: set.id, kernelVersion: kernel, ompiVersion: ompi, command, timeoutMs: set.timeoutMinutes * 60_000 });
      }
    }
  }
  if (cells.length === 0) throw new MatrixError('the selection matches no cell of the matrix');
  return cells;
}

export interface AxisLabel {
  value: string;
  label: string;
}

/** Column and row headings: Open MPI specs with the version and place they stand for. */
export function axisLabels(def: MatrixDefinition): Record<AxisName, AxisLabel[]> {
  return {
    kernel: def.axes.kernel.map((v) => ({ value: v, label: `Linux ${v}` })),
    ompi: def.axes.ompi.map((v) => {
      const a = ompiAxis.find((x) => x.spec === v);
      return { value: v, label: a ? `Open MPI ${a.version} (${a.where.replace(/ \(.*\)$/, '')})` : `Open MPI ${v}` };
    }),
  };
}
