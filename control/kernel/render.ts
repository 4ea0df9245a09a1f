// Renders kernel-patches/ for one kernel series into build/kernel/<series>/:
// the in-tree files (the series is made from them) and the DKMS module dir.
// Every file under kernel-patches/tree is a Handlebars template laid out as
// in the kernel tree; versions differ only by conditionals on KernelFeatures.
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Handlebars from 'handlebars';
import { buildDir, root } from '../paths.js';
import { featuresOf, type KernelFeatures } from './versions.js';

export const patchesDir = path.join(root, 'kernel-patches');
export const treeTemplates = path.join(patchesDir, 'tree');
export const uapiHeader = 'include/uapi/linux/dicom_mbox.h';
export const driverDir = 'drivers/misc/dicom';
export const selftestSource = 'tools/testing/selftests/dicom_mbox/dicom_mbox_test.c';

export const dkmsPackage = {
  name: 'dicom-mbox',
  version: (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version,
};

export interface KernelContext {
  kernel: KernelFeatures & { series: string; releaseRegex: string };
  package: typeof dkmsPackage;
  /** the DKMS form: the Makefile finds the uapi header in the module dir */
  outOfTree: boolean;
}

export function contextFor(series: string, outOfTree: boolean): KernelContext {
  return {
    kernel: { ...featuresOf(series), series, releaseRegex: `^${series.replace('.', '\\.')}\\.` },
    package: dkmsPackage,
    outOfTree,
  };
}

export function cellDir(series: string): string {
  return path.join(buildDir, 'kernel', series);
}

const hb = Handlebars.create();

async function renderFile(src: string, dest: string, ctx: KernelContext): Promise<void> {
  const template = hb.compile(await readFile(src, 'utf8'), { noEscape: true, strict: true });
  let out: string;
  try {
    out = template(ctx);
  } catch (e) {
    throw new Error(`rendering ${path.relative(root, src)}: ${(e as Error).message}`);
  }
  await mkdir(path.dirname(dest), { recursive: true });
  await writeFile(dest, out);
}

async function listTree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...(await listTree(dir, r)));
    else out.push(r);
  }
  return out.sort();
}

export interface Rendered {
  /** the in-tree files, at their kernel paths under this dir */
  tree: string;
  files: string[];
  /** the DKMS source dir: dkms.conf, Makefile, sources, include/uapi */
  dkms: string;
}

export async function renderKernel(series: string, out = cellDir(series)): Promise<Rendered> {
  const tree = path.join(out, 'tree');
  const dkms = path.join(out, 'dkms', `${dkmsPackage.name}-${dkmsPackage.version}`);
  await rm(tree, { recursive: true, force: true });
  await rm(path.dirname(dkms), { recursive: true, force: true });
  const files = await listTree(treeTemplates);
  const inTree = contextFor(series, false);
  const outOfTree = contextFor(series, true);
  for (const f of files) {
    const src = path.join(treeTemplates, f);
    await renderFile(src, path.join(tree, f), inTree);
    if (f === uapiHeader) await renderFile(src, path.join(dkms, f), outOfTree);
    else if (path.dirname(f) === driverDir && path.basename(f) !== 'Kconfig') {
      await renderFile(src, path.join(dkms, path.basename(f)), outOfTree);
    }
  }
  await renderFile(path.join(patchesDir, 'dkms', 'dkms.conf'), path.join(dkms, 'dkms.conf'), outOfTree);
  return { tree, files, dkms };
}
