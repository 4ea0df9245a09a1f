// CRIU for migrations: the system criu when it is 4.x or newer, else the trixie root's criu run
// through that root's own loader (DESIGN.md §4). Dumps and restores run inside the node's namespaces.
import { existsSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { criuArgv, rootReady, trixieRootDir } from '../trixie/root.js';

export class CriuError extends Error {
  override name = 'CriuError';
}

let cached: string[] | undefined;

/** argv prefix that runs a CRIU >= 4 on this host. */
export async function criuCommand(): Promise<string[]> {
  if (cached) return cached;
  for (const p of ['/usr/sbin/criu', '/usr/local/sbin/criu']) {
    if (!existsSync(p)) continue;
    const v = await execa(p, ['--version'], { reject: false, timeout: 10_000 });
    const m = /Version:\s*(\d+)\./.exec(String(v.stdout));
    if (m && Number(m[1]) >= 4) return (cached = [p]);
  }
  if (!rootReady()) {
    throw new CriuError(`no CRIU >= 4: the system criu is missing or older (bookworm's 3.17 fails on this kernel), and there is no trixie root at ${trixieRootDir}; create it with: bash ci/trixie-root.sh`);
  }
  return (cached = criuArgv([]));
}

export interface CriuRun {
  ok: boolean;
  ms: number;
  /** the last lines of CRIU's own log when it failed */
  error: string;
}

/**
 * Runs criu `args` with the argv prefix `enter` (e.g. `ip netns exec NS`), writing its log into
 * `dir`. onStart receives the PID of the process that runs CRIU, so a caller can stop it.
 */
export async function runCriu(enter: string[], args: string[], dir: string, logName: string, opts: { timeoutMs?: number; onStart?: (pid: number) => void } = {}): Promise<CriuRun> {
  const argv = [...enter, ...(await criuCommand()), ...args, '-D', dir, '-o', logName];
  const t0 = performance.now();
  const sub = execa(argv[0]!, argv.slice(1), { reject: false, all: true, timeout: opts.timeoutMs ?? 60_000, stdin: 'ignore' });
  if (sub.pid) opts.onStart?.(sub.pid);
  const r = await sub;
  const ms = performance.now() - t0;
  if (r.exitCode === 0) return { ok: true, ms, error: '' };
  let log = '';
  try {
    log = readFileSync(`${dir}/${logName}`, 'utf8');
  } catch {
    /* CRIU never got to write its log */
  }
  const errors = log.split('\n').filter((l) => /Error|FAILED/.test(l) && !/RLIMIT_NOFILE/.test(l));
  const why = r.signal ? `criu was killed by ${r.signal}` : r.timedOut ? 'criu timed out' : `criu exited ${r.exitCode}`;
  return { ok: false, ms, error: [why, ...errors.slice(-4), String(r.all ?? '').trim().split('\n').slice(-2).join(' ')].filter(Boolean).join('; ') };
}
