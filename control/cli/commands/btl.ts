// dicomctl btl build|install: generate, compile, install and verify btl_dicom.
import { type Command, type ParsedArgs, str } from '../command.js';
import { CliError, note, printJson, step, timed } from '../output.js';
import { BuildError, buildComponent } from '../../generator/build.js';
import { DetectError, detectOmpi } from '../../generator/detect.js';
import { componentPath, InstallError, installComponent, verifyComponent } from '../../generator/install.js';
import type { OmpiTarget } from '../../generator/target.js';
import { defaultComponentDir } from '../../paths.js';

async function target(args: ParsedArgs): Promise<OmpiTarget> {
  try {
    const t = await detectOmpi(str(args, 'ompi') ?? 'auto');
    note(`Open MPI ${t.version}, BTL API ${t.btlApi}, pkglibdir ${t.pkglibdir}`);
    return t;
  } catch (e) {
    if (e instanceof DetectError) throw new CliError(e.message);
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
  usage: 'btl build [--ompi auto|PREFIX] [--verbose] [--json]',
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
  usage: 'btl install [--ompi auto|PREFIX] [--dest DIR | --system] [--json]',
  options: { ompi: { type: 'string' }, dest: { type: 'string' }, system: { type: 'boolean' }, verbose: { type: 'boolean' } },
  async run(args) {
    if (args.values.system && str(args, 'dest')) throw new CliError('--dest and --system exclude each other', 2);
    const r = await build(args);
    const dest = args.values.system ? 'system' : (str(args, 'dest') ?? defaultComponentDir);
    try {
      const dir = await installComponent(r.target, r.artifact, dest);
      step(`installed into ${dir}`);
      const v = await timed('verifying with ompi_info --param btl dicom --level 9', () => verifyComponent(r.target, dir));
      const env = args.values.system ? undefined : `OMPI_MCA_mca_base_component_path=${componentPath(r.target, dir)}`;
      if (args.values.json) {
        printJson({ version: r.target.version, installedInto: dir, env: env ?? null, params: v.params });
        return;
      }
      for (const p of v.params) note(`${p.name}: ${p.help.slice(0, 90)}`);
      process.stdout.write(`btl dicom installed in ${dir}\n`);
      if (env) process.stdout.write(`use it with:\n  export ${env}\n  mpirun --mca btl self,dicom ./app\n`);
    } catch (e) {
      if (e instanceof InstallError) throw new CliError(e.message);
      throw e;
    }
  },
};

export const commands: Command[] = [buildCmd, installCmd];
