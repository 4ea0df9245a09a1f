// Proves the in-tree layout (control/generator/intree.ts) the way upstream
// would build it: Open MPI's own source from Debian's source package
// (`apt-get source openmpi`, with a private apt state under
// $DICOM_CACHE/ompi-src; nothing is written to the host's apt sources), a
// fresh tree with opal/mca/btl/dicom rendered into it, autogen.pl, configure
// --with-dicom, and make of opal (libopen-pal, which the component links
// against, and every opal component including dicom). The mca_btl_dicom.so it
// produces must carry libdicom (static, hidden), and the installed Open MPI of
// the same version must load it and run the correctness subset with it.
// Slow (minutes on two cores): `dicomctl btl intree --build`, never the default tests.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startDaemon, stopDaemon } from '../daemon/daemon.js';
import { cacheDir, dicomdBin, root } from '../paths.js';
import { buildMpiPrograms, checkCases, mpirun } from '../runner/check.js';
import { inRootArgv, mountsUnder, trixieRootDir } from '../trixie/root.js';
import { buildLibdicom } from './build.js';
import { detectPmix } from './detect.js';
import { installComponent, verifyComponent } from './install.js';
import { IntreeError, intreeSubdir, renderIntree } from './intree.js';
import type { OmpiTarget } from './target.js';

export const ompiSrcDir = path.join(cacheDir, 'ompi-src');

type Log = (line: string) => void;

export interface IntreeBuildReport {
  version: string;
  btlApi: string;
  suite: string;
  tarball: string;
  tree: string;
  artifact: string;
  seconds: Record<'source' | 'extract' | 'tools' | 'libdicom' | 'autogen' | 'configure' | 'make' | 'verify' | 'runs' | 'total', number>;
  /** libdicom's functions inside the .so, as local symbols */
  libdicomSymbols: number;
  exported: string[];
  ompiInfoParams: number;
  runs: { program: string; ok: boolean; seconds: number; result: string }[];
  ok: boolean;
}

async function sh(argv: string[], o: { cwd?: string; log?: Log; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<string> {
  const [cmd, ...args] = argv;
  const sub = execa(cmd!, args, { cwd: o.cwd, env: o.env, all: true, reject: false, timeout: o.timeoutMs ?? 60 * 60_000, forceKillAfterDelay: 10_000 });
  const lines: string[] = [];
  for await (const line of sub.iterable({ from: 'all' })) {
    lines.push(line);
    o.log?.(line);
  }
  const r = await sub;
  if (r.exitCode !== 0) {
    throw new IntreeError(`${argv.slice(0, 4).join(' ')}${argv.length > 4 ? ' ...' : ''} failed (${r.timedOut ? 'timed out' : `exit ${r.exitCode ?? r.signal}`}):\n${lines.slice(-40).join('\n')}`);
  }
  return lines.join('\n');
}

/** argv that runs `argv` where the target lives, in `cwd` (the trixie root binds the source cache in). */
function where(t: OmpiTarget, cwd: string, argv: string[]): { argv: string[]; cwd?: string } {
  if (t.sysroot === '/') return { argv, cwd };
  return { argv: inRootArgv(argv, { dir: t.sysroot, cwd, binds: [ompiSrcDir] }) };
}

async function osCodename(sysroot: string): Promise<string> {
  const text = await readFile(path.join(sysroot, 'etc/os-release'), 'utf8').catch(() => '');
  const m = /^VERSION_CODENAME=(\w+)/m.exec(text);
  if (!m) throw new IntreeError(`cannot tell the Debian release of ${sysroot} (no VERSION_CODENAME in etc/os-release)`);
  return m[1]!;
}

/** The Debian mirror this host's apt already uses (deb822 or one-line sources). */
async function debianMirror(): Promise<string> {
  const files = ['/etc/apt/sources.list', ...(await readdir('/etc/apt/sources.list.d').catch(() => [])).map((f) => `/etc/apt/sources.list.d/${f}`)];
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    const m = /^(?:URIs:|deb)\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+?\/debian)\/?(?:\s|$)/m.exec(text);
    if (m) return m[1]!;
  }
  return 'http://deb.debian.org/debian';
}

