// Debian's kernel packages for one series: resolved from the apt lists,
// downloaded once with `apt-get download` and unpacked with dpkg-deb into
// $DICOM_CACHE/kernel (outside git). Nothing is installed on the host: the
// image is only booted in qemu, the headers are only built against.
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { cacheDir } from '../paths.js';
import { KernelError, type KernelSeries } from './versions.js';

export const kernelCacheDir = path.join(cacheDir, 'kernel');
const debsDir = path.join(kernelCacheDir, 'debs');

export interface KernelPackages {
  series: string;
  /** Debian version shared by the source, image and headers, e.g. 6.1.192-3 */
  version: string;
  /** uname -r of the image, e.g. 6.1.0-57-amd64 */
  release: string;
  source: string;
  image: string;
  headers: string[];
}

export interface KernelCache {
  pkgs: KernelPackages;
  /** the unpacked linux-source tree */
  sourceTree: string;
  /** the kbuild directory modules are built against (make -C) */
  headersDir: string;
  vmlinuz: string;
  /** the image's e1000 driver, uncompressed: the NIC of the relay test's two guests */
  nicModule: string;
}

export type Progress = (line: string) => void;

async function apt(args: string[], cmd = 'apt-cache'): Promise<string> {
  const r = await execa(cmd, args, { reject: false, timeout: 120_000 });
  if (r.exitCode !== 0) throw new KernelError(`${cmd} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The candidate linux-source-X and the image/headers packages of exactly that version. */
export async function resolvePackages(k: KernelSeries): Promise<KernelPackages> {
  const policy = await apt(['policy', k.sourcePackage]);
  const version = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  if (!version || version === '(none)') {
    throw new KernelError(
      `${k.sourcePackage} is not in the apt lists; it is in Debian bookworm (and bookworm-security): run apt-get update`,
    );
  }
  const names = (await apt(['search', '--names-only', `^linux-image-${k.series.replace('.', '\\.')}\\.`]))
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.endsWith('-unsigned') && k.releasePattern.test(n.replace(/^linux-image-/, '').replace(/-unsigned$/, '')));
  if (names.length === 0) throw new KernelError(`no linux-image-${k.series}.*-amd64-unsigned package in the apt lists`);
  const madison = await apt(['madison', ...names]);
  const image = madison
    .split('\n')
    .map((l) => l.split('|').map((f) => f.trim()))
    .find((f) => f[1] === version)?.[0];
  if (!image) {
    throw new KernelError(`no amd64 image of version ${version} (the version of ${k.sourcePackage}) among ${names.join(', ')}`);
  }
  const release = image.replace(/^linux-image-/, '').replace(/-unsigned$/, '');
  const headersPkg = `linux-headers-${release}`;
  const deps = (await apt(['depends', `${headersPkg}=${version}`]))
    .split('\n')
    .map((l) => /^\s*Depends:\s*(linux-(?:headers|kbuild)-\S+)/.exec(l)?.[1])
    .filter((d): d is string => Boolean(d));
  return { series: k.series, version, release, source: k.sourcePackage, image, headers: [headersPkg, ...deps] };
}

function debFileName(pkg: string, version: string, arch: string): string {
  return `${pkg}_${version.replace(/:/g, '%3a')}_${arch}.deb`;
}

async function findDeb(pkg: string, version: string): Promise<string | undefined> {
  for (const arch of ['amd64', 'all']) {
    const f = path.join(debsDir, debFileName(pkg, version, arch));
    if (existsSync(f)) return f;
  }
  return undefined;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

/** `apt-get download pkg=version` into the cache, once, printing progress from the growing file. */
async function download(pkg: string, version: string, progress: Progress): Promise<string> {
  const have = await findDeb(pkg, version);
  if (have) return have;
  await mkdir(debsDir, { recursive: true });
  const size = Number(/^Size:\s*(\d+)/m.exec(await apt(['show', '--no-all-versions', `${pkg}=${version}`]))?.[1] ?? 0);
  progress(`downloading ${pkg} ${version} (${mib(size)})`);
  const t0 = performance.now();
  const sub = execa('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${pkg}=${version}`], {
    cwd: debsDir,
    all: true,
    reject: false,
    timeout: 30 * 60_000,
    forceKillAfterDelay: 5000,
  });
  const ticker = setInterval(() => {
    void (async () => {
      for (const f of await readdir(debsDir)) {
        if (!f.startsWith(`${pkg}_`)) continue;
        const got = (await stat(path.join(debsDir, f)).catch(() => undefined))?.size ?? 0;
        progress(`  ${pkg}: ${mib(got)} of ${mib(size)}${size ? ` (${Math.floor((100 * got) / size)}%)` : ''}`);
      }
    })();
  }, 2000);
  const r = await sub.finally(() => clearInterval(ticker));
  const got = await findDeb(pkg, version);
  if (r.exitCode !== 0 || !got) {
    throw new KernelError(`apt-get download ${pkg}=${version} failed: ${String(r.all ?? '').trim().split('\n').slice(-3).join(' ')}`);
  }
  const secs = (performance.now() - t0) / 1000;
  progress(`  ${pkg}: ${mib(size)} in ${secs.toFixed(1)} s`);
  return got;
}

