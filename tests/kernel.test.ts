// The kernel side (issue 6): the mailbox driver rendered per kernel version
// from one template set, and the 6.1 cell end to end: the series applies to
// linux-source-6.1 and is checkpatch --strict clean, the DKMS module builds
// against linux-headers-6.1, and Debian's linux-image-6.1 boots in qemu TCG,
// loads it and passes the selftest (TAP from the guest). The first kernel's
// cell runs with --mpi: a bookworm guest (cached root, Open MPI 4.1.4) runs
// libdicom's kernel-backend test and a two-rank MPI pingpong over self,dicom
// whose messages must all have gone through the mailboxes, and with --relay:
// two guests, each a node with its own dicomd holding the relay, exchange
// messages whose every copy crosses both relays. The 6.12 cell runs
// behind `npm run test:kernel-matrix` (or `dicomctl kernel test --kernel 6.12`).
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { type CellResult } from '../control/kernel/cell.js';
import { applyCheck, checkpatch } from '../control/kernel/checks.js';
import { parseTap } from '../control/kernel/guest.js';
import { prepareKernel } from '../control/kernel/packages.js';
import { renderKernel } from '../control/kernel/render.js';
import { addMaintainers } from '../control/kernel/series.js';
import { featuresOf, findSeries } from '../control/kernel/versions.js';
import { guestRootDir } from '../control/kernel/mpiguest.js';
import { buildDir, root } from '../control/paths.js';
import { dicomctl, isRoot } from './helpers/cli.js';

const kernels = (process.env.DICOM_KERNELS ?? '6.1').split(',').filter(Boolean);

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(...(e.isDirectory() ? await walk(p) : [p]));
  }
  return out;
}

test('kernel features follow the version', (t) => {
  t.deepEqual(featuresOf('6.1'), { constDevnode: false, constClass: false, countedBy: false });
  t.deepEqual(featuresOf('6.12'), { constDevnode: true, constClass: true, countedBy: true });
  t.deepEqual(featuresOf('6.4'), { constDevnode: true, constClass: true, countedBy: false });
  t.throws(() => findSeries('5.10'), { message: /unknown kernel "5.10"; supported: 6.1, 6.12/ });
});

