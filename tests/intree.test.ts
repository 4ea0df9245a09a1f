// The in-tree layout (opal/mca/btl/dicom for Open MPI's own tree): fast render
// checks for both BTL API generations, its configure.m4 run by real autoconf
// (inside the trixie root, which has it), and bad inputs. The full in-tree
// build of Open MPI's source is slow and runs behind its own command:
// `dicomctl btl intree --ompi 5.0 --build`.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { buildLibdicom } from '../control/generator/build.js';
import { IntreeError, intreeSubdir, renderIntree } from '../control/generator/intree.js';
import { contextFor, renderSet } from '../control/generator/render.js';
import { selectOmpi } from '../control/generator/select.js';
import type { OmpiTarget } from '../control/generator/target.js';
import { buildDir, root } from '../control/paths.js';
import { inRoot } from '../control/trixie/root.js';
import { dicomctl, isRoot } from './helpers/cli.js';

let tmp: string;
let host: OmpiTarget;
let ompi5: OmpiTarget | undefined;

test.before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-intree-'));
  host = await selectOmpi('4.1');
  if (isRoot) ompi5 = await selectOmpi('5.0');
});
test.after.always(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const read = (dir: string, f: string) => readFile(path.join(dir, f), 'utf8');

for (const spec of ['4.1', '5.0'] as const) {
  test(`Open MPI ${spec}: opal/mca/btl/dicom holds Makefile.am, configure.m4, owner.txt and the component sources, the same ones the out-of-tree build compiles`, async (t) => {
    const target = spec === '4.1' ? host : ompi5;
    if (!target) return t.pass('the trixie root needs root; skipped');
    const out = path.join(tmp, `tree-${spec}`);
    const layout = await renderIntree(target, out);
    t.is(layout.dir, path.join(out, intreeSubdir));
    const files = (await readdir(layout.dir)).sort();
    t.deepEqual(files, ['Makefile.am', 'btl_dicom.h', 'btl_dicom_component.c', 'btl_dicom_frag.c', 'btl_dicom_frag.h', 'btl_dicom_module.c', 'configure.m4', 'owner.txt']);

    // One copy of the component: byte for byte what the out-of-tree build renders.
    const oot = path.join(tmp, `oot-${spec}`);
    await renderSet('component', contextFor(target), oot);
    for (const f of layout.sources) t.is(await read(layout.dir, f), await read(oot, f), f);

    const am = await read(layout.dir, 'Makefile.am');
    for (const f of layout.sources) t.regex(am, new RegExp(`^\\t${f.replace('.', '\\.')}( \\\\)?$`, 'm'), `Makefile.am lists ${f}`);
    t.regex(am, /^if MCA_BUILD_opal_btl_dicom_DSO$/m);
    t.regex(am, /^mca_btl_dicom_la_LIBADD = .*\$\(btl_dicom_LIBS\)$/m);
    t.regex(am, spec === '5.0' ? /lib@OPAL_LIB_NAME@\.la/ : /lib@OPAL_LIB_PREFIX@open-pal\.la/);
    t.notRegex(am, /\{\{|\}\}/, 'no unrendered template syntax');

    const m4 = await read(layout.dir, 'configure.m4');
    t.regex(m4, /^AC_DEFUN\(\[MCA_opal_btl_dicom_CONFIG\],\[$/m);
    t.regex(m4, /AC_CONFIG_FILES\(\[opal\/mca\/btl\/dicom\/Makefile\]\)/);
    t.regex(m4, /AC_ARG_WITH\(\[dicom\]/);
    t.regex(m4, new RegExp(`Open MPI ${target.version.replaceAll('.', '\\.')} \\(BTL API ${target.btlApi.replace('.', '\\.')}\\)`));
    t.regex(await read(layout.dir, 'owner.txt'), /^owner: .+\nstatus: active$/m);

    const component = await read(layout.dir, 'btl_dicom_component.c');
    if (spec === '5.0') t.regex(component, /mca_btl_base_receive_descriptor_t/);
    else t.regex(component, /reg->cbfunc\(&mca_btl_dicom_module, tag, &des, reg->cbdata\)/);
  });
}

test('rendering into an Open MPI source tree of the other BTL API generation is refused', async (t) => {
  const fake = path.join(tmp, 'ompi-5-tree');
  await mkdir(path.join(fake, 'opal/mca/btl'), { recursive: true });
  await writeFile(path.join(fake, 'opal/mca/btl/btl.h'), '#define BTL_VERSION 330\n');
  const e = await t.throwsAsync(renderIntree(host, fake), { instanceOf: IntreeError });
  t.regex(e!.message, /BTL API 3\.3, but Open MPI 4\.1\.4 uses 3\.1/);
  await writeFile(path.join(fake, 'opal/mca/btl/btl.h'), '#define BTL_VERSION 310\n');
  const ok = await renderIntree(host, fake);
  t.true(ok.files.length > 0);
});

test('configure.m4 under real autoconf: off without --with-dicom, libdicom.a checked and linked with it, clear errors otherwise', async (t) => {
  if (!ompi5) return t.pass('autoconf lives in the trixie root, which needs root; skipped');
  const libdicomDir = await buildLibdicom(() => {}, ompi5);
  // Inside the checkout: the trixie root sees it at the same path.
  const dir = await mkdtemp(path.join(buildDir, 'tmp-intree-m4-'));
  try {
    const layout = await renderIntree(ompi5, dir);
    await writeFile(path.join(layout.dir, 'Makefile.in'), 'all:\n');
    await writeFile(
      path.join(dir, 'configure.ac'),
      [
        'AC_INIT([btl-dicom-m4], [1])',
        'AC_PROG_CC',
        // Open MPI's helper macros, reduced to what the check needs to observe.
        'm4_define([OPAL_VAR_SCOPE_PUSH], [])',
        'm4_define([OPAL_VAR_SCOPE_POP], [])',
        'm4_define([OPAL_SUMMARY_ADD], [echo "summary: $2: $4"])',
        `m4_include([${intreeSubdir}/configure.m4])`,
        'MCA_opal_btl_dicom_CONFIG([echo "btl dicom: build"], [echo "btl dicom: skip"])',
        'echo "btl_dicom_CPPFLAGS=$btl_dicom_CPPFLAGS"',
        'echo "btl_dicom_LIBS=$btl_dicom_LIBS"',
        'AC_OUTPUT',
        '',
      ].join('\n'),
    );
    const ac = await inRoot(['autoconf'], { cwd: dir, execa: { all: true } });
    t.is(ac.exitCode, 0, String(ac.all));
    const configure = async (...args: string[]) => inRoot(['./configure', ...args], { cwd: dir, execa: { all: true, env: { LC_ALL: 'C' } } });

    const off = await configure();
    t.is(off.exitCode, 0, String(off.all));
    t.regex(String(off.stdout), /whether to build the DiCOM BTL\.\.\. no \(--with-dicom=DIR not given\)/);
    t.regex(String(off.stdout), /^btl dicom: skip$/m);

    const on = await configure(`--with-dicom=${path.join(root, 'btl-dicom')}`, `--with-dicom-libdir=${libdicomDir}`);
    t.is(on.exitCode, 0, String(on.all));
    t.regex(String(on.stdout), /checking whether libdicom\.a links\.\.\. yes/);
    t.regex(String(on.stdout), /^btl dicom: build$/m);
    t.regex(String(on.stdout), new RegExp(`^btl_dicom_CPPFLAGS=-I${path.join(root, 'btl-dicom/include')}$`, 'm'));
    t.regex(String(on.stdout), new RegExp(`^btl_dicom_LIBS=${path.join(libdicomDir, 'libdicom.a')} -lpthread$`, 'm'));
    t.regex(String(on.stdout), /summary: DiCOM .*: yes/);

    const bad: [string[], RegExp][] = [
      [['--with-dicom'], /--with-dicom needs the directory libdicom is in/],
      [['--with-dicom=/nonexistent'], /\/nonexistent\/include\/dicom\.h is missing/],
      [[`--with-dicom=${path.join(root, 'btl-dicom')}`, `--with-dicom-libdir=${dir}`], /libdicom\.a not found in/],
    ];
    for (const [args, re] of bad) {
      const r = await configure(...args);
      t.not(r.exitCode, 0, args.join(' '));
      t.regex(String(r.all), re, args.join(' '));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('dicomctl btl intree: renders with --out; usage errors are exit 2', async (t) => {
  const out = path.join(tmp, 'cli');
  const r = await dicomctl(['btl', 'intree', '--ompi', '4.1', '--out', out, '--json']);
  t.is(r.exitCode, 0, r.all);
  const j = JSON.parse(r.stdout) as { dir: string; sources: string[]; version: string };
  t.is(j.dir, path.join(out, intreeSubdir));
  t.is(j.version, host.version);
  t.true(j.sources.includes('btl_dicom_component.c'));
  for (const args of [['btl', 'intree'], ['btl', 'intree', '--out', out, '--build']]) {
    const bad = await dicomctl(args);
    t.is(bad.exitCode, 2, bad.all);
    t.regex(bad.stderr, /exactly one of --out DIR .* and --build/);
  }
  const wrong = await dicomctl(['btl', 'intree', '--ompi', '3.0', '--out', out]);
  t.is(wrong.exitCode, 1);
  t.regex(wrong.stderr, /expected auto, 4\.1, 5\.0/);
});
