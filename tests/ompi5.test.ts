// The Open MPI axis: the same btl_dicom, generated from the same mca-templates/,
// built and run on Open MPI 4.1.4 (host, BTL API 3.1) and on Open MPI 5.0.7
// (the debootstrapped trixie root, BTL API 3.3, run via chroot): the two-rank
// correctness subset over `--mca pml ob1 --mca btl self,dicom`, and MPI RMA.
// Needs root (debootstrap, chroot, mounts); skipped with a message otherwise.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { componentBuildDir } from '../control/generator/build.js';
import { missingHeaders } from '../control/generator/compat.js';
import { selectOmpi } from '../control/generator/select.js';
import { type OmpiTarget } from '../control/generator/target.js';
import { type CheckReport, checkCases, checkOmpi } from '../control/runner/check.js';
import { criuCheck, ensureTrixieRoot, inRoot, mountsUnder, trixieRootDir } from '../control/trixie/root.js';
import { dicomctl, isRoot } from './helpers/cli.js';

const skip = isRoot ? undefined : 'Open MPI 5.0 runs in a debootstrapped trixie root via chroot, which needs root; run the tests as root';
if (skip) console.warn(`ompi5 tests skipped: ${skip}`);
const rtest = skip ? test.serial.skip : test.serial;

const versions = { '4.1': { expect: '4.1', api: '3.1' }, '5.0': { expect: '5.0', api: '3.3' } } as const;
type Spec = keyof typeof versions;

// One check run per version, shared by the per-program tests below.
const runs = new Map<Spec, Promise<CheckReport>>();
function report(spec: Spec): Promise<CheckReport> {
  let p = runs.get(spec);
  if (!p) {
    p = checkOmpi(spec, { np: 2 });
    runs.set(spec, p);
  }
  return p;
}

const targets = new Map<Spec, OmpiTarget>();
async function target(spec: Spec): Promise<OmpiTarget> {
  const t = targets.get(spec) ?? (await selectOmpi(spec));
  targets.set(spec, t);
  return t;
}

rtest('the trixie root is cached: a second ensure is instant, and nothing stays mounted in it', async (t) => {
  const first = await ensureTrixieRoot();
  t.is(first.dir, trixieRootDir);
  const again = await ensureTrixieRoot();
  t.true(again.cached, 'the stamp must make the second run a no-op');
  t.true(again.seconds < 2, `cached ensure took ${again.seconds.toFixed(2)} s`);
  const r = await inRoot(['sh', '-c', 'cat /etc/debian_version; test -r /proc/self/status && test -c /dev/null && echo mounted']);
  t.is(r.exitCode, 0, String(r.stderr));
  t.regex(String(r.stdout), /^13\./m);
  t.regex(String(r.stdout), /mounted/);
  t.deepEqual(await mountsUnder(), [], 'inRoot must leave no mount behind in the host view');
  const failed = await inRoot(['sh', '-c', 'exit 3']);
  t.is(failed.exitCode, 3);
  t.deepEqual(await mountsUnder(), [], 'also not after a failing command');
});

rtest('CRIU 4.x from the trixie root: criu check', async (t) => {
  const c = await criuCheck();
  t.log(`${c.version}: ${c.output}`);
  t.regex(c.version, /Version: [4-9]\./);
  t.true(c.ok, c.output);
});

rtest('--ompi 5.0 selects the trixie root and --ompi 4.1 the host, detected by their own tools', async (t) => {
  const t5 = await target('5.0');
  t.regex(t5.version, /^5\.0\./);
  t.is(t5.btlApi, '3.3');
  t.is(t5.sysroot, trixieRootDir);
  const t4 = await target('4.1');
  t.regex(t4.version, /^4\.1\./);
  t.is(t4.btlApi, '3.1');
  t.is(t4.sysroot, '/');
  const auto = await selectOmpi('auto');
  t.is(auto.version, t4.version);
  const cli = await dicomctl(['btl', 'build', '--ompi', '5.0', '--json']);
  t.is(cli.exitCode, 0, cli.all.slice(-3000));
  t.like(JSON.parse(cli.stdout), { version: t5.version, btlApi: '3.3' });
  const bad = await dicomctl(['btl', 'build', '--ompi', '4.2']);
  t.not(bad.exitCode, 0);
  t.regex(bad.stderr, /--ompi 4\.2: expected auto, 4\.1, 5\.0/);
});

