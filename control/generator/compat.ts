// Headers an installation names but does not ship. Debian's Open MPI 5.0.7
// devel headers lack the pthreads threads component's headers that
// opal_config.h points at (MCA_threads_*_include_HEADER). They are not copied
// from Open MPI: mca-templates/compat/ holds our own declarations of the few
// types and inline functions the installed headers use, rendered into the
// component's build folder; abi_check.c then compares the resulting object
// sizes with libopen-pal's class descriptors before the component links.
import { access, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Handlebars from 'handlebars';
import { templatesDir } from '../paths.js';
import { DetectError } from './detect.js';
import type { OmpiTarget } from './target.js';

export interface MissingHeader {
  /** e.g. opal/mca/threads/pthreads/threads_pthreads_mutex.h */
  header: string;
  /** the opal_config.h macro that names it */
  macro: string;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** The headers opal_config.h includes through MCA_*_include_HEADER that no incdir holds. */
export async function missingHeaders(t: OmpiTarget): Promise<MissingHeader[]> {
  let config: string | undefined;
  for (const dir of t.incdirs) {
    config = await readFile(path.join(t.sysroot, dir, 'opal_config.h'), 'utf8').catch(() => undefined);
    if (config !== undefined) break;
  }
  if (config === undefined) throw new DetectError(`opal_config.h not found under ${t.incdirs.join(', ')}`);
  const missing: MissingHeader[] = [];
  for (const m of config.matchAll(/^#define\s+(MCA_\w+_include_HEADER)\s+"([^"]+)"/gm)) {
    const [, macro, header] = m as unknown as [string, string, string];
    let found = false;
    for (const dir of t.incdirs) if (await exists(path.join(t.sysroot, dir, header))) found = true;
    if (!found) missing.push({ header, macro });
  }
  return missing;
}

export interface CompatResult {
  /** -I dir for the generated headers ('' when nothing was missing) */
  incdir: string;
  headers: string[];
}

/** Renders a declaration header for every missing header into outDir/compat, plus outDir/abi_check.c. */
export async function renderCompat(t: OmpiTarget, outDir: string): Promise<CompatResult> {
  const missing = await missingHeaders(t);
  if (missing.length === 0) return { incdir: '', headers: [] };
  const srcDir = path.join(templatesDir, 'compat');
  const available = new Set(await readdir(srcDir));
  const incdir = path.join(outDir, 'compat');
  const hb = Handlebars.create();
  const ompi = { version: t.version };
  for (const { header, macro } of missing) {
    const tplName = path.basename(header) + '.hbs';
    if (!available.has(tplName)) {
      throw new DetectError(`Open MPI ${t.version}'s opal_config.h names ${header} (${macro}), which its devel headers lack and mca-templates/compat/ cannot supply`);
    }
    const tpl = hb.compile(await readFile(path.join(srcDir, tplName), 'utf8'), { noEscape: true, strict: true });
    const out = path.join(incdir, header);
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, tpl({ header, macro, ompi }));
  }
  const headers = missing.map((m) => m.header);
  const check = hb.compile(await readFile(path.join(srcDir, 'abi_check.c.hbs'), 'utf8'), { noEscape: true, strict: true });
  await writeFile(path.join(outDir, 'abi_check.c'), check({ headers, ompi }));
  return { incdir, headers };
}
