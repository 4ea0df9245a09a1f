// One cell of the kernel matrix: everything `dicomctl kernel test --kernel X`
// checks for one kernel series, with timings, as TAP or as JSON.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { applyCheck, buildModule, buildSelftest, checkpatch, type CheckResult, dkmsInstall } from './checks.js';
import { runMpiGuest } from './mpiguest.js';
import { type RelayFigures, runRelayGuests } from './relayguests.js';
import { bootGuest, buildInitramfs, type BootResult, type GuestTimings, type TapSummary } from './guest.js';
import { withDirLock } from '../dirlock.js';
import { type KernelPackages, prepareKernel, type Progress } from './packages.js';
import { renderKernel } from './render.js';
import { makeSeries } from './series.js';
import { findSeries } from './versions.js';

export interface CellOptions {
  series: string;
  /** where the series, DKMS dir, module, initramfs and logs go */
  outDir: string;
  boot: boolean;
  bootTimeoutSeconds: number;
  /** also run a two-rank MPI job over the kernel mailboxes in a bookworm guest */
  mpi?: boolean;
  /** also carry mailbox messages between two guests through dicomd's relay */
  relay?: boolean;
  progress: Progress;
}

export interface CheckReport extends CheckResult {
  name: string;
  /** true when an earlier failure left nothing to check */
  notRun?: boolean;
}

export interface CellResult {
  kernel: string;
  ok: boolean;
  packages?: KernelPackages;
  checks: CheckReport[];
  selftest?: TapSummary;
  timings: GuestTimings | undefined;
  /** the MPI guest's TAP and timings (--mpi) */
  mpi?: { tap: TapSummary; timings: GuestTimings; rootSeconds: number; buildSeconds: number };
  /** the two relay guests' TAP, timings and figures (--relay) */
  relay?: { tap: TapSummary; timings: GuestTimings[]; figures: RelayFigures; buildSeconds: number };
  seconds: number;
  artifacts: { series: string[]; dkms?: string; module?: string; initramfs?: string; bootLog?: string; mpiBootLog?: string; relayBootLogs?: string[] };
}

const notRun = (name: string, why: string): CheckReport => ({ name, ok: false, notRun: true, summary: `not run: ${why}`, details: [], seconds: 0 });

export async function runCell(o: CellOptions): Promise<CellResult> {
  return withDirLock(o.outDir, o.progress, () => runCellLocked(o));
}

async function runCellLocked(o: CellOptions): Promise<CellResult> {
  const t0 = performance.now();
  const k = findSeries(o.series);
  const checks: CheckReport[] = [];
  const result: CellResult = { kernel: o.series, ok: false, checks, timings: undefined, seconds: 0, artifacts: { series: [] } };
  const add = (name: string, r: CheckResult) => {
    checks.push({ name, ...r });
    o.progress(`${r.ok ? 'ok' : 'FAILED'}: ${name}: ${r.summary} (${r.seconds.toFixed(1)} s)`);
    for (const d of r.ok ? [] : r.details) o.progress(`    ${d}`);
    return r.ok;
  };
  await rm(o.outDir, { recursive: true, force: true });
  await mkdir(o.outDir, { recursive: true });

  o.progress(`kernel ${o.series}: resolving and caching Debian's packages`);
  const tp = performance.now();
  const cache = await prepareKernel(k, o.progress);
  result.packages = cache.pkgs;
  add(`Debian packages for ${o.series}`, {
    ok: true,
    summary: `${cache.pkgs.source} ${cache.pkgs.version}, ${cache.pkgs.image}, ${cache.pkgs.headers.join(' ')}`,
    details: [],
    seconds: (performance.now() - tp) / 1000,
  });

  o.progress('rendering kernel-patches/ and making the series');
  const rendered = await renderKernel(o.series, o.outDir);
  const series = await makeSeries(rendered.tree, cache.sourceTree, o.outDir);
  result.artifacts.series = series.patches;
  result.artifacts.dkms = rendered.dkms;

  o.progress(`git apply --check against ${cache.pkgs.source} ${cache.pkgs.version}`);
  add(`series applies to ${cache.pkgs.source} ${cache.pkgs.version} (git apply --check)`, await applyCheck(cache.sourceTree, series.patches));
  o.progress('checkpatch.pl --strict');
  add('checkpatch.pl --strict is clean', await checkpatch(cache.sourceTree, series.patches));

  o.progress(`building the DKMS module against linux-headers-${cache.pkgs.release}`);
  const mod = await buildModule(rendered.dkms, cache.headersDir, cache.pkgs.release, path.join(o.outDir, 'dkms-tree'), o.progress);
  const moduleOk = add(`DKMS module builds against linux-headers-${cache.pkgs.release}`, mod);
  result.artifacts.module = mod.ko;
  o.progress('dkms add, build and install (a private DKMS tree)');
  add(`dkms add/build/install for ${cache.pkgs.release}`, await dkmsInstall(rendered.dkms, cache.headersDir, cache.pkgs.release, path.join(o.outDir, 'dkms-install')));

  const selftestBin = path.join(o.outDir, 'dicom_mbox_test');
  const selftestOk = add('selftest builds (static)', await buildSelftest(rendered.tree, selftestBin));

  const bootName = `linux-image-${cache.pkgs.release} boots in qemu TCG, loads the module, selftest passes`;
  let boot: BootResult | undefined;
  if (!o.boot) {
    checks.push({ name: bootName, ok: true, summary: 'skipped (--no-boot)', details: [], seconds: 0 });
  } else if (!moduleOk || !selftestOk || !mod.ko) {
    checks.push(notRun(bootName, 'the module or the selftest did not build'));
  } else {
    const initrd = await buildInitramfs(o.series, mod.ko, selftestBin, o.outDir);
    result.artifacts.initramfs = initrd;
    o.progress(`booting ${cache.pkgs.release} in qemu TCG (timeout ${o.bootTimeoutSeconds} s)`);
    boot = await bootGuest(cache.vmlinuz, initrd, path.join(o.outDir, 'boot.log'), o.bootTimeoutSeconds, o.progress);
    add(bootName, boot);
    result.selftest = boot.tap;
    result.timings = boot.timings;
    result.artifacts.bootLog = boot.log;
  }
  if (o.mpi) {
    const mpiName = `a two-rank MPI job over the kernel mailboxes in a bookworm guest on linux-image-${cache.pkgs.release}`;
    if (!moduleOk || !mod.ko) {
      checks.push(notRun(mpiName, 'the module did not build'));
    } else {
      const m = await runMpiGuest(cache.vmlinuz, mod.ko, o.outDir, o.bootTimeoutSeconds, o.progress).catch(
        (e: Error): CheckResult => ({ ok: false, summary: e.message.split('\n')[0]!, details: e.message.split('\n').slice(1), seconds: 0 }),
      );
      add(mpiName, m);
      if ('tap' in m) {
        result.mpi = { tap: m.tap, timings: m.timings, rootSeconds: m.rootSeconds, buildSeconds: m.buildSeconds };
        result.artifacts.mpiBootLog = m.log;
      }
    }
  }
  if (o.relay) {
    const relayName = `two nodes on linux-image-${cache.pkgs.release} carry mailbox messages through dicomd's relay`;
    if (!moduleOk || !mod.ko) {
      checks.push(notRun(relayName, 'the module did not build'));
    } else {
      const m = await runRelayGuests(cache.vmlinuz, mod.ko, cache.nicModule, o.outDir, o.bootTimeoutSeconds, o.progress).catch(
        (e: Error): CheckResult => ({ ok: false, summary: e.message.split('\n')[0]!, details: e.message.split('\n').slice(1), seconds: 0 }),
      );
      add(relayName, m);
      if ('guests' in m) {
        result.relay = { tap: m.tap, timings: m.guests.map((g) => g.timings), figures: m.figures, buildSeconds: m.buildSeconds };
        result.artifacts.relayBootLogs = m.guests.map((g) => g.log);
      }
    }
  }
  result.ok = checks.every((c) => c.ok);
  result.seconds = (performance.now() - t0) / 1000;
  await writeFile(path.join(o.outDir, 'result.json'), JSON.stringify(result, null, 2) + '\n');
  return result;
}

