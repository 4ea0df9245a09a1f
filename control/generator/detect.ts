// Finds an Open MPI installation and reads its facts from its own tools,
// never from guesses: ompi_info for the version and pkglibdir, mpicc for the
// include dirs, and btl.h itself for the BTL API generation.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { BtlApi, OmpiTarget } from './target.js';

export class DetectError extends Error {}

async function tool(bindir: string, name: string, args: string[]): Promise<string> {
  const bin = bindir ? path.join(bindir, name) : name;
  const r = await execa(bin, args, { reject: false, timeout: 60_000, env: { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' } });
  if (r.failed) {
    const why = r.code === 'ENOENT' ? 'not found' : (r.stderr || r.shortMessage || 'failed').trim();
    throw new DetectError(`${bin} ${args.join(' ')}: ${why}. Install Open MPI (apt-get install libopenmpi-dev openmpi-bin) or pass --ompi PREFIX`);
  }
  return r.stdout;
}

function parsableField(out: string, key: string): string | undefined {
  const line = out.split('\n').find((l) => l.startsWith(key + ':'));
  return line?.slice(key.length + 1).trim();
}

/** BTL_VERSION in btl.h: 310 for Open MPI 4.1, 330 for 5.0. */
export async function btlApiFromHeader(incdirs: string[], sysroot = '/'): Promise<BtlApi> {
  for (const dir of incdirs) {
    const header = path.join(sysroot, dir, 'opal/mca/btl/btl.h');
    const text = await readFile(header, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const m = /#define\s+BTL_VERSION\s+(\d+)/.exec(text);
    if (!m) throw new DetectError(`${header} has no BTL_VERSION`);
    if (m[1] === '310') return '3.1';
    if (m[1] === '330') return '3.3';
    throw new DetectError(`unsupported BTL API ${m[1]} in ${header}: btl_dicom supports 310 (Open MPI 4.1) and 330 (Open MPI 5.0)`);
  }
  throw new DetectError(`opal/mca/btl/btl.h not found under ${incdirs.join(', ')}: the Open MPI devel headers are missing (apt-get install libopenmpi-dev)`);
}

/** `prefix` is "auto" (tools on PATH) or an installation prefix holding bin/ompi_info. */
export async function detectOmpi(prefix = 'auto'): Promise<OmpiTarget> {
  const bindir = prefix === 'auto' ? '' : path.join(prefix, 'bin');
  const info = await tool(bindir, 'ompi_info', ['--parsable']);
  const version = parsableField(info, 'ompi:version:full');
  if (!version) throw new DetectError('ompi_info --parsable did not report ompi:version:full');
  const pkglibdir = parsableField(await tool(bindir, 'ompi_info', ['--parsable', '--path', 'pkglibdir']), 'path:pkglibdir');
  if (!pkglibdir) throw new DetectError('ompi_info did not report its pkglibdir');
  const incdirs = (await tool(bindir, 'mpicc', ['--showme:incdirs'])).split(/\s+/).filter(Boolean);
  const libdirs = (await tool(bindir, 'mpicc', ['--showme:libdirs'])).split(/\s+/).filter(Boolean);
  const btlApi = await btlApiFromHeader(incdirs);
  return { version, btlApi, incdirs, libdirs, pkglibdir, runPrefix: [], bindir, sysroot: '/' };
}
