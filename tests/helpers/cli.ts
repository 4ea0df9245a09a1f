// Runs dicomctl as a user would, from the checkout's bin/.
import path from 'node:path';
import { execa } from 'execa';
import { root } from '../../control/paths.js';

export const dicomctlBin = path.join(root, 'bin/dicomctl');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved, for assertion messages */
  all: string;
}

export async function dicomctl(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await execa(dicomctlBin, args, { reject: false, timeout: opts.timeoutMs ?? 10 * 60_000, env: opts.env, all: true });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), all: String(r.all) };
}

export const isRoot = process.getuid?.() === 0;
