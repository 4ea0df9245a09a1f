// dicomctl btl build|install|check: generate, compile, install and verify btl_dicom,
// and run the two-rank correctness subset on one Open MPI installation.
// --ompi auto|4.1 = the host's Open MPI; --ompi 5.0 = the trixie root (control/trixie).
import { type Command, int, type ParsedArgs, str } from '../command.js';
import { CliError, note, printJson, step, timed } from '../output.js';
import { BuildError, buildComponent } from '../../generator/build.js';
import { DetectError } from '../../generator/detect.js';
import { componentPath, defaultComponentDirFor, InstallError, installComponent, inTargetView, verifyComponent } from '../../generator/install.js';
import { IntreeError, renderIntree } from '../../generator/intree.js';
import { intreeBuild } from '../../generator/intree-build.js';
import { isRootSpec, selectOmpi } from '../../generator/select.js';
import type { OmpiTarget } from '../../generator/target.js';
import { type CheckReport, checkOmpi } from '../../runner/check.js';
import { RootError } from '../../trixie/root.js';

async function target(args: ParsedArgs): Promise<OmpiTarget> {
  const spec = str(args, 'ompi') ?? 'auto';
  try {
    if (isRootSpec(spec)) step('trixie root (Open MPI 5.0)');
    const t = await selectOmpi(spec, (line) => note(line.replace(/^» /, '')));
    const where = t.sysroot === '/' ? '' : `, in ${t.sysroot} (chroot)`;
    note(`Open MPI ${t.version}, BTL API ${t.btlApi}, pkglibdir ${t.pkglibdir}${where}`);
    return t;
  } catch (e) {
    if (e instanceof DetectError || e instanceof RootError) throw new CliError(e.message);
    throw e;
  }
}

async function build(args: ParsedArgs) {
  const t = await target(args);
  try {
    let lines = 0;
    return await timed(`building mca_btl_dicom.so for Open MPI ${t.version}`, () =>
      buildComponent(t, (line) => {
        lines++;
        if (args.values.verbose) note(line);
        else if (/\b(gcc|cc|ar|clang)\b/.test(line)) note(line.length > 110 ? line.slice(0, 107) + '...' : line);
        void lines;
      }),
    );
  } catch (e) {
    if (e instanceof BuildError) throw new CliError(`${e.message}\n${e.log}`);
    throw e;
  }
}

const buildCmd: Command = {
  name: 'btl build',
  summary: 'render mca-templates for the detected Open MPI and compile mca_btl_dicom.so',
  usage: 'btl build [--ompi auto|4.1|5.0|PREFIX] [--verbose] [--json]',
  options: { ompi: { type: 'string' }, verbose: { type: 'boolean' } },
  async run(args) {
    const r = await build(args);
    if (args.values.json) printJson({ version: r.target.version, btlApi: r.target.btlApi, artifact: r.artifact, dir: r.dir });
    else process.stdout.write(`built ${r.artifact}\n`);
  },
};

const installCmd: Command = {
  name: 'btl install',
  summary: 'build if needed, install the component and verify it with ompi_info',
  usage: 'btl install [--ompi auto|4.1|5.0|PREFIX] [--dest DIR | --system] [--json]',
  options: { ompi: { type: 'string' }, dest: { type: 'string' }, system: { type: 'boolean' }, verbose: { type: 'boolean' } },
  async run(args) {
    if (args.values.system && str(args, 'dest')) throw new CliError('--dest and --system exclude each other', 2);
    const r = await build(args);
    // For --ompi 5.0, --dest is a directory as seen inside the trixie root.
    const dest = args.values.system ? 'system' : (str(args, 'dest') ?? defaultComponentDirFor(r.target));
    try {
      const dir = await installComponent(r.target, r.artifact, dest);
      step(`installed into ${dir}`);
      const v = await timed('verifying with ompi_info --param btl dicom --level 9', () => verifyComponent(r.target, dir));
      const env = args.values.system ? undefined : `OMPI_MCA_mca_base_component_path=${componentPath(r.target, inTargetView(r.target, dir))}`;
      if (args.values.json) {
        printJson({ version: r.target.version, installedInto: dir, env: env ?? null, params: v.params });
        return;
      }
      for (const p of v.params) note(`${p.name}: ${p.help.slice(0, 90)}`);
      process.stdout.write(`btl dicom installed in ${dir}\n`);
      if (env && r.target.sysroot === '/') process.stdout.write(`use it with:\n  export ${env}\n  mpirun --mca btl self,dicom ./app\n`);
      else if (env) {
        process.stdout.write(
          `use it inside ${r.target.sysroot} (chroot, with /proc, /sys and /dev mounted as control/trixie inRoot does):\n` +
            `  export ${env}\n  mpirun --allow-run-as-root --mca pml ob1 --mca btl self,dicom ./app\n` +
            `dicomctl btl check --ompi 5.0 runs the correctness subset there\n`,
        );
      }
    } catch (e) {
      if (e instanceof InstallError) throw new CliError(e.message);
      throw e;
    }
  },
};

