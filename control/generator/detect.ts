// Finds an Open MPI installation and reads its facts from its own tools,
// never from guesses: ompi_info for the version and pkglibdir, mpicc for the
// include dirs, and btl.h itself for the BTL API generation.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { BtlApi, OmpiTarget } from './target.js';

export class DetectError extends Error {}

async function tool(bindir: string, name: string, args: string[], runPrefix: string[] = []): Promise<string> {
  const bin = bindir ? path.join(bindir, name) : name;
  const [cmd, ...pre] = [...runPrefix, bin];
  const r = await execa(cmd!, [...pre, ...args], { reject: false, timeout: 60_000, env: { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' } });
  if (r.failed) {
    const notFound = r.code === 'ENOENT' || (runPrefix.length > 0 && r.exitCode === 127);
    const why = notFound ? 'not found' : (r.stderr || r.shortMessage || 'failed').trim();
    throw new DetectError(`${bin} ${args.join(' ')}: ${why}. Install Open MPI (apt-get install libopenmpi-dev openmpi-bin) or pass --ompi PREFIX`);
  }
  return r.stdout;
}

function parsableField(out: string, key: string): string | undefined {
  const line = out.split('\n').find((l) => l.startsWith(key + ':'));
  return line?.slice(key.length + 1).trim();
}

/** BTL_VERSION in btl.h: 310 for Open MPI 4.1, 330 for 5.0. */
export async function btlApiFromHeader(incdirs: string[], sysroot = '/', readText: ReadText = localText): Promise<BtlApi> {
  for (const dir of incdirs) {
    const header = path.join(sysroot, dir, 'opal/mca/btl/btl.h');
    const text = await readText(header);
    if (text === undefined) continue;
    const m = /#define\s+BTL_VERSION\s+(\d+)/.exec(text);
    if (!m) throw new DetectError(`${header} has no BTL_VERSION`);
    if (m[1] === '310') return '3.1';
    if (m[1] === '330') return '3.3';
    throw new DetectError(`unsupported BTL API ${m[1]} in ${header}: btl_dicom supports 310 (Open MPI 4.1) and 330 (Open MPI 5.0)`);
  }
  throw new DetectError(`opal/mca/btl/btl.h not found under ${incdirs.join(', ')}: the Open MPI devel headers are missing (apt-get install libopenmpi-dev)`);
}

/** Reads a text file where the installation lives; undefined when it does not exist. */
export type ReadText = (file: string) => Promise<string | undefined>;
const localText: ReadText = (file) => readFile(file, 'utf8').catch(() => undefined);

export interface DetectOptions {
  /** argv prefix that runs a command where the installation lives (e.g. control/trixie inRootArgv([])) */
  runPrefix?: string[];
  /** the host directory that is "/" for that installation; its paths are read under it */
  sysroot?: string;
  /** how to read btl.h there (default: the local file); a remote node's over ssh */
  readText?: ReadText;
}

/**
 * `prefix` is "auto" (tools on PATH) or an installation prefix holding bin/ompi_info.
 * With a runPrefix and sysroot (a chroot), the tools run inside it and the
 * paths they report (incdirs, pkglibdir) are interpreted under the sysroot.
 */
export async function detectOmpi(prefix = 'auto', o: DetectOptions = {}): Promise<OmpiTarget> {
  const runPrefix = o.runPrefix ?? [];
  const sysroot = o.sysroot ?? '/';
  const bindir = prefix === 'auto' ? '' : path.join(prefix, 'bin');
  const info = await tool(bindir, 'ompi_info', ['--parsable'], runPrefix);
  const version = parsableField(info, 'ompi:version:full');
  if (!version) throw new DetectError('ompi_info --parsable did not report ompi:version:full');
  const pkglibdir = parsableField(await tool(bindir, 'ompi_info', ['--parsable', '--path', 'pkglibdir'], runPrefix), 'path:pkglibdir');
  if (!pkglibdir) throw new DetectError('ompi_info did not report its pkglibdir');
  const incdirs = (await tool(bindir, 'mpicc', ['--showme:incdirs'], runPrefix)).split(/\s+/).filter(Boolean);
  const libdirs = (await tool(bindir, 'mpicc', ['--showme:libdirs'], runPrefix)).split(/\s+/).filter(Boolean);
  const btlApi = await btlApiFromHeader(incdirs, sysroot, o.readText);
  return { version, btlApi, incdirs, libdirs, pkglibdir, runPrefix, bindir, sysroot };
}

const multiarch: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', ppc64: 'powerpc64le-linux-gnu' };

/**
 * The external PMIx an Open MPI 5 installation was built with: its include and
 * library dirs from pmix.pc (Debian: /usr/lib/<triplet>/pmix2). Open MPI 5's
 * headers include <pmix.h>, which mpicc --showme:incdirs does not list.
 */
export async function detectPmix(t: OmpiTarget): Promise<{ incdirs: string[]; libdirs: string[] }> {
  const triplet = multiarch[process.arch] ?? 'x86_64-linux-gnu';
  const candidates = [
    ...t.libdirs.map((d) => path.join(d, 'pkgconfig')),
    `/usr/lib/${triplet}/pkgconfig`,
    '/usr/lib/pkgconfig',
    '/usr/local/lib/pkgconfig',
    '/usr/share/pkgconfig',
  ];
  for (const dir of candidates) {
    const pc = path.join(t.sysroot, dir, 'pmix.pc');
    const text = await readFile(pc, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const vars = new Map<string, string>();
    const expand = (v: string) => v.replace(/\$\{(\w+)\}/g, (_, k: string) => vars.get(k) ?? '');
    let cflags = '';
    let libs = '';
    for (const line of text.split('\n')) {
      const v = /^(\w+)=(.*)$/.exec(line);
      if (v) vars.set(v[1]!, expand(v[2]!.trim()));
      const f = /^(Cflags|Libs):(.*)$/.exec(line);
      if (f?.[1] === 'Cflags') cflags = expand(f[2]!);
      if (f?.[1] === 'Libs') libs = expand(f[2]!);
    }
    const incdirs = [...cflags.matchAll(/-I(\S+)/g)].map((m) => m[1]!);
    const libdirs = [...libs.matchAll(/-L(\S+)/g)].map((m) => m[1]!);
    if (incdirs.length === 0) throw new DetectError(`${pc} lists no include dir`);
    return { incdirs, libdirs };
  }
  throw new DetectError(`pmix.pc not found under ${t.sysroot} (${candidates.join(', ')}): Open MPI ${t.version} needs the PMIx devel files (apt-get install libpmix-dev)`);
}
