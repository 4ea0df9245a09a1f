// Running the short system commands the lab is made of (ip, ssh-keygen, ss), bounded in time,
// with failures reported as LabError carrying the command and its stderr.
import { execa } from 'execa';
import { LabError } from './config.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export async function run(argv: string[], opts: { timeoutMs?: number; allowFail?: boolean; input?: string } = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  const r = await execa(cmd!, args, { reject: false, timeout: opts.timeoutMs ?? 10_000, forceKillAfterDelay: 1000, input: opts.input, stdin: opts.input === undefined ? 'ignore' : undefined });
  const exitCode = r.exitCode ?? -1;
  if (exitCode !== 0 && !opts.allowFail) {
    const why = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${exitCode}`;
    throw new LabError(`\`${argv.join(' ')}\` failed (${why}): ${String(r.stderr).trim() || String(r.stdout).trim()}`);
  }
  return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode };
}

/** `ip -j …` parsed; [] for empty output. */
export async function ipJson<T>(args: string[], opts: { allowFail?: boolean } = {}): Promise<T[]> {
  const r = await run(['ip', '-j', ...args], opts);
  if (r.exitCode !== 0 || r.stdout.trim() === '') return [];
  return JSON.parse(r.stdout) as T[];
}
