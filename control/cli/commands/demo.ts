// dicomctl demo: from nothing to a multi-node MPI job over dicom, with a
// summary. What `npm start` runs after provisioning.
import path from 'node:path';
import { labDown, labExec, labMpirun, labStatus, labUp, requireState } from '../../lab/index.js';
import { detectOmpi } from '../../generator/detect.js';
import { buildInstallVerify } from '../../generator/pipeline.js';
import { defaultComponentDir, root } from '../../paths.js';
import { ensureMpiPrograms, mpiProgramsDir } from '../../runner/prereq.js';
import type { Command } from '../command.js';
import { CliError, note, printTable, step, timed } from '../output.js';

interface JobRow extends Record<string, string | number> {
  job: string;
  ranks: number;
  seconds: string;
  result: string;
}

const demo: Command = {
  name: 'demo',
  summary: 'build + install btl_dicom, start a 3-node lab, run MPI jobs over dicom, summarise',
  usage: 'demo [--nodes N] [--keep]',
  options: { nodes: { type: 'string' }, keep: { type: 'boolean' } },
  async run(args) {
    if (process.getuid?.() !== 0) throw new CliError('the demo needs root: it builds a lab of network namespaces');
    const nodes = Number(args.values.nodes ?? 3);
    if (!Number.isInteger(nodes) || nodes < 2 || nodes > 8) throw new CliError('--nodes must be between 2 and 8', 2);
    const t0 = performance.now();

    const target = await timed('detecting Open MPI', () => detectOmpi());
    note(`Open MPI ${target.version}, BTL API ${target.btlApi}`);
    const { dir, verified } = await timed('rendering mca-templates, compiling mca_btl_dicom.so (libdicom inside), installing, verifying with ompi_info', () =>
      buildInstallVerify(target, defaultComponentDir),
    );
    note(`installed in ${dir}; ompi_info lists btl dicom with ${verified.params.length} parameters`);
    await timed('building the MPI test programs', () => ensureMpiPrograms());

    if ((await labStatus()).up) await labDown();
    await timed(`lab up --nodes ${nodes}: namespaces on a bridge, sshd + dicomd per node`, () => labUp({ nodes, log: note }));
    const rows: JobRow[] = [];
    try {
      const np = nodes * 2;
      const run = async (job: string, program: string, progArgs: string[]) => {
        step(`mpirun -np ${np} --mca btl self,dicom ${path.basename(program)} ${progArgs.join(' ')}`);
        const r = await labMpirun({ np, program, args: progArgs, btl: 'self,dicom', componentPath: defaultComponentDir, mca: { pml: 'ob1' }, timeoutMs: 5 * 60_000 });
        const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT')) ?? `exit ${r.exitCode}`;
        note(line);
        rows.push({ job, ranks: np, seconds: (r.durationMs / 1000).toFixed(2), result: r.exitCode === 0 ? 'ok' : `FAILED (${r.exitCode})` });
        if (r.exitCode !== 0) note((r.stderr + r.stdout).slice(-2000));
        return r;
      };
      const where = await labMpirun({ np, program: 'hostname', btl: 'self,dicom', componentPath: defaultComponentDir, timeoutMs: 60_000 });
      const perNode = new Map<string, number>();
      for (const h of where.stdout.trim().split('\n')) perNode.set(h, (perNode.get(h) ?? 0) + 1);
      note(`placement: ${[...perNode].map(([h, n]) => `${h}=${n}`).join(' ')}`);
      await run('every MPI collective', path.join(mpiProgramsDir, 'collectives'), []);
      await run('ping-pong 0 B..16 MiB', path.join(mpiProgramsDir, 'pingpong'), ['--neighbors']);
      await run('checksummed stress, 256 MiB per pair', path.join(mpiProgramsDir, 'stress'), ['--bytes', '256M']);

      step('what each node\'s dicomd saw (asked through libdicom)');
      const state = requireState();
      const view: Record<string, string | number>[] = [];
      for (let k = 1; k <= state.nodes.length; k++) {
        const q = await labExec(k, [path.join(root, 'bin/dicomctl'), 'daemon', 'query', '--json'], { timeoutMs: 30_000 });
        const v = q.exitCode === 0 ? (JSON.parse(q.stdout) as { node: string; pid: number; uptime_s: number; directory: unknown[]; cache: unknown[] }) : null;
        view.push({ node: state.nodes[k - 1]!.name, addr: state.nodes[k - 1]!.addr, dicomd: v ? `pid ${v.pid}, up ${v.uptime_s.toFixed(1)} s` : 'no answer', 'homed ranks': v?.directory.length ?? '-', 'cached lookups': v?.cache.length ?? '-' });
      }
      printTable(view);
    } finally {
      if (args.values.keep) note('lab kept (dicomctl lab down removes it)');
      else await timed('lab down', () => labDown());
    }
    process.stdout.write('\nsummary: MPI jobs over btl dicom across the lab\n');
    printTable(rows);
    process.stdout.write(`total ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    if (rows.some((r) => r.result !== 'ok')) throw new CliError('a demo job failed');
  },
};

export const commands: Command[] = [demo];
