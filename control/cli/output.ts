// Human output goes to stderr as progress, data goes to stdout (as JSON with --json),
// so scripts can pipe dicomctl without parsing prose.

/** A failure the user can act on: printed without a stack trace. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

let quiet = false;
export function setQuiet(q: boolean): void {
  quiet = q;
}

export function step(msg: string): void {
  if (!quiet) process.stderr.write(`» ${msg}\n`);
}

export function note(msg: string): void {
  if (!quiet) process.stderr.write(`  ${msg}\n`);
}

/** Runs one long step, printing its name and how long it took. */
export async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  step(label);
  const t0 = performance.now();
  const out = await fn();
  note(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function printTable(rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(width[i]!)).join('  ');
  process.stdout.write(line(cols) + '\n');
  for (const r of rows) process.stdout.write(line(cols.map((c) => String(r[c] ?? ''))) + '\n');
}
