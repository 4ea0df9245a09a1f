// dicomctl btl build|install|check: generate, compile, install and verify btl_dicom,
// and run the two-rank correctness subset on one Open MPI installation.
// --ompi auto|4.1 = the host's Open MPI; --ompi 5.0 = the trixie root (control/trixie).
import { type Command, int, type ParsedArgs, str } from '../command.js';
import { CliError, note, printJson, step, timed } from '../output.js';
import { BuildError, buildComponent } from '../../generator/build.js';
import { DetectError } from '../../generator/detect.js';
import { componentPath, defaultComponentDirFor, InstallError, installComponent, inTargetView, verifyComponent } from '../../generator/install.js';
import { isRootSpec, selectOmpi } from '../../generator/select.js';
import type { OmpiTarget } from '../../generator/target.js';
import { checkOmpi } from '../../runner/check.js';
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

const checkCmd: Command = {
  name: 'btl check',
  summary: 'build, install and run the two-rank correctness subset and MPI RMA over self,dicom',
  usage: 'btl check [--ompi auto|4.1|5.0] [--np N] [--json]',
  options: { ompi: { type: 'string' }, np: { type: 'string' } },
  async run(args) {
    const spec = str(args, 'ompi') ?? 'auto';
    const np = int(args, 'np', 2, 2, 8);
    step(`btl check --ompi ${spec}: ${np} ranks, --mca pml ob1 --mca btl self,dicom`);
    let report;
    try {
      report = await checkOmpi(spec, { np, log: (line) => note(line.replace(/^» /, '')) });
    } catch (e) {
      if (e instanceof DetectError || e instanceof RootError || e instanceof InstallError) throw new CliError(e.message);
      if (e instanceof BuildError) throw new CliError(`${e.message}\n${e.log}`);
      throw e;
    }
    if (args.values.json) printJson(report);
    const failed = report.cases.filter((c) => !c.ok);
    for (const f of failed) process.stderr.write(`--- ${f.program} (exit ${f.exitCode})\n${f.output ?? ''}\n`);
    if (!args.values.json) {
      process.stdout.write(`Open MPI ${report.version} (${report.where}): ${report.cases.length - failed.length} passed, ${failed.length} failed\n`);
    }
    if (failed.length > 0) throw new CliError(`btl check --ompi ${spec}: ${failed.map((f) => f.program).join(', ')} failed`);
  },
};

export const commands: Command[] = [buildCmd, installCmd, checkCmd];