/**
 * openmpi_<version>.orig.tar.* from Debian's source package for `suite`,
 * downloaded once into $DICOM_CACHE/ompi-src/dl. apt verifies it against the
 * suite's signed Sources index.
 */
export async function fetchOmpiSource(version: string, suite: string, log: Log): Promise<string> {
  const dl = path.join(ompiSrcDir, 'dl');
  const find = async () => (await readdir(dl).catch(() => [])).find((f) => f.startsWith(`openmpi_${version}.orig.tar.`));
  const cached = await find();
  if (cached) {
    log(`source cached: ${path.join(dl, cached)}`);
    return path.join(dl, cached);
  }
  const apt = path.join(ompiSrcDir, 'apt');
  for (const d of ['lists/partial', 'cache/archives/partial', 'etc']) await mkdir(path.join(apt, d), { recursive: true });
  await mkdir(dl, { recursive: true });
  const mirror = await debianMirror();
  const list = path.join(apt, 'etc', `${suite}.list`);
  await writeFile(list, `deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} ${suite} main\n`);
  const opts = ['-q', '-o', `Dir::Etc::SourceList=${list}`, '-o', 'Dir::Etc::SourceParts=/nonexistent', '-o', `Dir::State::Lists=${path.join(apt, 'lists')}`, '-o', `Dir::Cache=${path.join(apt, 'cache')}`];
  log(`apt-get update (deb-src ${mirror} ${suite}, private state in ${apt})`);
  await sh(['apt-get', ...opts, 'update'], { log });
  log(`apt-get source --download-only openmpi/${suite}`);
  await sh(['apt-get', ...opts, 'source', '--download-only', `openmpi/${suite}`], { cwd: dl, log });
  const got = await find();
  if (!got) {
    const have = (await readdir(dl)).filter((f) => /^openmpi_.*\.orig\.tar/.test(f));
    throw new IntreeError(`Debian ${suite}'s openmpi source package is not Open MPI ${version} (downloaded: ${have.join(', ') || 'nothing'})`);
  }
  return path.join(dl, got);
}

/** Tool → Debian package, for what autogen.pl and configure need. */
const buildTools: Record<string, string> = { autoconf: 'autoconf', automake: 'automake', libtoolize: 'libtool', m4: 'm4', perl: 'perl', flex: 'flex', 'pkg-config': 'pkgconf', make: 'make', gcc: 'gcc' };

async function ensureTools(t: OmpiTarget, log: Log): Promise<string[]> {
  const probe = `for p in ${Object.keys(buildTools).join(' ')}; do command -v "$p" >/dev/null || echo "$p"; done`;
  const w = where(t, '/', ['sh', '-c', probe]);
  const missing = (await sh(w.argv, { cwd: w.cwd })).split('\n').filter(Boolean);
  if (missing.length === 0) return [];
  const pkgs = [...new Set(missing.map((m) => buildTools[m]!))];
  log(`installing ${pkgs.join(' ')} ${t.sysroot === '/' ? 'on this host' : `into ${t.sysroot}`} (missing: ${missing.join(', ')})`);
  const install = ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs];
  // The cached root is shared: apt inside it holds the lock its creator takes.
  const lock = t.sysroot === trixieRootDir ? ['flock', '-w', '600', path.join(cacheDir, 'trixie-root.lock')] : [];
  const wi = where(t, '/', install);
  await sh([...lock, ...wi.argv], { cwd: wi.cwd, log });
  return pkgs;
}