test('one template set renders both versions, differing only where the kernel API does', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-kernel-render-'));
  try {
    const old = await renderKernel('6.1', path.join(tmp, '6.1'));
    const cur = await renderKernel('6.12', path.join(tmp, '6.12'));
    const read = (base: string, f: string) => readFile(path.join(base, f), 'utf8');
    const main61 = await read(old.tree, 'drivers/misc/dicom/main.c');
    const main612 = await read(cur.tree, 'drivers/misc/dicom/main.c');
    t.regex(main61, /class_create\(THIS_MODULE, "dicom"\)/);
    t.regex(main61, /static char \*dcm_devnode\(struct device \*dev/);
    t.notRegex(main61, /class_register\(&dcm_class\)/);
    t.regex(main612, /class_register\(&dcm_class\)/);
    t.regex(main612, /static const struct class dcm_class = \{/);
    t.regex(main612, /static char \*dcm_devnode\(const struct device \*dev/);
    t.notRegex(main612, /class_create/);
    t.regex(await read(cur.tree, 'drivers/misc/dicom/dicom_mbox.h'), /data\[\] __counted_by\(len\);/);
    t.regex(await read(old.tree, 'drivers/misc/dicom/dicom_mbox.h'), /data\[\];/);
    // The uapi header, the filters and the selftest are the same for every version.
    for (const f of ['include/uapi/linux/dicom_mbox.h', 'drivers/misc/dicom/mailbox.c', 'tools/testing/selftests/dicom_mbox/dicom_mbox_test.c']) {
      t.is(await read(old.tree, f), await read(cur.tree, f), f);
    }
    // DKMS form: its own Makefile branch finds the uapi header; dkms.conf is pinned to the series.
    t.regex(await read(old.dkms, 'Makefile'), /ccflags-y \+= -I\$\(src\)\/include\/uapi/);
    t.notRegex(await read(old.tree, 'drivers/misc/dicom/Makefile'), /ccflags/);
    t.regex(await read(old.dkms, 'dkms.conf'), /BUILD_EXCLUSIVE_KERNEL="\^6\\\.1\\\."/);
    t.regex(await read(cur.dkms, 'dkms.conf'), /BUILD_EXCLUSIVE_KERNEL="\^6\\\.12\\\."/);
    t.true(existsSync(path.join(old.dkms, 'include/uapi/linux/dicom_mbox.h')));
    for (const f of [...(await walk(old.tree)), ...(await walk(cur.dkms))]) {
      t.notRegex(await readFile(f, 'utf8'), /\{\{|\}\}/, `template syntax left in ${f}`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('MAINTAINERS: the section goes where it sorts, its file patterns stay sorted', (t) => {
  const text = ['Maintainers List', '----------------', '', 'ALPHA', 'M:\ta', 'F:\ta/', '', 'Zulu misplaced', 'M:\tz', '', 'BRAVO', 'M:\tb', '', 'ECHO', 'M:\te', 'F:\te/', ''].join('\n');
  const spec = { title: 'DICOM MAILBOX DRIVER', entries: ['M:\tme', 'S:\tMaintained'] };
  const once = addMaintainers(text, spec, ['include/x.h']);
  const twice = addMaintainers(once, spec, ['drivers/misc/dicom/', 'Documentation/x.rst']);
  const lines = twice.split('\n');
  const at = lines.indexOf('DICOM MAILBOX DRIVER');
  t.is(lines[at - 2], 'M:\tb', 'after BRAVO, despite the misplaced Zulu before it');
  t.deepEqual(lines.slice(at + 1, at + 7), ['M:\tme', 'S:\tMaintained', 'F:\tDocumentation/x.rst', 'F:\tdrivers/misc/dicom/', 'F:\tinclude/x.h', '']);
  t.is(lines[at + 7], 'ECHO');
});

test('guest TAP is counted, and a failure or a short run is visible', (t) => {
  const ok = parseTap(['TAP version 13', '1..3', 'ok 1 - a', 'ok 2 - b # SKIP no root', 'not ok 3 - c', '# why', '[  1.0] kernel noise']);
  t.like(ok, { planned: 3, passed: 1, skipped: 1, failed: 1 });
  t.false(ok.lines.some((l) => l.includes('kernel noise')));
});

test('dicomctl kernel test: usage errors exit 2 with the supported versions', async (t) => {
  const none = await dicomctl(['kernel', 'test']);
  t.is(none.exitCode, 2, none.all);
  t.regex(none.stderr, /--kernel is required \(6\.1\|6\.12\)/);
  const bad = await dicomctl(['kernel', 'test', '--kernel', '4.19']);
  t.is(bad.exitCode, 2, bad.all);
  t.regex(bad.stderr, /unknown kernel "4\.19"; supported: 6\.1, 6\.12/);
  const opt = await dicomctl(['kernel', 'test', '--kernel', '6.1', '--timeout', '5']);
  t.is(opt.exitCode, 2, opt.all);
  t.regex(opt.stderr, /--timeout must be an integer between 30 and 3600/);
});

const skipCell = isRoot ? undefined : 'the kernel cell caches Debian packages under /var/cache (root)';
const cellTest = skipCell ? test.serial.skip : test.serial;

const cells = new Map<string, Promise<{ r: CellResult; stdout: string; exitCode: number; all: string }>>();
function cell(kernel: string) {
  let p = cells.get(kernel);
  if (!p) {
    const mpi = kernel === kernels[0] ? ['--mpi', '--relay'] : [];
    p = dicomctl(['kernel', 'test', '--kernel', kernel, ...mpi, '--json', '--out', path.join(buildDir, 'kernel', `test-${kernel}`)], {
      timeoutMs: 20 * 60_000,
    }).then((x) => ({ r: JSON.parse(x.stdout) as CellResult, stdout: x.stdout, exitCode: x.exitCode, all: x.all }));
    cells.set(kernel, p);
  }
  return p;
}

for (const kernel of kernels) {
  cellTest(`kernel ${kernel} cell: apply --check, checkpatch --strict, DKMS build, qemu TCG boot and selftest`, async (t) => {
    const { r, exitCode, all } = await cell(kernel);
    const failed = r.checks.filter((c) => !c.ok);
    t.deepEqual(failed.map((c) => `${c.name}: ${c.summary} ${c.details.join(' | ')}`), [], all.slice(-3000));
    t.is(exitCode, 0);
    t.true(r.ok);
    t.is(r.checks.length, kernel === kernels[0] ? 9 : 7);
    t.is(r.artifacts.series.length, 4);
    t.regex(r.checks[2]!.summary, /^0 errors, 0 warnings, 0 checks in \d+ lines of 4 patches$/);
    t.regex(r.checks[3]!.summary, new RegExp(`vermagic ${r.packages!.release.replace(/[.+]/g, '\\$&')} `));
    // Debian's dkms itself, in a private DKMS tree: add, build, install.
    t.regex(r.checks[4]!.summary, new RegExp(`^dkms-3\\.[\\d.]+: add, build, install; updates/dkms/dicom_mbox\\.ko, vermagic ${r.packages!.release.replace(/[.+]/g, '\\$&')} `));
    const st = r.selftest!;
    t.true(st.planned >= 18, `planned ${st.planned}`);
    t.is(st.failed, 0);
    t.is(st.skipped, 0, 'the guest runs the selftest as root: nothing may be skipped');
    t.is(st.passed, st.planned);
    for (const name of ['send and receive between processes', 'concurrent senders', 'filter by pattern', 'poll and blocking reads', 'permissions', 'relay', 'module unloads cleanly']) {
      t.true(st.lines.some((l) => l.startsWith('ok ') && l.includes(name)), name);
    }
    const tm = r.timings!;
    t.true(tm.bootSeconds! > 0 && tm.selftestSeconds! > 0);
    t.log(
      `kernel ${kernel} (${r.packages!.release}): boot ${tm.bootSeconds!.toFixed(1)} s (guest uptime ${tm.guestUptimeAtInit} s), ` +
        `module load ${tm.moduleLoadSeconds!.toFixed(2)} s, selftest ${tm.selftestSeconds!.toFixed(2)} s, qemu ${tm.totalSeconds.toFixed(1)} s; cell ${r.seconds.toFixed(1)} s`,
    );
    t.regex(await readFile(r.artifacts.bootLog!, 'utf8'), /DICOM-TAP-END rc=0/);
  });
}

cellTest(`kernel ${kernels[0]} MPI guest: libdicom's kernel backend and a two-rank MPI job through the mailboxes`, async (t) => {
  const { r } = await cell(kernels[0]!);
  const m = r.mpi;
  t.truthy(m, 'the --mpi cell reports the MPI guest');
  const check = r.checks.find((c) => c.name.includes('MPI job over the kernel mailboxes'));
  t.true(check?.ok, `${check?.summary} ${check?.details.join(' | ')}`);
  t.is(m!.tap.planned, 4);
  t.is(m!.tap.passed, 4);
  const line = (n: number) => m!.tap.lines.find((l) => l.startsWith(`ok ${n} `)) ?? '';
  t.regex(line(1), /under ASan\+UBSan \(test_kmbox\): 11 ok, 0 not ok/);
  t.regex(line(3), /pingpong \(0 B\.\.16 MiB\): RESULT ok ranks=2 .*max_size=16777216/);
  // Both ranks: every message each received came out of its mailbox.
  const counts = [...line(4).matchAll(/kernel_sent=(\d+) kernel_delivered=(\d+)\/(\d+)/g)];
  t.is(counts.length, 2, line(4));
  for (const [, sent, kernel, all] of counts) {
    t.true(Number(sent) > 0 && Number(kernel) > 0 && kernel === all, line(4));
  }
  // The same counter reads 0 when the backend is off (test_kmbox's socket run).
  t.true(m!.tap.lines.some((l) => /^# ok \d+ - off: no message in the mailboxes \(kernel_sent 0\)/.test(l)));
  t.regex(await readFile(r.artifacts.mpiBootLog!, 'utf8'), /DICOM-TAP-END rc=0/);
  t.log(
    `MPI guest on ${r.packages!.release}: root ${m!.rootSeconds.toFixed(1)} s, host builds ${m!.buildSeconds.toFixed(1)} s, ` +
      `boot ${m!.timings.bootSeconds!.toFixed(1)} s, checks ${m!.timings.selftestSeconds!.toFixed(1)} s, qemu ${m!.timings.totalSeconds.toFixed(1)} s`,
  );
});

cellTest(`kernel ${kernels[0]} relay guests: two nodes exchange messages through the mailboxes and dicomd's relay`, async (t) => {
  const { r } = await cell(kernels[0]!);
  const rl = r.relay;
  t.truthy(rl, 'the --relay cell reports the relay guests');
  const check = r.checks.find((c) => c.name.includes("dicomd's relay"));
  t.true(check?.ok, `${check?.summary} ${check?.details.join(' | ')}`);
  t.is(rl!.tap.failed, 0);
  t.is(rl!.tap.planned, 14, 'node 0: 8 checks, node 1: 6');
  t.is(rl!.tap.passed, 14);
  const lines = rl!.tap.lines;
  // Each side: every message it received came out of its mailbox through the relay.
  const relayed = lines.filter((l) => /^ok \d+ - every message went through the relay: kernel_relayed_delivered (\d+)\/\1, kernel_relayed_sent (\d+)\/\2/.test(l));
  t.is(relayed.length, 2, lines.join('\n'));
  // The MPI job with a rank on each node: pingpong passed, and each rank received everything through the relay.
  t.true(lines.some((l) => /^ok \d+ - mpirun -np 2 -H 10\.79\.0\.1,10\.79\.0\.2 --mca btl self,dicom pingpong .*RESULT ok ranks=2 /.test(l)), lines.join('\n'));
  const ranks = lines.filter((l) => /^ok \d+ - this node's MPI rank received every message through the relay: kernel_relayed_delivered=(\d+)\/\1 kernel_relayed_sent=\d+$/.test(l));
  t.is(ranks.length, 2, lines.join('\n'));
  t.true(lines.some((l) => /^ok \d+ - dicomd \(ASan\+UBSan\) holds \/dev\/dicom\/relay as node 10\.79\.0\.1$/.test(l)));
  t.true(lines.some((l) => /^ok \d+ - eth0 is 10\.79\.0\.2 on the guests' own link, 10\.79\.0\.1 is on it and nothing routes further$/.test(l)));
  // Both dicomds carried records each way, lost none, and refused only the message to pid 1.
  t.is(rl!.figures.relay.length, 2);
  for (const c of rl!.figures.relay) {
    t.true(c.out_records! > 0 && c.in_records! > 0, JSON.stringify(c));
    t.is(c.dropped, 0, JSON.stringify(c));
    t.is(c.too_big, 0, JSON.stringify(c));
  }
  t.true(rl!.figures.refusedMs! >= 0 && rl!.figures.refusedMs! < 2000);
  // Node 1's mailboxes hold 8 messages (queue_max=8): its dicomd had to hold records and retry.
  t.true(rl!.figures.relay[1]!.paused_in! > 0, JSON.stringify(rl!.figures.relay[1]));
  for (const log of r.artifacts.relayBootLogs!) t.regex(await readFile(log, 'utf8'), /DICOM-TAP-END rc=0/);
  t.log(
    `relay guests on ${r.packages!.release}: exchange ${rl!.figures.exchangeSeconds.map((s) => s.toFixed(1)).join(' / ')} s, ` +
      `refusal ${rl!.figures.refusedMs} ms, records out/in ${rl!.figures.relay.map((c) => `${c.out_records}/${c.in_records}`).join(' and ')}, ` +
      `paused out/in ${rl!.figures.relay.map((c) => `${c.paused_out}/${c.paused_in}`).join(' and ')}, ` +
      `qemu ${rl!.timings.map((x) => x.totalSeconds.toFixed(1)).join(' / ')} s`,
  );
});

cellTest('the guest root is cached: ci/kernel-guest-root.sh returns at once, and refuses bad usage', async (t) => {
  await cell(kernels[0]!); // the cell made it
  const script = path.join(root, 'ci/kernel-guest-root.sh');
  const t0 = performance.now();
  const again = await execa('bash', [script], { reject: false });
  t.is(again.exitCode, 0, again.stderr);
  t.regex(again.stderr, /cached: /);
  t.is(again.stdout.trim(), guestRootDir);
  t.true(performance.now() - t0 < 10_000);
  t.true(existsSync(path.join(guestRootDir, 'usr/bin/mpirun')));
  const bad = await execa('bash', [script, '--bogus'], { reject: false });
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /usage: .*--path\|--rebuild/);
});

cellTest('the checks can fail: a series for another tree, a checkpatch violation', async (t) => {
  const kernel = kernels[0]!;
  const { r } = await cell(kernel);
  const cache = await prepareKernel(findSeries(kernel), () => {});
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-kernel-neg-'));
  try {
    const empty = await applyCheck(tmp, r.artifacts.series);
    t.false(empty.ok);
    t.regex(empty.details.join('\n'), /No such file|does not exist/);
    // A trailing space and an over-long line in the driver.
    const driverPatch = r.artifacts.series[1]!;
    const broken = path.join(tmp, path.basename(driverPatch));
    const text = await readFile(driverPatch, 'utf8');
    const spoiled = text.replace('+#include "dicom_mbox.h"\n', `+#include "dicom_mbox.h" \n+static int ${'x'.repeat(100)};\n`);
    t.not(spoiled, text);
    await writeFile(broken, spoiled);
    const cp = await checkpatch(cache.sourceTree, [broken]);
    t.false(cp.ok);
    t.regex(cp.details.join('\n'), /trailing whitespace/);
    t.regex(cp.details.join('\n'), /exceeds 100 columns/);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
