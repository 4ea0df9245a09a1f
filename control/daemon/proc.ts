// Processes addressed by their own PID only: liveness, identity (/proc/PID/cmdline), detached
// spawning, and a TERM-then-KILL stop. Nothing here ever signals by name or by process group
// unless the caller passes that group's leader explicitly.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True while PID exists and is not a zombie. */
export function pidAlive(pid: number | null | undefined): boolean {
  if (!pid || pid <= 1) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = procStat(pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X';
}

/** State letter and parent PID from /proc/PID/stat (the comm field may contain spaces). */
export function procStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '?', ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

export function readCmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((x, i, a) => x !== '' || i < a.length - 1);
  } catch {
    return undefined;
  }
}

/** True when PID is alive and its argv[0] ends in /<name> or is <name> (e.g. "sshd", "dicomd"). */
export function isProgram(pid: number | null | undefined, name: string): boolean {
  if (!pid || !pidAlive(pid)) return false;
  const argv0 = readCmdline(pid)?.[0];
  if (!argv0) return false;
  const base = argv0.split(/[ :]/)[0]!.split('/').pop();
  return base === name;
}

/** This process and its ancestors: never signalled by a cleanup that sweeps a namespace. */
export function selfAndAncestors(): Set<number> {
  const out = new Set<number>([1]);
  let pid = process.pid;
  for (let i = 0; i < 64 && pid > 1; i++) {
    out.add(pid);
    pid = procStat(pid)?.ppid ?? 0;
  }
  return out;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await sleep(intervalMs);
  }
}

export interface StopResult {
  /** PIDs that got SIGTERM */
  terminated: number[];
  /** PIDs still alive after the grace period that got SIGKILL */
  killed: number[];
}

/** SIGTERM each PID, wait up to graceMs for all to exit, SIGKILL what is left. */
export async function stopPids(pids: number[], graceMs = 2000): Promise<StopResult> {
  const live = [...new Set(pids)].filter((p) => p > 1 && pidAlive(p));
  const signal = (p: number, s: NodeJS.Signals) => {
    try {
      process.kill(p, s);
    } catch {
      /* already gone */
    }
  };
  live.forEach((p) => signal(p, 'SIGTERM'));
  await waitFor(() => live.every((p) => !pidAlive(p)), graceMs, 20);
  const killed = live.filter((p) => pidAlive(p));
  killed.forEach((p) => signal(p, 'SIGKILL'));
  await waitFor(() => killed.every((p) => !pidAlive(p)), 2000, 10);
  return { terminated: live, killed };
}

export interface SpawnDetachedOptions {
  /** stdout and stderr are appended here */
  outFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Starts argv in its own session, stdio to outFile, and lets this process exit without it.
 * Returns the PID of argv[0]; wrappers that exec (ip netns exec, unshare, sh -c 'exec …') keep it.
 */
export function spawnDetached(argv: string[], opts: SpawnDetachedOptions): number {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('spawnDetached: empty argv');
  const fd = openSync(opts.outFile, 'a', 0o640);
  try {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? '/',
    });
    if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
    child.on('error', () => {});
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Last n lines of a text file, or '' if it cannot be read. */
export function tail(file: string, n = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}