/** The cell as TAP 13; the guest's own TAP is a subtest of the boot check. */
export function cellTap(r: CellResult): string {
  const out = ['TAP version 13', `1..${r.checks.length}`];
  r.checks.forEach((c, i) => {
    if (c.name.includes('boots') && r.selftest?.lines.length) {
      out.push('    # Subtest: selftest in the guest', ...r.selftest.lines.map((l) => `    ${l}`));
    }
    if (c.name.includes('MPI job') && r.mpi?.tap.lines.length) {
      out.push('    # Subtest: the MPI guest', ...r.mpi.tap.lines.map((l) => `    ${l}`));
    }
    if (c.name.includes("dicomd's relay") && r.relay?.tap.lines.length) {
      out.push('    # Subtest: the relay guests', ...r.relay.tap.lines.map((l) => `    ${l}`));
    }
    const skip = c.summary.startsWith('skipped') ? ' # SKIP' : '';
    out.push(`${c.ok ? 'ok' : 'not ok'} ${i + 1} - ${c.name}: ${c.summary.replace(/#/g, '')}${skip}`);
    if (!c.ok) for (const d of c.details) out.push(`# ${d}`);
  });
  const t = r.timings;
  if (t) {
    out.push(
      `# timings: boot ${t.bootSeconds?.toFixed(2) ?? '?'} s (guest uptime ${t.guestUptimeAtInit ?? '?'} s), ` +
        `module load ${t.moduleLoadSeconds?.toFixed(2) ?? '?'} s, selftest ${t.selftestSeconds?.toFixed(2) ?? '?'} s, qemu ${t.totalSeconds.toFixed(2)} s`,
    );
  }
  const m = r.mpi;
  if (m) {
    out.push(
      `# MPI guest: root ${m.rootSeconds.toFixed(1)} s, host builds ${m.buildSeconds.toFixed(1)} s, boot ${m.timings.bootSeconds?.toFixed(2) ?? '?'} s, ` +
        `checks ${m.timings.selftestSeconds?.toFixed(2) ?? '?'} s, qemu ${m.timings.totalSeconds.toFixed(2)} s`,
    );
  }
  const rl = r.relay;
  if (rl) {
    out.push(
      `# relay guests: host builds ${rl.buildSeconds.toFixed(1)} s, boot ${rl.timings.map((x) => x.bootSeconds?.toFixed(2) ?? '?').join(' / ')} s, ` +
        `checks ${rl.timings.map((x) => x.selftestSeconds?.toFixed(2) ?? '?').join(' / ')} s, qemu ${rl.timings.map((x) => x.totalSeconds.toFixed(2)).join(' / ')} s`,
    );
  }
  out.push(`# kernel ${r.kernel}: ${r.ok ? 'pass' : 'FAIL'} in ${r.seconds.toFixed(1)} s`);
  return out.join('\n') + '\n';
}
