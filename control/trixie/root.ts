// The Debian trixie root that holds Open MPI 5.0.7 and CRIU 4.x (DESIGN.md §4, §6).
// ci/trixie-root.sh creates it once under $DICOM_CACHE (idempotent, stamped);
// inRoot() runs one command inside it.
//
// Mounts: every command runs in its own private mount namespace
// (`unshare --mount --propagation private`), where /proc, /sys, /dev (with
// /dev/pts and /dev/shm), a fresh /run and the checkout are mounted into the
// root before `chroot`. The host's mount table never sees them, and the kernel
// removes them when the command's last process exits, also after an error, a
// timeout or SIGKILL: nothing can stay mounted inside the cached root. The
// network namespace is the host's, so the host's abstract sockets (@dicomd)
// are reachable from inside.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa, type Options, type Result } from 'execa';
import { cacheDir, root } from '../paths.js';

export const trixieRootDir = process.env.DICOM_TRIXIE_ROOT ?? path.join(cacheDir, 'trixie-root');
export const rootScript = path.join(root, 'ci/trixie-root.sh');
const STAMP = '.dicom-trixie-root';

export class RootError extends Error {
  override name = 'RootError';
}

export type LineSink = (line: string) => void;

export function rootReady(dir = trixieRootDir): boolean {
  return existsSync(path.join(dir, STAMP));
}

/** Creates the root if needed (about 2 min the first time; instant when cached). Returns its path. */
export async function ensureTrixieRoot(onLine: LineSink = () => {}, dir = trixieRootDir): Promise<{ dir: string; seconds: number; cached: boolean }> {
  const t0 = performance.now();
  const sub = execa('bash', [rootScript], {
    env: { DICOM_TRIXIE_ROOT: dir, DICOM_CACHE: cacheDir },
    all: true,
    reject: false,
    timeout: 30 * 60_000,
    forceKillAfterDelay: 10_000,
  });
  let cached = false;
  const tail: string[] = [];
  for await (const line of sub.iterable({ from: 'stderr' })) {
    if (/cached:/.test(line)) cached = true;
    onLine(line);
    tail.push(line);
    if (tail.length > 20) tail.shift();
  }
  const r = await sub;
  if (r.exitCode !== 0) {
    throw new RootError(`creating the trixie root failed (exit ${r.exitCode ?? r.signal}):\n${tail.join('\n')}`);
  }
  return { dir, seconds: (performance.now() - t0) / 1000, cached };
}

export interface InRootOptions {
  /** working directory inside the root (default: the checkout, which is bind-mounted at its own path) */
  cwd?: string;
  /** extra host directories bind-mounted at the same path inside the root */
  binds?: string[];
  dir?: string;
}

// $1 = root, $2 = cwd, then bind dirs up to "--", then the command.
const MOUNT_SCRIPT = `set -e
R=$1; CWD=$2; shift 2
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
while [ "$1" != "--" ]; do
  mkdir -p "$R$1"
  mount --bind "$1" "$R$1"
  shift
done
shift
exec chroot "$R" /bin/sh -c 'cd "$0" && exec "$@"' "$CWD" "$@"`;

/** The argv that runs `argv` inside the root (for execa, or for an OmpiTarget's runPrefix). */
export function inRootArgv(argv: string[], o: InRootOptions = {}): string[] {
  const dir = o.dir ?? trixieRootDir;
  const binds = [root, ...(o.binds ?? [])];
  return ['unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', MOUNT_SCRIPT, 'dicom-inroot', dir, o.cwd ?? root, ...binds, '--', ...argv];
}

/** Runs argv inside the root; a missing root is an error that says how to make it. */
export async function inRoot(argv: string[], o: InRootOptions & { execa?: Options } = {}): Promise<Result> {
  const dir = o.dir ?? trixieRootDir;
  if (!rootReady(dir)) throw new RootError(`no trixie root at ${dir}; create it with: bash ci/trixie-root.sh`);
  const [cmd, ...args] = inRootArgv(argv, o);
  return execa(cmd!, args, { reject: false, timeout: 10 * 60_000, forceKillAfterDelay: 5000, ...o.execa }) as Promise<Result>;
}

/** Host paths mounted under the root right now (must be empty outside a running inRoot). */
export async function mountsUnder(dir = trixieRootDir): Promise<string[]> {
  const { readFile } = await import('node:fs/promises');
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'));
}

export interface CriuCheck {
  ok: boolean;
  version: string;
  output: string;
  /** how it ran: the root's own loader on the host's mount view (DESIGN.md §4) */
  via: 'loader';
}

/**
 * `criu check` with the root's CRIU run through the root's own loader
 * (DESIGN.md §4). Not through chroot: inside inRoot's private mount namespace
 * CRIU's mount-tree check fails ("No parent found for mountpoint ..."), since
 * the chroot sees bind mounts whose parents lie outside it; CRIU must see the
 * real mount tree of the processes it dumps.
 */
export async function criuCheck(dir = trixieRootDir): Promise<CriuCheck> {
  if (!rootReady(dir)) throw new RootError(`no trixie root at ${dir}; create it with: bash ci/trixie-root.sh`);
  const argv = criuArgv(['check'], dir);
  const v = await execa(argv[0]!, [...argv.slice(1, -1), '--version'], { reject: false, timeout: 30_000 });
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, all: true, timeout: 60_000 });
  const output = String(r.all ?? '').trim();
  return { ok: r.exitCode === 0 && /Looks good/.test(output), version: String(v.stdout).trim().split('\n')[0] ?? '', output, via: 'loader' };
}

/** argv that runs the root's criu with `args` through the root's loader, on the host. */
export function criuArgv(args: string[], dir = trixieRootDir): string[] {
  const lib = `${dir}/lib/x86_64-linux-gnu:${dir}/usr/lib/x86_64-linux-gnu`;
  return [`${dir}/lib64/ld-linux-x86-64.so.2`, '--library-path', lib, `${dir}/usr/sbin/criu`, ...args];
}
