// What a job over dicom needs before it starts: the MPI programs, the
// component installed in the project-local dir, and a lab. Each step is
// skipped when already done, so commands can call them freely.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { detectOmpi } from '../generator/detect.js';
import { buildInstallVerify } from '../generator/pipeline.js';
import { labDown, labStatus, labUp } from '../lab/index.js';
import { buildDir, defaultComponentDir, root } from '../paths.js';

export const mpiProgramsDir = path.join(buildDir, 'mpi');

export async function ensureMpiPrograms(): Promise<string> {
  const r = await execa('make', ['-C', path.join(root, 'tests/mpi'), '-j2', `BUILD=${mpiProgramsDir}`], { reject: false, all: true, timeout: 5 * 60_000 });
  if (r.exitCode !== 0) throw new Error(`building the MPI test programs failed:\n${String(r.all).slice(-3000)}`);
  return mpiProgramsDir;
}

export async function ensureComponent(log: (m: string) => void): Promise<string> {
  if (existsSync(path.join(defaultComponentDir, 'mca_btl_dicom.so'))) return defaultComponentDir;
  log('btl dicom is not installed yet: building and installing it');
  return (await buildInstallVerify(await detectOmpi(), defaultComponentDir)).dir;
}

/** Runs fn in a lab of at least `nodes` nodes; a lab it had to create is removed afterwards. */
export async function withLab<T>(nodes: number, log: (m: string) => void, fn: () => Promise<T>): Promise<T> {
  const st = await labStatus();
  if (st.up && st.healthy && st.nodes.length >= nodes && st.dicomd) return fn();
  if (st.up) {
    log('removing an unhealthy or too small lab');
    await labDown({ log });
  }
  log(`lab up --nodes ${nodes}`);
  await labUp({ nodes, log });
  try {
    return await fn();
  } finally {
    log('lab down');
    await labDown({ log });
  }
}
