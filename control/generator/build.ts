// Compiles libdicom and the rendered component with make, streaming the
// compiler's output so a long build shows progress and a failure shows why.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { withDirLock } from '../dirlock.js';
import { buildDir, cBuildDir, root } from '../paths.js';
import { renderCompat } from './compat.js';
import { detectPmix } from './detect.js';
import { contextFor, renderSet } from './render.js';
import { type OmpiTarget, targetId } from './target.js';

export class BuildError extends Error {
  constructor(message: string, readonly log: string) {
    super(message);
  }
}

export type LogSink = (line: string) => void;

/** make on the host, or with `runPrefix` where the target lives (a chroot: same paths, see control/trixie). */
async function make(args: string[], onLine: LogSink, cwd = root, runPrefix: string[] = []): Promise<void> {
  const [cmd, ...pre] = [...runPrefix, 'make'];
  const sub = execa(cmd!, [...pre, ...args], { cwd, all: true, reject: false, timeout: 15 * 60_000, forceKillAfterDelay: 5000 });
  const tail: string[] = [];
  for await (const line of sub.iterable({ from: 'all' })) {
    onLine(line);
    tail.push(line);
    if (tail.length > 40) tail.shift();
  }
  const r = await sub;
  if (r.exitCode !== 0) {
    throw new BuildError(`make ${args.join(' ')} failed (exit ${r.exitCode ?? r.signal})`, tail.join('\n'));
  }
}

/**
 * Where libdicom is built for `t`: the host's build/c, or for a target in
 * another root (another glibc) build/c-<root name>, compiled inside that root.
 */
export function libdicomBuildDir(t?: OmpiTarget): string {
  if (!t || t.sysroot === '/') return cBuildDir;
  return path.join(buildDir, `c-${path.basename(t.sysroot)}`);
}

export async function buildLibdicom(onLine: LogSink = () => {}, t?: OmpiTarget): Promise<string> {
  const out = libdicomBuildDir(t);
  await withDirLock(out, onLine, () => make(['-C', path.join(root, 'btl-dicom'), `-j2`, `BUILD=${out}`], onLine, root, t?.runPrefix ?? []));
  return out;
}

export function componentBuildDir(t: OmpiTarget): string {
  return path.join(buildDir, 'btl', targetId(t));
}

export interface BuildResult {
  target: OmpiTarget;
  dir: string;
  artifact: string;
  files: string[];
}

/**
 * libdicom, then render the templates for `t`, then make mca_btl_dicom.so;
 * one build of a target at a time, whoever asks (API, CLI, matrix, guests).
 */
export async function buildComponent(t: OmpiTarget, onLine: LogSink = () => {}): Promise<BuildResult> {
  const dir = componentBuildDir(t);
  return withDirLock(dir, onLine, () => buildComponentLocked(t, dir, onLine));
}

async function buildComponentLocked(t: OmpiTarget, dir: string, onLine: LogSink): Promise<BuildResult> {
  const libdicomDir = await buildLibdicom(onLine, t);
  const pmix = t.btlApi === '3.3' ? await detectPmix(t) : undefined;
  const compat = await renderCompat(t, dir);
  const files = await renderSet('component', contextFor(t, libdicomDir, { pmix, compatIncdir: compat.incdir }), dir);
  files.push(...compat.headers.map((h) => path.join(compat.incdir, h)));
  await make(['-C', dir, '-j2'], onLine, root, t.runPrefix);
  const artifact = path.join(dir, 'mca_btl_dicom.so');
  await access(artifact);
  return { target: t, dir, artifact, files };
}
