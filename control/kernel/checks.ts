// The checks of one cell that run on the host: the series applies to the
// version's source, checkpatch.pl --strict is clean, the DKMS module builds
// against the version's headers (with the MAKE line of its own dkms.conf),
// and the selftest builds as a static binary for the guest.
import path from 'node:path';
import { readFile, rm } from 'node:fs/promises';
import { execa } from 'execa';
import { type Progress } from './packages.js';
import { dkmsPackage, selftestSource, uapiHeader } from './render.js';

export interface CheckResult {
  ok: boolean;
  /** one line for the TAP description */
  summary: string;
  /** what to show when it failed */
  details: string[];
  seconds: number;
}

function tail(text: string, n = 30): string[] {
  return text.trim().split('\n').slice(-n);
}

async function timedCheck(fn: () => Promise<Omit<CheckResult, 'seconds'>>): Promise<CheckResult> {
  const t0 = performance.now();
  const r = await fn();
  return { ...r, seconds: (performance.now() - t0) / 1000 };
}

export function applyCheck(sourceTree: string, patches: string[]): Promise<CheckResult> {
  return timedCheck(async () => {
    // One stream, so a patch sees the files as the previous ones left them (as git am would).
    const input = (await Promise.all(patches.map((p) => readFile(p, 'utf8')))).join('');
    const r = await execa('git', ['apply', '--check', '-v'], { cwd: sourceTree, input, all: true, reject: false, timeout: 120_000 });
    const n = patches.length;
    return r.exitCode === 0
      ? { ok: true, summary: `${n} patches apply`, details: [] }
      : { ok: false, summary: `git apply --check failed`, details: tail(String(r.all ?? '')) };
  });
}

