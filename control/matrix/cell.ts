// Runs one matrix cell: its command in a process group of its own (a cell
// may start mpirun, qemu or a dicomd, and a timeout must stop all of them),
// the output streamed line by line, and the verdict taken from the exit
// status and the TAP on stdout together.
import { execa } from 'execa';
import { root } from '../paths.js';
import { TapReader, type TapSummary, tapVerdict } from './tap.js';

export interface CellCommand {
  command: string[];
  timeoutMs: number;
}

export interface CellOutcome {
  ok: boolean;
  exitCode: number | null;
  tap: TapSummary;
  /** why the cell failed; undefined when it passed */
  error: string | undefined;
  durationMs: number;
}

export interface RunCellOptions {
  /** every output line, stdout and stderr as they come */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** grace between SIGTERM and SIGKILL of the group */
  killAfterMs?: number;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

export async function runCell(cell: CellCommand, o: RunCellOptions = {}): Promise<CellOutcome> {
  const t0 = performance.now();
  const [cmd, ...args] = cell.command;
  if (!cmd) throw new Error('a matrix cell needs a command');
  const tap = new TapReader();
  const sub = execa(cmd, args, { cwd: root, reject: false, detached: true, env: { NO_COLOR: '1' }, stdin: 'ignore', buffer: false });
  let stopped: string | undefined;
  const stop = (why: string) => {
    if (stopped) return;
    stopped = why;
    killGroup(sub.pid, 'SIGTERM');
    setTimeout(() => killGroup(sub.pid, 'SIGKILL'), o.killAfterMs ?? 5000).unref();
  };
  const timer = setTimeout(() => stop(`timed out after ${Math.round(cell.timeoutMs / 1000)} s`), cell.timeoutMs);
  const onAbort = () => stop(typeof o.signal?.reason === 'string' ? o.signal.reason : 'cancelled');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  const pump = async (from: 'stdout' | 'stderr') => {
    for await (const line of sub.iterable({ from })) {
      if (from === 'stdout') tap.line(line);
      o.onLine?.(line);
    }
  };
  try {
    await Promise.all([pump('stdout'), pump('stderr')]);
    const r = await sub;
    // Whatever the cell left in its group (a daemon it forgot) goes with it.
    killGroup(sub.pid, 'SIGKILL');
    const summary = tap.summary;
    const exitCode = r.exitCode ?? null;
    const spawnError = r.failed && exitCode === null && !r.signal && !stopped ? r.shortMessage : undefined;
    const error =
      stopped ??
      spawnError ??
      (r.signal ? `killed by ${r.signal}` : undefined) ??
      (exitCode !== 0 ? `exit ${exitCode}${tapVerdict(summary) ? `; ${tapVerdict(summary)}` : ''}` : undefined) ??
      tapVerdict(summary);
    return { ok: error === undefined, exitCode, tap: summary, error, durationMs: Math.round(performance.now() - t0) };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
}