async function configureArgs(t: OmpiTarget, libdicomDir: string): Promise<string[]> {
  const major = Number(t.version.split('.')[0]);
  // The installation's own dependencies, as Debian builds it (external PMIx, hwloc, libevent).
  const deps =
    major >= 5
      ? // PRRTE (mpirun) is not needed to build opal.
        ['--with-pmix=external', '--without-prrte', '--with-hwloc=external', '--with-libevent=external']
      : // 4.1 finds Debian's PMIx by its prefix (the parent of its include dir).
        [`--with-pmix=${path.dirname((await detectPmix(t)).incdirs[0]!)}`, '--with-hwloc=external', '--with-libevent=external'];
  return [
    `--prefix=/opt/dicom-ompi/ompi-intree-${t.version}`,
    '--enable-mca-dso=btl-dicom',
    `--with-dicom=${path.join(root, 'btl-dicom')}`,
    `--with-dicom-libdir=${libdicomDir}`,
    '--disable-mpi-fortran',
    '--disable-oshmem',
    '--disable-io-romio',
    ...deps,
  ];
}

async function symbols(file: string, args: string[]): Promise<string[]> {
  const r = await execa('nm', [...args, file], { reject: false });
  if (r.exitCode !== 0) throw new IntreeError(`nm ${args.join(' ')} ${file} failed: ${r.stderr}`);
  return String(r.stdout).split('\n').filter(Boolean);
}