export function checkpatch(sourceTree: string, patches: string[]): Promise<CheckResult> {
  return timedCheck(async () => {
    const r = await execa('perl', ['scripts/checkpatch.pl', '--strict', '--color=never', ...patches], {
      cwd: sourceTree,
      all: true,
      reject: false,
      timeout: 300_000,
    });
    const out = String(r.all ?? '');
    const totals = [...out.matchAll(/^total: (\d+) errors, (\d+) warnings, (\d+) checks, (\d+) lines checked/gm)];
    const sum = (i: number) => totals.reduce((a, m) => a + Number(m[i]), 0);
    const clean = r.exitCode === 0 && totals.length === patches.length && sum(1) + sum(2) + sum(3) === 0;
    const summary = `${sum(1)} errors, ${sum(2)} warnings, ${sum(3)} checks in ${sum(4)} lines of ${totals.length} patches`;
    const findings = out.split('\n').filter((l) => /^(ERROR|WARNING|CHECK):|^#\d+: FILE:/.test(l));
    return { ok: clean, summary, details: clean ? [] : findings.length ? findings.slice(0, 40) : tail(out) };
  });
}

export interface ModuleBuild extends CheckResult {
  ko?: string;
  vermagic?: string;
}

/**
 * Builds the module the way DKMS would: the package copied to
 * $dkms_tree/NAME/VERSION/build, dkms.conf sourced with kernel_source_dir
 * and kernelver set, its BUILD_EXCLUSIVE_KERNEL honoured and its MAKE[0]
 * run. Any compiler warning fails the check.
 */
export async function buildModule(dkmsDir: string, headersDir: string, release: string, work: string, progress: Progress): Promise<ModuleBuild> {
  const t0 = performance.now();
  await rm(work, { recursive: true, force: true });
  const build = path.join(work, dkmsPackage.name, dkmsPackage.version, 'build');
  const script = `set -euo pipefail
mkdir -p "$(dirname "$BUILD")"
cp -r "$SRC" "$BUILD"
dkms_tree="$WORK" kernel_source_dir="$KDIR" kernelver="$RELEASE"
source "$BUILD/dkms.conf"
[[ $kernelver =~ $BUILD_EXCLUSIVE_KERNEL ]] || { echo "dkms.conf: BUILD_EXCLUSIVE_KERNEL excludes $kernelver"; exit 3; }
echo "dkms.conf MAKE[0]: \${MAKE[0]}"
eval "nice -n 10 \${MAKE[0]} -j2 W=1"
test -f "$BUILD/$BUILT_MODULE_NAME.ko"`;
  const sub = execa('bash', ['-c', script], {
    env: { SRC: dkmsDir, BUILD: build, WORK: work, KDIR: headersDir, RELEASE: release },
    all: true,
    reject: false,
    timeout: 15 * 60_000,
    forceKillAfterDelay: 5000,
  });
  const lines: string[] = [];
  for await (const line of sub.iterable({ from: 'all' })) {
    lines.push(line);
    if (/^\s+(CC|LD|MODPOST|BTF)\b|dkms.conf/.test(line)) progress(`  ${line.trim()}`);
  }
  const r = await sub;
  const seconds = (performance.now() - t0) / 1000;
  const warnings = lines.filter((l) => /\bwarning:/.test(l));
  if (r.exitCode !== 0) return { ok: false, summary: `make failed (exit ${r.exitCode ?? r.signal})`, details: lines.slice(-30), seconds };
  const ko = path.join(build, 'dicom_mbox.ko');
  const vermagic = (await execa('modinfo', ['-F', 'vermagic', ko], { reject: false })).stdout.trim();
  if (warnings.length) return { ok: false, summary: `${warnings.length} compiler warnings`, details: warnings, seconds, ko, vermagic };
  if (!vermagic.startsWith(`${release} `)) {
    return { ok: false, summary: `vermagic "${vermagic}" does not match ${release}`, details: [], seconds, ko, vermagic };
  }
  return { ok: true, summary: `dicom_mbox.ko, vermagic ${vermagic}`, details: [], seconds, ko, vermagic };
}

/**
 * What an administrator runs: `dkms add`, `dkms build` and `dkms install`
 * with Debian's dkms, on the rendered package dir. DKMS keeps its trees in
 * /var/lib/dkms, /usr/src and /lib/modules unless /etc/dkms/framework.conf
 * says otherwise; so it runs in a private mount namespace whose /etc/dkms
 * holds a framework.conf pointing all three into `work`, and the host's own
 * DKMS state is never touched. The module is not signed (no sign-file in
 * the cached headers), as for the boot check.
 */
export async function dkmsInstall(dkmsDir: string, headersDir: string, release: string, work: string): Promise<ModuleBuild> {
  const t0 = performance.now();
  const version = await execa('dkms', ['--version'], { reject: false });
  if (version.exitCode !== 0) {
    return { ok: false, summary: 'the dkms tool is missing (apt-get install dkms; ci/provision.sh does)', details: [], seconds: 0 };
  }
  await rm(work, { recursive: true, force: true });
  const { name, version: v } = dkmsPackage;
  const script = `set -euo pipefail
mkdir -p "$WORK/etc" "$WORK/tree" "$WORK/src" "$WORK/modules/$RELEASE"
cp -r "$SRC" "$WORK/src/$NAME-$VER"
printf 'dkms_tree="%s"\nsource_tree="%s"\ninstall_tree="%s"\n' "$WORK/tree" "$WORK/src" "$WORK/modules" > "$WORK/etc/framework.conf"
mount --bind "$WORK/etc" /etc/dkms
dkms add -m "$NAME" -v "$VER"
nice -n 10 dkms build -m "$NAME" -v "$VER" -k "$RELEASE" --kernelsourcedir "$KDIR"
dkms install --no-depmod -m "$NAME" -v "$VER" -k "$RELEASE" --kernelsourcedir "$KDIR"
dkms status -m "$NAME" -v "$VER" -k "$RELEASE"`;
  const r = await execa('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], {
    env: { SRC: dkmsDir, WORK: work, KDIR: headersDir, RELEASE: release, NAME: name, VER: v },
    all: true,
    reject: false,
    timeout: 15 * 60_000,
  });
  const out = String(r.all ?? '');
  const seconds = (performance.now() - t0) / 1000;
  const dkmsVersion = version.stdout.trim();
  if (r.exitCode !== 0) return { ok: false, summary: `${dkmsVersion} failed (exit ${r.exitCode ?? r.signal})`, details: tail(out), seconds };
  const ko = path.join(work, 'modules', release, 'updates', 'dkms', 'dicom_mbox.ko');
  const vermagic = (await execa('modinfo', ['-F', 'vermagic', ko], { reject: false })).stdout.trim();
  const status = new RegExp(`^${name}/${v}, ${release.replace(/[.+]/g, '\\$&')}, x86_64: installed`, 'm');
  if (!status.test(out) || !vermagic.startsWith(`${release} `)) {
    return { ok: false, summary: `dkms status or the installed module is wrong (vermagic "${vermagic}")`, details: tail(out), seconds, ko, vermagic };
  }
  return { ok: true, summary: `${dkmsVersion}: add, build, install; updates/dkms/dicom_mbox.ko, vermagic ${vermagic}`, details: [], seconds, ko, vermagic };
}

/** The selftest, static, so the guest needs nothing but busybox. */
export async function buildSelftest(renderedTree: string, out: string): Promise<CheckResult> {
  return timedCheck(async () => {
    const r = await execa(
      'gcc',
      ['-std=gnu11', '-static', '-O2', '-Wall', '-Wextra', '-Werror', '-isystem', path.join(renderedTree, path.dirname(path.dirname(uapiHeader))),
        path.join(renderedTree, selftestSource), '-o', out],
      { all: true, reject: false, timeout: 120_000 },
    );
    return r.exitCode === 0
      ? { ok: true, summary: 'static dicom_mbox_test', details: [] }
      : { ok: false, summary: 'gcc failed', details: tail(String(r.all ?? '')) };
  });
}