/** The check report as TAP, so a CI matrix cell can count it (ci/matrix.json). */
function checkTap(report: CheckReport): string {
  const lines = ['TAP version 13', `1..${report.cases.length}`];
  report.cases.forEach((c, i) => {
    lines.push(`${c.ok ? 'ok' : 'not ok'} ${i + 1} - ${c.program}: ${c.title} (Open MPI ${report.version}) # time=${(c.seconds * 1000).toFixed(0)}ms`);
    if (!c.ok) lines.push('  ---', `  exitCode: ${c.exitCode ?? 'null'}`, '  output: |-', ...(c.output ?? '').split('\n').map((l) => `    ${l}`), '  ...');
  });
  return lines.join('\n') + '\n';
}

const checkCmd: Command = {
  name: 'btl check',
  summary: 'build, install and run the two-rank correctness subset and MPI RMA over self,dicom',
  usage: 'btl check [--ompi auto|4.1|5.0] [--np N] [--json | --tap]',
  options: { ompi: { type: 'string' }, np: { type: 'string' }, tap: { type: 'boolean' } },
  async run(args) {
    const spec = str(args, 'ompi') ?? 'auto';
    const np = int(args, 'np', 2, 2, 8);
    if (args.values.json && args.values.tap) throw new CliError('--json and --tap exclude each other', 2);
    step(`btl check --ompi ${spec}: ${np} ranks, --mca pml ob1 --mca btl self,dicom`);
    let report;
    try {
      report = await checkOmpi(spec, { np, log: (line) => note(line.replace(/^» /, '')) });
    } catch (e) {
      const known = e instanceof DetectError || e instanceof RootError || e instanceof InstallError || e instanceof BuildError;
      if (args.values.tap) process.stdout.write(`TAP version 13\nBail out! ${(known ? e.message : String(e)).split('\n')[0]}\n`);
      if (e instanceof BuildError) throw new CliError(`${e.message}\n${e.log}`);
      if (known) throw new CliError((e as Error).message);
      throw e;
    }
    if (args.values.json) printJson(report);
    if (args.values.tap) process.stdout.write(checkTap(report));
    const failed = report.cases.filter((c) => !c.ok);
    for (const f of failed) process.stderr.write(`--- ${f.program} (exit ${f.exitCode})\n${f.output ?? ''}\n`);
    if (!args.values.json && !args.values.tap) {
      process.stdout.write(`Open MPI ${report.version} (${report.where}): ${report.cases.length - failed.length} passed, ${failed.length} failed\n`);
    }
    if (failed.length > 0) throw new CliError(`btl check --ompi ${spec}: ${failed.map((f) => f.program).join(', ')} failed`);
  },
};

const intreeCmd: Command = {
  name: 'btl intree',
  summary: 'emit opal/mca/btl/dicom (Makefile.am, configure.m4, owner.txt, sources) for Open MPI\'s tree; --build proves it',
  usage: 'btl intree [--ompi 4.1|5.0] (--out DIR | --build [--verbose]) [--json]',
  options: { ompi: { type: 'string' }, out: { type: 'string' }, build: { type: 'boolean' }, verbose: { type: 'boolean' } },
  async run(args) {
    const out = str(args, 'out');
    if (Boolean(out) === Boolean(args.values.build)) throw new CliError('btl intree needs exactly one of --out DIR (render) and --build (in-tree build of Open MPI\'s source)', 2);
    const t = await target(args);
    try {
      if (out) {
        const layout = await renderIntree(t, out);
        if (args.values.json) return printJson({ version: t.version, btlApi: t.btlApi, ...layout });
        for (const f of layout.files) note(f);
        process.stdout.write(`${layout.dir}\nbuild it inside Open MPI ${t.version}'s source: ./autogen.pl && ./configure --with-dicom=DIR --enable-mca-dso=btl-dicom && make\n`);
        return;
      }
      step(`in-tree build of btl dicom in Open MPI ${t.version}'s own source (slow: autogen, configure, make of opal)`);
      const r = await intreeBuild(t, { log: (l) => note(l), verbose: args.values.verbose ? (l) => note(l) : undefined });
      if (args.values.json) printJson(r);
      else {
        const s = r.seconds;
        process.stdout.write(
          `in-tree build of Open MPI ${r.version} with btl dicom: ${r.ok ? 'ok' : 'FAILED'}\n` +
            `  ${r.artifact}\n  libdicom inside: ${r.libdicomSymbols} local symbols; ompi_info ${r.version} lists ${r.ompiInfoParams} btl_dicom parameters\n` +
            `  runs: ${r.runs.filter((x) => x.ok).length}/${r.runs.length} passed\n` +
            `  seconds: source ${s.source.toFixed(0)}, extract+render ${s.extract.toFixed(0)}, autogen ${s.autogen.toFixed(0)}, configure ${s.configure.toFixed(0)}, make ${s.make.toFixed(0)}, runs ${s.runs.toFixed(0)}, total ${s.total.toFixed(0)}\n`,
        );
      }
      if (!r.ok) throw new CliError(`in-tree build: ${r.runs.filter((x) => !x.ok).map((x) => x.program).join(', ')} failed with the in-tree component`);
    } catch (e) {
      if (e instanceof IntreeError || e instanceof InstallError) throw new CliError(e.message);
      if (e instanceof BuildError) throw new CliError(`${e.message}\n${e.log}`);
      throw e;
    }
  },
};

export const commands: Command[] = [buildCmd, installCmd, checkCmd, intreeCmd];