export async function intreeBuild(t: OmpiTarget, o: { log?: Log; verbose?: Log } = {}): Promise<IntreeBuildReport> {
  const log = o.log ?? (() => {});
  const verbose = o.verbose ?? (() => {});
  const seconds = { source: 0, extract: 0, tools: 0, libdicom: 0, autogen: 0, configure: 0, make: 0, verify: 0, runs: 0, total: 0 };
  const t00 = performance.now();
  const phase = async <T>(name: keyof typeof seconds, label: string, fn: () => Promise<T>): Promise<T> => {
    log(label);
    const t0 = performance.now();
    const out = await fn();
    seconds[name] = (performance.now() - t0) / 1000;
    log(`  ${name}: ${seconds[name].toFixed(1)} s`);
    return out;
  };

  const suite = await osCodename(t.sysroot);
  const tarball = await phase('source', `Open MPI ${t.version} source from Debian ${suite} (apt-get source openmpi)`, () => fetchOmpiSource(t.version, suite, log));
  const work = path.join(ompiSrcDir, `intree-${t.version}`);
  const tree = path.join(work, `openmpi-${t.version}`);
  await phase('extract', `fresh tree in ${tree}`, async () => {
    const mounted = await mountsUnder(work);
    if (mounted.length) throw new IntreeError(`refusing to replace ${work}: still mounted: ${mounted.join(', ')}`);
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    await sh(['tar', '-xf', tarball, '-C', work]);
    const layout = await renderIntree(t, tree);
    log(`  rendered ${intreeSubdir}: ${layout.files.map((f) => path.basename(f)).join(', ')}`);
  });
  await phase('tools', 'autotools, flex and pkg-config where the build runs', () => ensureTools(t, log));
  const libdicomDir = await phase('libdicom', 'libdicom.a for that C library', () => buildLibdicom(verbose, t));

  const run = (argv: string[], timeoutMs?: number) => {
    const w = where(t, tree, ['nice', '-n', '10', ...argv]);
    return sh(w.argv, { cwd: w.cwd, log: verbose, timeoutMs, env: { LC_ALL: 'C' } });
  };
  const major = Number(t.version.split('.')[0]);
  const autogen = await phase('autogen', './autogen.pl --force (finds opal/mca/btl/dicom by its configure.m4)', () =>
    run(['./autogen.pl', '--force', ...(major >= 5 ? ['--no-3rdparty', 'openpmix,prrte'] : ['--no-oshmem'])]),
  );
  if (!/Found opal \/ btl \/ dicom component/.test(autogen)) throw new IntreeError('autogen.pl did not find opal/mca/btl/dicom');
  const args = await configureArgs(t, libdicomDir);
  const configured = await phase('configure', `./configure ${args.join(' ')}`, () => run(['./configure', ...args]));
  for (const want of [/MCA component btl:dicom compile mode\.\.\. dso/, /MCA component btl:dicom can compile\.\.\. yes/]) {
    if (!want.test(configured)) {
      const lines = configured.split('\n').filter((l) => /dicom/.test(l));
      throw new IntreeError(`configure did not enable btl dicom as a plugin (expected "${want.source}"):\n${lines.join('\n')}`);
    }
  }
  log(`  ${configured.split('\n').filter((l) => /btl:dicom|libdicom|dicom\.h/.test(l)).join('\n  ')}`);
  await phase('make', 'make -j2 -C opal (libopen-pal and every opal component, dicom among them)', () => run(['make', '-j2', '-C', 'opal']));

  const artifact = path.join(tree, intreeSubdir, '.libs', 'mca_btl_dicom.so');
  const report = await phase('verify', 'the .so: exports, libdicom inside, loaded by the installed Open MPI', async () => {
    const exported = (await symbols(artifact, ['-D', '--defined-only'])).map((l) => l.split(' ').pop()!);
    if (!exported.includes('mca_btl_dicom_component')) throw new IntreeError(`${artifact} does not export mca_btl_dicom_component`);
    const leaked = exported.filter((s) => s.startsWith('dicom_'));
    if (leaked.length) throw new IntreeError(`${artifact} exports libdicom symbols (${leaked.slice(0, 5).join(', ')}): libdicom.a must be built with hidden visibility`);
    const libdicomSymbols = (await symbols(artifact, [])).filter((l) => / [tT] dicom_/.test(l)).length;
    if (libdicomSymbols === 0) throw new IntreeError(`${artifact} holds no libdicom function: libdicom was not linked in`);
    const needed = String((await execa('readelf', ['-d', artifact])).stdout);
    if (/libdicom/.test(needed)) throw new IntreeError(`${artifact} needs a shared libdicom; it must carry libdicom.a`);
    const dir = await installComponent(t, artifact, path.join(t.sysroot === '/' ? path.join(root, 'build') : '/opt/dicom-ompi', 'intree-components'));
    const v = await verifyComponent(t, dir);
    log(`  ompi_info ${t.version} lists btl dicom from ${dir} with ${v.params.length} parameters`);
    return { exported, libdicomSymbols, dir, params: v.params.length };
  });

  const runs: IntreeBuildReport['runs'] = [];
  await phase('runs', `correctness subset over self,dicom with the in-tree mca_btl_dicom.so`, async () => {
    await buildMpiPrograms(t);
    await buildLibdicom(verbose);
    const daemon = `dicomd-intree-${process.pid}`;
    const stateDir = path.join(os.tmpdir(), `dicomd-intree-${process.pid}`);
    await startDaemon({ bin: dicomdBin, name: daemon, port: 19000 + (process.pid % 1000), nodeAddr: '127.0.0.1', dir: stateDir });
    try {
      for (const c of checkCases) {
        const c0 = performance.now();
        const r = await mpirun(t, c.program, c.args, { np: 2, daemon, componentDir: report.dir, extra: c.mca?.[t.btlApi] });
        const result = String(r.stdout).split('\n').find((l) => l.startsWith('RESULT ')) ?? `exit ${r.exitCode}`;
        const ok = r.exitCode === 0 && result.startsWith('RESULT ok');
        runs.push({ program: c.program, ok, seconds: (performance.now() - c0) / 1000, result });
        log(`  ${ok ? 'ok  ' : 'FAIL'} ${c.program.padEnd(12)} ${result}`);
        if (!ok) verbose(String(r.all).slice(-3000));
      }
    } finally {
      await stopDaemon({ name: daemon, dir: stateDir });
      await rm(stateDir, { recursive: true, force: true });
    }
  });
  seconds.total = (performance.now() - t00) / 1000;
  return {
    version: t.version,
    btlApi: t.btlApi,
    suite,
    tarball,
    tree,
    artifact,
    seconds,
    libdicomSymbols: report.libdicomSymbols,
    exported: report.exported,
    ompiInfoParams: report.params,
    runs,
    ok: runs.every((r) => r.ok),
  };
}
