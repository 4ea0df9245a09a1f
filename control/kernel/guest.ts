// Boots the real Debian kernel in qemu TCG with a static-busybox initramfs
// whose /init loads the module and runs the selftest; the selftest's TAP
// comes back on the serial console between markers, with host timestamps
// for the boot, the module load and the selftest.
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import Handlebars from 'handlebars';
import { execa } from 'execa';
import { type Progress } from './packages.js';
import { contextFor, patchesDir } from './render.js';
import { KernelError } from './versions.js';

export const BUSYBOX = '/bin/busybox';

/** Fails unless busybox is static: the initramfs has no libraries. */
async function checkBusybox(): Promise<void> {
  const r = await execa('ldd', [BUSYBOX], { reject: false });
  if (!/not a dynamic executable/.test(`${r.stdout}${r.stderr}`)) {
    throw new KernelError(`${BUSYBOX} is missing or not static; install the busybox-static package (ci/provision.sh does)`);
  }
}

export async function buildInitramfs(series: string, ko: string, selftest: string, outDir: string): Promise<string> {
  await checkBusybox();
  const dir = path.join(outDir, 'initramfs');
  const out = path.join(outDir, 'initramfs.cpio.gz');
  await rm(dir, { recursive: true, force: true });
  for (const d of ['bin', 'lib/modules', 'proc', 'sys', 'dev']) await mkdir(path.join(dir, d), { recursive: true });
  await copyFile(BUSYBOX, path.join(dir, 'bin/busybox'));
  await copyFile(ko, path.join(dir, 'lib/modules/dicom_mbox.ko'));
  await copyFile(selftest, path.join(dir, 'bin/dicom_mbox_test'));
  const init = Handlebars.compile(await readFile(path.join(patchesDir, 'guest', 'init'), 'utf8'), { noEscape: true, strict: true });
  await writeFile(path.join(dir, 'init'), init(contextFor(series, false)));
  await chmod(path.join(dir, 'init'), 0o755);
  const r = await execa('bash', ['-c', 'set -o pipefail; cd "$DIR" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 | gzip -1 > "$OUT"'], {
    env: { DIR: dir, OUT: out },
    reject: false,
  });
  if (r.exitCode !== 0) throw new KernelError(`building the initramfs failed: ${r.stderr.trim()}`);
  return out;
}

export interface GuestTimings {
  /** qemu start to the guest's /init running */
  bootSeconds?: number;
  /** the kernel's own uptime when /init ran (TCG-emulated time) */
  guestUptimeAtInit?: number;
  moduleLoadSeconds?: number;
  selftestSeconds?: number;
  /** qemu start to qemu exit */
  totalSeconds: number;
}

export interface TapSummary {
  planned: number;
  passed: number;
  failed: number;
  skipped: number;
  lines: string[];
}

export interface BootResult {
  ok: boolean;
  summary: string;
  details: string[];
  tap: TapSummary;
  timings: GuestTimings;
  taint?: string;
  log: string;
  seconds: number;
}

