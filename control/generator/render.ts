// Renders mca-templates/ for one target into a git-ignored build folder.
// The two BTL API generations differ only in template conditionals and
// partials; there is one copy of the component.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Handlebars from 'handlebars';
import { cBuildDir, root, templatesDir } from '../paths.js';
import type { OmpiTarget } from './target.js';

/** Sizes chosen with `dicomctl bench btl`; see README "Tuning". */
export const tunedDefaults = { eagerLimit: 65536, maxSendSize: 262144, windowKib: 65536 } as const;

export interface RenderContext {
  ompi: { version: string };
  btlApi: string;
  api33: boolean;
  incdirs: string[];
  libdirs: string[];
  ldlibs: string;
  /** Open MPI's inline 128-bit atomics need cmpxchg16b on x86-64. */
  archCflags: string;
  libdicomDir: string;
  dicomInclude: string;
  defaults: typeof tunedDefaults;
  /** BTL API 3.3: the external PMIx's include and library dirs (pmix.pc) */
  pmixIncdirs: string[];
  pmixLibdirs: string[];
  /** generated declarations for headers the installation lacks (compat.ts); '' if none */
  compatIncdir: string;
  compat: boolean;
}

export interface ExtraContext {
  pmix?: { incdirs: string[]; libdirs: string[] };
  compatIncdir?: string;
}

export function contextFor(t: OmpiTarget, libdicomDir = cBuildDir, extra: ExtraContext = {}): RenderContext {
  return {
    pmixIncdirs: extra.pmix?.incdirs ?? [],
    pmixLibdirs: extra.pmix?.libdirs ?? [],
    compatIncdir: extra.compatIncdir ?? '',
    compat: Boolean(extra.compatIncdir),
    ompi: { version: t.version },
    btlApi: t.btlApi,
    api33: t.btlApi === '3.3',
    incdirs: t.incdirs,
    libdirs: t.libdirs,
    ldlibs: t.btlApi === '3.3' ? '-lopen-pal -lpmix' : '-lopen-pal',
    archCflags: process.arch === 'x64' ? '-mcx16' : '',
    libdicomDir,
    dicomInclude: path.join(root, 'btl-dicom/include'),
    defaults: tunedDefaults,
  };
}

async function loadPartials(hb: typeof Handlebars): Promise<void> {
  const dir = path.join(templatesDir, 'partials');
  for (const f of await readdir(dir)) {
    if (!f.endsWith('.hbs')) continue;
    hb.registerPartial(f.replace(/\.hbs$/, ''), (await readFile(path.join(dir, f), 'utf8')).replace(/\n$/, ''));
  }
}

/** Renders every template of `set` (a subfolder of mca-templates) into outDir; returns the files written. */
export async function renderSet(set: string, ctx: RenderContext, outDir: string): Promise<string[]> {
  const hb = Handlebars.create();
  await loadPartials(hb);
  const srcDir = path.join(templatesDir, set);
  await mkdir(outDir, { recursive: true });
  const written: string[] = [];
  for (const f of (await readdir(srcDir)).sort()) {
    if (!f.endsWith('.hbs')) continue;
    const tpl = hb.compile(await readFile(path.join(srcDir, f), 'utf8'), { noEscape: true, strict: true });
    const out = path.join(outDir, f.replace(/\.hbs$/, ''));
    await writeFile(out, tpl(ctx));
    written.push(out);
  }
  return written;
}
