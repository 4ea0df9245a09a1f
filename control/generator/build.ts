// Compiles libdicom and the rendered component with make, streaming the
// compiler's output so a long build shows progress and a failure shows why.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { buildDir, cBuildDir, root } from '../paths.js';
import { contextFor, renderSet } from './render.js';
import { type OmpiTarget, targetId } from './target.js';

export class BuildError extends Error {
  constructor(message: string, readonly log: string) {
    super(message);
  }
}

export type LogSink = (line: string) => void;

async function make(args: string[], onLine: LogSink, cwd = root): Promise<void> {
  const sub = execa('make', args, { cwd, all: true, reject: false, timeout: 15 * 60_000, forceKillAfterDelay: 5000 });
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

export async function buildLibdicom(onLine: LogSink = () => {}): Promise<string> {
  await make(['-C', 'btl-dicom', `-j2`, `BUILD=${cBuildDir}`], onLine);
  return cBuildDir;
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

/** libdicom, then render the templates for `t`, then make mca_btl_dicom.so. */
export async function buildComponent(t: OmpiTarget, onLine: LogSink = () => {}): Promise<BuildResult> {
  await buildLibdicom(onLine);
  const dir = componentBuildDir(t);
  const files = await renderSet('component', contextFor(t), dir);
  await make(['-C', dir, '-j2'], onLine);
  const artifact = path.join(dir, 'mca_btl_dicom.so');
  await access(artifact);
  return { target: t, dir, artifact, files };
}