rtest('the same templates render both API generations; 3.3 gets its partials', async (t) => {
  const [t4, t5] = [await target('4.1'), await target('5.0')];
  await report('4.1');
  await report('5.0');
  const d4 = componentBuildDir(t4);
  const d5 = componentBuildDir(t5);
  const sources = async (d: string) => (await readdir(d)).filter((f) => /\.(c|h)$/.test(f) && f !== 'abi_check.c').sort();
  t.deepEqual(await sources(d5), await sources(d4), 'one component, not a copy per version');
  const read = (d: string, f: string) => readFile(path.join(d, f), 'utf8');
  const [comp4, comp5, mod4, mod5, mk5] = await Promise.all([
    read(d4, 'btl_dicom_component.c'), read(d5, 'btl_dicom_component.c'),
    read(d4, 'btl_dicom_module.c'), read(d5, 'btl_dicom_module.c'), read(d5, 'Makefile'),
  ]);
  // receive-descriptor callback
  t.regex(comp5, /mca_btl_base_receive_descriptor_t recv_desc/);
  t.regex(comp4, /reg->cbfunc\(&mca_btl_dicom_module, tag, &des, reg->cbdata\)/);
  // no ft_event in 3.3
  t.notRegex(mod5, /ft_event/);
  t.regex(mod4, /btl_ft_event/);
  // PMIx modex scope and moved header
  t.regex(comp5, /OPAL_MODEX_SEND\(rc, PMIX_GLOBAL/);
  t.regex(comp4, /OPAL_MODEX_SEND\(rc, OPAL_PMIX_GLOBAL/);
  t.regex(comp5, /#include "opal\/mca\/pmix\/pmix-internal\.h"/);
  t.regex(comp4, /#include "opal\/mca\/pmix\/pmix\.h"/);
  // accelerator fields
  t.regex(comp5, /btl_accelerator_max_send_size = /);
  t.notRegex(comp4, /accelerator/);
  // -lpmix and the pmix include dir
  t.regex(mk5, /-lpmix/);
  t.regex(mk5, /-isystem \S*pmix\S*\/include/);
});

rtest('5.0: the missing threads headers are generated declarations, checked against libopen-pal', async (t) => {
  const t5 = await target('5.0');
  const missing = (await missingHeaders(t5)).map((m) => m.header).sort();
  t.deepEqual(missing, [
    'opal/mca/threads/pthreads/threads_pthreads_mutex.h',
    'opal/mca/threads/pthreads/threads_pthreads_threads.h',
    'opal/mca/threads/pthreads/threads_pthreads_tsd.h',
  ]);
  await report('5.0');
  const dir = componentBuildDir(t5);
  for (const h of missing) t.regex(await readFile(path.join(dir, 'compat', h), 'utf8'), /generated by dicomctl from mca-templates\/compat/);
  const abi = await readFile(path.join(dir, 'abi_check.ok'), 'utf8');
  t.log(abi.trim());
  t.regex(abi, /abi_check: ok/);
  t.notRegex(abi, /MISMATCH/);
  t.deepEqual(await missingHeaders(await target('4.1')), [], '4.1 ships every header it names');
});

for (const spec of ['4.1', '5.0'] as const) {
  const where = spec === '5.0' ? 'Open MPI 5.0 in the trixie root' : 'Open MPI 4.1 on the host';
  rtest(`${where}: component built, installed and verified; MPI programs built with its mpicc`, async (t) => {
    const r = await report(spec);
    t.true(r.version.startsWith(versions[spec].expect));
    t.is(r.btlApi, versions[spec].api);
    t.log(`Open MPI ${r.version}: select ${r.seconds.select.toFixed(1)} s, component ${r.seconds.component.toFixed(1)} s, programs ${r.seconds.programs.toFixed(1)} s, runs ${r.seconds.runs.toFixed(1)} s`);
  });
  for (const c of checkCases) {
    rtest(`${where}, 2 ranks over self,dicom: ${c.title}`, async (t) => {
      const r = await report(spec);
      const res = r.cases.find((x) => x.program === c.program);
      if (!res) return t.fail(`${c.program} did not run`);
      t.log(res.result);
      t.true(res.ok, res.output ?? res.result);
      t.regex(res.result, /^RESULT ok/);
    });
  }
}

rtest('dicomctl btl check --ompi 5.0 reports every case as JSON', async (t) => {
  const r = await dicomctl(['btl', 'check', '--ompi', '5.0', '--json'], { timeoutMs: 15 * 60_000 });
  t.is(r.exitCode, 0, r.all.slice(-4000));
  const j = JSON.parse(r.stdout) as CheckReport;
  t.true(j.ok);
  t.is(j.cases.length, checkCases.length);
  t.regex(r.stdout, /"where": ".*trixie-root"/);
});
