// The MPI guest of a kernel cell (`dicomctl kernel test --mpi`): a two-rank
// MPI job over self,dicom inside Debian's kernel in qemu TCG, with libdicom's
// kernel backend required, so every message between the ranks goes through
// the dicom_mbox mailboxes.
//
// The guest boots a cached bookworm root (ci/kernel-guest-root.sh, Open MPI
// 4.1.4 like the host) as its initramfs, followed by a small overlay archive
// (the kernel unpacks concatenated cpio archives in order) with what the
// host built: the module, dicomd, mca_btl_dicom.so, libdicom's test_kmbox
// under ASan+UBSan (with the host's sanitizer runtimes; the guest's glibc is
// the host's), tests/mpi's pingpong, a static busybox (insmod, ip, poweroff)
// and /init (kernel-patches/guest/mpi-init), whose TAP comes back on the
// serial console.
import { chmod, copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { BUSYBOX, type BootResult, bootGuest } from './guest.js';
import { kernelCacheDir, type Progress } from './packages.js';
import { patchesDir } from './render.js';
import { KernelError } from './versions.js';
import { buildLibdicom } from '../generator/build.js';
import { buildDir, cBuildDir, dicomdBin, root } from '../paths.js';

export const guestRootDir = process.env.DICOM_GUEST_ROOT ?? path.join(kernelCacheDir, 'guest-root');
const rootScript = path.join(root, 'ci/kernel-guest-root.sh');
const STAMP = '.dicom-guest-root';
export const BUILD_LOCK = '/tmp/dicom-build.lock';
/** The guest's Open MPI must be the host's: the component and programs are built on the host. */
export const OMPI_PACKAGE = 'openmpi-bin';
const GUEST_MEMORY_MB = 2048;

export interface MpiGuestResult extends BootResult {
  rootSeconds: number;
  buildSeconds: number;
}

/** Lines of a child's output to the progress display, the last ones kept for errors. */
export async function streamed(cmd: string, args: string[], progress: Progress, what: string, env: Record<string, string> = {}): Promise<void> {
  const sub = execa(cmd, args, { all: true, reject: false, env, timeout: 40 * 60_000, forceKillAfterDelay: 10_000 });
  const tail: string[] = [];
  for await (const line of sub.iterable({ from: 'all' })) {
    progress(`  ${line}`);
    tail.push(line);
    if (tail.length > 15) tail.shift();
  }
  const r = await sub;
  if (r.exitCode !== 0) throw new KernelError(`${what} failed (exit ${r.exitCode ?? r.signal}):\n${tail.join('\n')}`);
}

/** The bookworm root, debootstrapped once (about a minute) and cached. */
export async function ensureGuestRoot(progress: Progress): Promise<string> {
  await streamed('bash', [rootScript], progress, 'creating the guest root', { DICOM_GUEST_ROOT: guestRootDir });
  return guestRootDir;
}

/** The root as one newc archive, remade only when the root was rebuilt. */
export async function rootArchive(dir: string, progress: Progress): Promise<string> {
  const out = `${dir}.cpio`;
  const stamp = await stat(path.join(dir, STAMP));
  const have = await stat(out).catch(() => undefined);
  if (have && have.mtimeMs >= stamp.mtimeMs) return out;
  progress(`  archiving ${dir} as the guest's initramfs`);
  await cpio(dir, `${out}.partial`);
  await execa('mv', [`${out}.partial`, out]);
  return out;
}

export async function cpio(dir: string, out: string): Promise<void> {
  const r = await execa('bash', ['-c', 'set -o pipefail; cd "$DIR" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 > "$OUT"'], {
    env: { DIR: dir, OUT: out },
    reject: false,
  });
  if (r.exitCode !== 0) throw new KernelError(`cpio of ${dir} failed: ${r.stderr.trim()}`);
}

export async function debVersion(pkg: string, dpkgStatus?: string): Promise<string | undefined> {
  if (!dpkgStatus) {
    const r = await execa('dpkg-query', ['-W', '-f', '${Version}', pkg], { reject: false });
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  }
  const text = await readFile(dpkgStatus, 'utf8');
  const block = text.split('\n\n').find((b) => b.startsWith(`Package: ${pkg}\n`));
  return block ? /^Version: (.+)$/m.exec(block)?.[1] : undefined;
}

/** What the guest runs, built on the host under the shared build lock. */
export async function buildHostParts(progress: Progress): Promise<HostParts> {
  const lock = ['-w', '1800', BUILD_LOCK, 'nice', '-n', '10'];
  const make = ['make', '-C', path.join(root, 'btl-dicom'), '-j2'];
  progress('  building libdicom and dicomd');
  await buildLibdicom((line) => progress(`  ${line}`)).catch((e: Error) => {
    throw new KernelError(`building libdicom failed: ${e.message}`);
  });
  // The sanitizer tree of `make check`; the test starts the dicomd built next to it.
  const asanDir = path.join(cBuildDir, 'asan');
  const testKmbox = path.join(asanDir, 'tests', 'test_kmbox');
  const asanDicomd = path.join(asanDir, 'dicomd');
  progress('  building test_kmbox under ASan+UBSan');
  await streamed('flock', [...lock, ...make, `BUILD=${asanDir}`, 'SAN=1', asanDicomd, testKmbox], progress, 'building test_kmbox');
  progress('  building mca_btl_dicom.so for Open MPI 4.1 (dicomctl btl build)');
  const btlDir = path.join(buildDir, 'btl');
  await streamed('flock', [...lock, process.execPath, '--import', 'tsx', path.join(root, 'control/cli/dicomctl.ts'), 'btl', 'build', '--ompi', '4.1'], progress, 'dicomctl btl build --ompi 4.1');
  const host = await debVersion(OMPI_PACKAGE);
  const btl = path.join(btlDir, `ompi-${host?.replace(/-.*$/, '')}`, 'mca_btl_dicom.so');
  progress('  building tests/mpi');
  await streamed('flock', [...lock, 'make', '-C', path.join(root, 'tests/mpi')], progress, 'building tests/mpi');
  return { btl, testKmbox, asanDicomd, sanitizerLibs: await sanitizerLibs(testKmbox), pingpong: path.join(buildDir, 'mpi', 'pingpong') };
}

export interface HostParts {
  btl: string;
  testKmbox: string;
  asanDicomd: string;
  sanitizerLibs: string[];
  pingpong: string;
}

/** The sanitizer runtimes a binary loads (the guest root has no gcc). */
export async function sanitizerLibs(bin: string): Promise<string[]> {
  const r = await execa('ldd', [bin], { reject: false });
  const libs = [...r.stdout.matchAll(/=> (\S*lib(?:asan|ubsan)\.so\S*)/g)].map((m) => m[1]!);
  if (libs.length === 0) throw new KernelError(`${bin} loads no sanitizer runtime (ldd: ${r.stdout.trim() || r.stderr.trim()})`);
  return libs;
}

async function overlay(outDir: string, ko: string, parts: HostParts): Promise<string> {
  const dir = path.join(outDir, 'mpi-overlay');
  await rm(dir, { recursive: true, force: true });
  const opt = path.join(dir, 'opt/dicom');
  await mkdir(path.join(opt, 'btl'), { recursive: true });
  const copies: [string, string][] = [
    [BUSYBOX, path.join(opt, 'busybox')],
    [ko, path.join(opt, 'dicom_mbox.ko')],
    [dicomdBin, path.join(opt, 'dicomd')],
    [parts.testKmbox, path.join(opt, 'test_kmbox')],
    [parts.pingpong, path.join(opt, 'pingpong')],
    [parts.btl, path.join(opt, 'btl', 'mca_btl_dicom.so')],
    // test_kmbox starts this dicomd (DICOM_TEST_DICOMD in mpi-init): the path it was built
    // with may lie under /tmp, which the guest mounts a tmpfs over.
    [parts.asanDicomd, path.join(opt, 'asan-dicomd')],
    ...parts.sanitizerLibs.map((l): [string, string] => [l, path.join(dir, 'usr/lib/x86_64-linux-gnu', path.basename(l))]),
    [path.join(patchesDir, 'guest', 'mpi-init'), path.join(dir, 'init')],
  ];
  return writeOverlay(dir, copies, path.join(outDir, 'mpi-overlay.cpio'), 'the MPI guest');
}

/** Copies [from, to] pairs under dir (its /init made executable) and archives dir as out. */
export async function writeOverlay(dir: string, copies: [string, string][], out: string, what: string): Promise<string> {
  for (const [from, to] of copies) {
    await mkdir(path.dirname(to), { recursive: true });
    await copyFile(from, to).catch((e: Error) => {
      throw new KernelError(`${what} needs ${from}: ${e.message}`);
    });
  }
  await chmod(path.join(dir, 'init'), 0o755);
  await cpio(dir, out);
  return out;
}

/** Builds, boots and checks the MPI guest; ko is the module the cell built. */
export async function runMpiGuest(vmlinuz: string, ko: string, outDir: string, timeoutSeconds: number, progress: Progress): Promise<MpiGuestResult> {
  const t0 = performance.now();
  progress(`guest root: ${guestRootDir} (bookworm, Open MPI; debootstrapped once)`);
  const dir = await ensureGuestRoot(progress);
  const guestOmpi = await debVersion(OMPI_PACKAGE, path.join(dir, 'var/lib/dpkg/status'));
  const hostOmpi = await debVersion(OMPI_PACKAGE);
  if (!guestOmpi || guestOmpi !== hostOmpi) {
    throw new KernelError(`the guest root has ${OMPI_PACKAGE} ${guestOmpi ?? 'missing'} but the host has ${hostOmpi ?? 'none'}: the component and programs built here would not match (rebuild it: ci/kernel-guest-root.sh --rebuild)`);
  }
  const rootCpio = await rootArchive(dir, progress);
  const rootSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const parts = await buildHostParts(progress);
  const buildSeconds = (performance.now() - t1) / 1000;
  const ov = await overlay(outDir, ko, parts);
  const initrd = path.join(outDir, 'mpi-initrd.cpio');
  await execa('bash', ['-c', 'cat "$A" "$B" > "$OUT"'], { env: { A: rootCpio, B: ov, OUT: initrd } });
  progress(`booting the MPI guest (Open MPI ${guestOmpi}, ${GUEST_MEMORY_MB} MiB, timeout ${timeoutSeconds} s)`);
  const boot = await bootGuest(vmlinuz, initrd, path.join(outDir, 'mpi-boot.log'), timeoutSeconds, progress, { memoryMb: GUEST_MEMORY_MB });
  await rm(initrd, { force: true }); // 150 MB, remade in seconds
  const summary = boot.summary.replace(/selftest/g, 'guest checks');
  return { ...boot, summary, rootSeconds, buildSeconds };
}
