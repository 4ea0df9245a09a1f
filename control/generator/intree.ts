// The in-tree layout of btl dicom: opal/mca/btl/dicom/ inside an Open MPI
// source tree, the form a contribution upstream takes. Its C sources are the
// same component templates the out-of-tree build renders (one copy of the
// component); Makefile.am, configure.m4 and owner.txt come from
// mca-templates/intree/. Open MPI's autogen.pl finds the directory by its
// configure.m4, and configure builds it only with --with-dicom=DIR.
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { btlApiFromHeader, DetectError } from './detect.js';
import { contextFor, renderSet } from './render.js';
import type { OmpiTarget } from './target.js';

export const intreeSubdir = 'opal/mca/btl/dicom';
/** Who answers for the component upstream (owner.txt). */
export const intreeOwner = 'DiCOM for Open MPI project';

export class IntreeError extends Error {}

export interface IntreeLayout {
  /** <out>/opal/mca/btl/dicom */
  dir: string;
  /** every file written, absolute */
  files: string[];
  /** the component's C sources and headers, as Makefile.am lists them */
  sources: string[];
}

const isSource = (f: string) => /\.[ch]$/.test(f);

/**
 * When `out` is already an Open MPI source tree, its btl.h must be the BTL
 * API the target was rendered for: 3.3 glue in a 4.1 tree would not compile.
 */
async function checkTree(t: OmpiTarget, out: string): Promise<void> {
  let api: string;
  try {
    api = await btlApiFromHeader([out]);
  } catch (e) {
    if (e instanceof DetectError && /not found/.test(e.message)) return; // a plain output directory
    throw new IntreeError((e as Error).message);
  }
  if (api !== t.btlApi) {
    throw new IntreeError(`${out} is an Open MPI source tree with BTL API ${api}, but Open MPI ${t.version} uses ${t.btlApi}; choose the matching --ompi`);
  }
}

/** Writes opal/mca/btl/dicom/ for `t` under `out` (an output folder, or an Open MPI source tree). */
export async function renderIntree(t: OmpiTarget, out: string): Promise<IntreeLayout> {
  const root = path.resolve(out);
  await checkTree(t, root);
  const dir = path.join(root, intreeSubdir);
  await mkdir(dir, { recursive: true });
  // The component set also holds the out-of-tree Makefile and linker map; in
  // the tree automake owns "Makefile", so only the sources are taken.
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-intree-'));
  const files: string[] = [];
  try {
    await renderSet('component', contextFor(t), tmp);
    for (const f of (await readdir(tmp)).filter(isSource).sort()) {
      await copyFile(path.join(tmp, f), path.join(dir, f));
      files.push(path.join(dir, f));
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const sources = files.map((f) => path.basename(f));
  if (sources.length === 0) throw new IntreeError('mca-templates/component/ rendered no C sources');
  const ctx = { ...contextFor(t), sources, sourceList: ['\\', ...sources.map((s, i) => `\t${s}${i < sources.length - 1 ? ' \\' : ''}`)].join('\n'), owner: intreeOwner };
  files.push(...(await renderSet('intree', ctx, dir)));
  return { dir, files, sources };
}