export function parseTap(lines: string[]): TapSummary {
  const tapLines = lines.filter((l) => /^(TAP version|1\.\.\d+|ok |not ok |# |Bail out!)/.test(l));
  const planned = Number(/^1\.\.(\d+)/.exec(tapLines.find((l) => l.startsWith('1..')) ?? '')?.[1] ?? 0);
  const results = tapLines.filter((l) => /^(ok|not ok) \d+/.test(l));
  const skipped = results.filter((l) => l.startsWith('ok ') && /# SKIP/i.test(l)).length;
  const failed = results.filter((l) => l.startsWith('not ok')).length;
  return { planned, passed: results.length - failed - skipped, failed, skipped, lines: tapLines };
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1bc/g;

export interface BootOptions {
  /** guest RAM; an initramfs root needs room for itself unpacked */
  memoryMb?: number;
  /** qemu's network arguments; the default is no network at all */
  net?: string[];
  /** more kernel command line (read by the guest's /init from /proc/cmdline) */
  append?: string;
}

export async function bootGuest(vmlinuz: string, initrd: string, logPath: string, timeoutSeconds: number, progress: Progress, opts: BootOptions = {}): Promise<BootResult> {
  const args = [
    '--kill-after=10', String(timeoutSeconds),
    // Two vCPUs (multi-threaded TCG) so the selftest's concurrent senders really run in parallel.
    'qemu-system-x86_64', '-accel', 'tcg', '-m', String(opts.memoryMb ?? 512), '-smp', '2',
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', ...(opts.net ?? ['-nic', 'none']), '-no-reboot',
    '-kernel', vmlinuz, '-initrd', initrd,
    '-append', `console=ttyS0 quiet panic=-1${opts.append ? ` ${opts.append}` : ''}`,
  ];
  const log = createWriteStream(logPath);
  log.write(`# timeout ${args.join(' ')}\n`);
  const t0 = performance.now();
  const at = (): number => (performance.now() - t0) / 1000;
  const marks: Record<string, number> = {};
  const between: string[] = [];
  let inTap = false;
  let rc: number | undefined;
  let taint: string | undefined;
  let uptime: number | undefined;
  const sub = execa('timeout', args, { all: true, reject: false, stdin: 'ignore', timeout: (timeoutSeconds + 30) * 1000, forceKillAfterDelay: 5000 });
  for await (const raw of sub.iterable({ from: 'all' })) {
    const line = raw.replace(ANSI, '').replace(/\r/g, '');
    log.write(`[${at().toFixed(3)}] ${line}\n`);
    if (line.startsWith('DICOM-GUEST up')) {
      marks.up = at();
      uptime = Number(/uptime=([\d.]+)/.exec(line)?.[1]);
      progress(`  guest /init running after ${marks.up.toFixed(1)} s (kernel uptime ${uptime} s)`);
    } else if (line.startsWith('DICOM-GUEST loaded')) {
      marks.loaded = at();
      taint = /taint=(\d+)/.exec(line)?.[1];
    } else if (line.startsWith('DICOM-TAP-BEGIN')) {
      marks.begin = at();
      inTap = true;
    } else if (line.startsWith('DICOM-TAP-END')) {
      marks.end = at();
      inTap = false;
      rc = Number(/rc=(\d+)/.exec(line)?.[1]);
    } else if (inTap) {
      between.push(line);
      if (/^(ok|not ok) /.test(line)) progress(`  guest: ${line}`);
    }
  }
  const r = await sub;
  const totalSeconds = at();
  await new Promise<void>((resolve) => log.end(resolve));
  const tap = parseTap(between);
  const timings: GuestTimings = {
    bootSeconds: marks.up,
    guestUptimeAtInit: uptime,
    moduleLoadSeconds: marks.up !== undefined && marks.loaded !== undefined ? marks.loaded - marks.up : undefined,
    selftestSeconds: marks.begin !== undefined && marks.end !== undefined ? marks.end - marks.begin : undefined,
    totalSeconds,
  };
  const problems: string[] = [];
  if (r.exitCode === 124 || r.exitCode === 137 || r.timedOut) problems.push(`qemu timed out after ${timeoutSeconds} s`);
  else if (r.exitCode !== 0) problems.push(`qemu exited with ${r.exitCode ?? r.signal}`);
  if (marks.up === undefined) problems.push('the guest never ran /init');
  else if (marks.loaded === undefined) problems.push('insmod failed');
  else if (marks.end === undefined) problems.push('the selftest did not finish');
  if (tap.planned === 0) problems.push('no TAP plan from the selftest');
  else if (tap.passed + tap.failed + tap.skipped !== tap.planned) {
    problems.push(`selftest planned ${tap.planned} tests, reported ${tap.passed + tap.failed + tap.skipped}`);
  }
  if (tap.failed) problems.push(`${tap.failed} selftests failed`);
  if (rc !== undefined && rc !== 0 && !tap.failed) problems.push(`selftest exited with ${rc}`);
  if (tap.lines.some((l) => l.startsWith('Bail out!'))) problems.push('selftest bailed out');
  const summary =
    `selftest ${tap.passed}/${tap.planned} passed` +
    `${tap.skipped ? `, ${tap.skipped} skipped` : ''}${tap.failed ? `, ${tap.failed} failed` : ''}` +
    ` (boot ${timings.bootSeconds?.toFixed(1) ?? '?'} s, selftest ${timings.selftestSeconds?.toFixed(1) ?? '?'} s, qemu ${totalSeconds.toFixed(1)} s)`;
  const details = problems.length ? [...problems, ...tap.lines.filter((l) => /^not ok|^# /.test(l)), `serial log: ${logPath}`] : [];
  return { ok: problems.length === 0, summary, details, tap, timings, taint, log: logPath, seconds: totalSeconds };
}
