// Puts mca_btl_dicom.so where Open MPI's component loader finds it, and
// proves it with ompi_info.
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { defaultComponentDir } from '../paths.js';
import type { OmpiTarget } from './target.js';

export class InstallError extends Error {}

/**
 * The loader path that adds `dir` without hiding the system components:
 * a missing directory in this path silently hides every plugin, so the
 * system pkglibdir is always listed too.
 */
export function componentPath(t: OmpiTarget, dir: string): string {
  return dir === t.pkglibdir ? t.pkglibdir : `${dir}:${t.pkglibdir}`;
}

export function componentEnv(t: OmpiTarget, dir: string): Record<string, string> {
  return { OMPI_MCA_mca_base_component_path: componentPath(t, dir) };
}

/** Inside another root (control/trixie), the project's component dir lives in that root. */
export const rootComponentDir = '/opt/dicom-ompi/components';

/** Where `btl install` puts the component without --dest/--system, as a host path. */
export function defaultComponentDirFor(t: OmpiTarget): string {
  return t.sysroot === '/' ? defaultComponentDir : path.join(t.sysroot, rootComponentDir);
}

/** A host path under t.sysroot as the installation sees it ("/" + relative). */
export function inTargetView(t: OmpiTarget, hostPath: string): string {
  return t.sysroot !== '/' && hostPath.startsWith(t.sysroot + '/') ? '/' + path.relative(t.sysroot, hostPath) : hostPath;
}

/**
 * `dest`: 'system' (the installation's pkglibdir), or a directory. For a
 * target inside another root a directory is meant as seen inside that root.
 * Returns the host path of the directory it installed into.
 */
export async function installComponent(t: OmpiTarget, artifact: string, dest: string | 'system' = defaultComponentDirFor(t)): Promise<string> {
  const dir =
    dest === 'system'
      ? path.join(t.sysroot, t.pkglibdir)
      : t.sysroot === '/' || dest.startsWith(t.sysroot + '/')
        ? path.resolve(dest)
        : path.join(t.sysroot, path.resolve(dest));
  await mkdir(dir, { recursive: true });
  const final = path.join(dir, 'mca_btl_dicom.so');
  // Copy then rename, so a running job never maps a half-written file.
  const tmp = `${final}.tmp-${process.pid}`;
  await copyFile(artifact, tmp);
  await rename(tmp, final);
  if (dest !== 'system') {
    await writeFile(path.join(dir, 'env.sh'), `export OMPI_MCA_mca_base_component_path=${componentPath(t, inTargetView(t, dir))}\n`);
  }
  return dir;
}

export interface VerifyResult {
  params: { name: string; help: string }[];
}

/** `ompi_info --param btl dicom --level 9` must list the component and its parameters with help. */
export async function verifyComponent(t: OmpiTarget, dir: string): Promise<VerifyResult> {
  const installedDir = inTargetView(t, dir);
  const env = installedDir === t.pkglibdir ? {} : componentEnv(t, installedDir);
  const bin = t.bindir ? path.join(t.bindir, 'ompi_info') : 'ompi_info';
  const [cmd, ...pre] = [...t.runPrefix, bin];
  const r = await execa(cmd!, [...pre, '--parsable', '--param', 'btl', 'dicom', '--level', '9'], { env, reject: false, timeout: 60_000 });
  if (r.exitCode !== 0) throw new InstallError(`ompi_info failed: ${r.stderr || r.stdout}`);
  const lines = r.stdout.split('\n');
  if (!lines.some((l) => l.startsWith('mca:btl:dicom:'))) {
    throw new InstallError(`ompi_info does not list btl dicom (component path ${componentPath(t, installedDir)}); is mca_btl_dicom.so built for Open MPI ${t.version}?`);
  }
  const params = new Map<string, string>();
  for (const l of lines) {
    const m = /^mca:btl:dicom:param:(btl_dicom_[a-z_]+):help:(.*)$/.exec(l);
    if (m) params.set(m[1]!, m[2]!);
  }
  for (const required of ['btl_dicom_daemon', 'btl_dicom_window_kib', 'btl_dicom_eager_limit', 'btl_dicom_max_send_size']) {
    if (!params.get(required)) throw new InstallError(`ompi_info lists btl dicom but not its parameter ${required} with help text`);
  }
  return { params: [...params].map(([name, help]) => ({ name, help })) };
}
