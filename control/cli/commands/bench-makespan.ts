// dicomctl bench makespan: static btl/tcp placement against dicom with the balancer on
// (see control/bench/makespan.ts).
import { benchMakespan } from '../../bench/makespan.js';
import { type Command, int, str } from '../command.js';
import { CliError, note, printTable } from '../output.js';

const makespanCmd: Command = {
  name: 'bench makespan',
  summary: 'two CPU-bound, communicating jobs started on one node: makespan on btl/tcp (static) vs dicom with the policy on; ratio and a timeline plot',
  usage: 'bench makespan [--rounds 400] [--work 20] [--repeats 1] [--json FILE] [--svg FILE]',
  options: { rounds: { type: 'string' }, work: { type: 'string' }, repeats: { type: 'string' }, json: { type: 'string' }, svg: { type: 'string' } },
  async run(args) {
    if (process.getuid?.() !== 0) throw new CliError('bench makespan needs root: it builds a lab of network namespaces');
    const json = str(args, 'json');
    if (args.values.json !== undefined && !json) throw new CliError('--json takes a FILE to write', 2);
    const r = await benchMakespan({
      rounds: int(args, 'rounds', 400, 10, 100_000),
      work: int(args, 'work', 20, 1, 10_000),
      repeats: int(args, 'repeats', 1, 1, 10),
      json,
      svg: str(args, 'svg'),
      log: note,
    });
    printTable(r.runs.map((x) => ({ mode: x.mode, makespan_s: x.makespan_s.toFixed(1), jobs: x.jobs_ok ? 'ok' : 'FAILED', migrations: x.moves })));
    process.stdout.write(`makespan ratio dicom+policy / tcp static: ${r.makespan_ratio} (target <= 0.7)\n`);
    if (r.svg) process.stdout.write(`timeline: ${r.svg}\n`);
  },
};

export const commands: Command[] = [makespanCmd];