/**
 * Runs an idempotent unpack script under a lock: it builds into DEST.partial
 * and renames it to DEST only when complete, so an interrupted run leaves
 * nothing that looks finished.
 */
async function unpackOnce(dest: string, script: string, env: Record<string, string>): Promise<void> {
  if (existsSync(dest)) return;
  await mkdir(path.dirname(dest), { recursive: true });
  const body = `set -euo pipefail
[ -e "$DEST" ] && exit 0
rm -rf "$DEST.partial"; mkdir -p "$DEST.partial"
${script}
mv "$DEST.partial" "$DEST"`;
  const r = await execa('flock', [`${dest}.lock`, 'bash', '-c', body], {
    env: { ...env, DEST: dest },
    all: true,
    reject: false,
    timeout: 20 * 60_000,
  });
  if (r.exitCode !== 0) throw new KernelError(`unpacking into ${dest} failed: ${String(r.all ?? '').trim().slice(-600)}`);
}

/** Downloads and unpacks everything one cell needs; instant when cached. */
export async function prepareKernel(k: KernelSeries, progress: Progress): Promise<KernelCache> {
  const pkgs = await resolvePackages(k);
  const dir = path.join(kernelCacheDir, pkgs.release, pkgs.version);
  const src = await download(pkgs.source, pkgs.version, progress);
  const image = await download(pkgs.image, pkgs.version, progress);
  const headers: string[] = [];
  for (const h of pkgs.headers) headers.push(await download(h, pkgs.version, progress));

  const sourceRoot = path.join(dir, 'source');
  if (!existsSync(sourceRoot)) progress(`unpacking ${pkgs.source} (about 1.5 GB, ~20 s)`);
  await unpackOnce(
    sourceRoot,
    `dpkg-deb --fsys-tarfile "$DEB" | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' | tar -xJ -C "$DEST.partial"`,
    { DEB: src },
  );
  const sourceTree = path.join(sourceRoot, `linux-source-${k.series}`);

  // The headers' Makefile includes the common headers by absolute /usr/src path; point it into the cache.
  const headersRoot = path.join(dir, 'headers');
  const headersDir = path.join(headersRoot, 'usr/src', `linux-headers-${pkgs.release}`);
  await unpackOnce(
    headersRoot,
    `for d in ${headers.map((_, i) => `"$H${i}"`).join(' ')}; do dpkg-deb -x "$d" "$DEST.partial"; done
mk="$DEST.partial/usr/src/linux-headers-$RELEASE/Makefile"
sed -i "s|^include /usr/src/|include $DEST/usr/src/|" "$mk"
grep -q "^include $DEST/usr/src/" "$mk"`,
    { RELEASE: pkgs.release, ...Object.fromEntries(headers.map((h, i) => [`H${i}`, h])) },
  );

  const bootDir = path.join(dir, 'boot');
  await unpackOnce(bootDir, `dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$DEST.partial" --strip-components=2 "./boot/vmlinuz-$RELEASE"`, {
    DEB: image,
    RELEASE: pkgs.release,
  });
  // Debian builds every NIC driver as a module; newer images compress them.
  const nicDir = path.join(dir, 'nic');
  await unpackOnce(
    nicDir,
    `dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$DEST.partial" --wildcards '*/e1000/e1000.ko*'
ko=$(find "$DEST.partial" -name 'e1000.ko*' | head -n 1)
[ -n "$ko" ] || { echo "no e1000.ko in $DEB" >&2; exit 1; }
case "$ko" in
  *.xz) xz -dc "$ko" > "$DEST.partial/e1000.ko.new" ;;
  *.zst) zstd -qdc "$ko" > "$DEST.partial/e1000.ko.new" ;;
  *) cp "$ko" "$DEST.partial/e1000.ko.new" ;;
esac
find "$DEST.partial" -mindepth 1 -maxdepth 1 ! -name e1000.ko.new -exec rm -rf {} +
mv "$DEST.partial/e1000.ko.new" "$DEST.partial/e1000.ko"`,
    { DEB: image },
  );
  await writeFile(path.join(dir, 'packages.json'), JSON.stringify(pkgs, null, 2) + '\n');
  return { pkgs, sourceTree, headersDir, vmlinuz: path.join(bootDir, `vmlinuz-${pkgs.release}`), nicModule: path.join(nicDir, 'e1000.ko') };
}
