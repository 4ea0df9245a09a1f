// dicomctl jobs create|list|show: MPI jobs through the REST API.
import { type Command, int, str } from '../command.js';
import { CliError, note, printJson, printTable, step } from '../output.js';
import { call, client, clientOptions, positiveId } from './api-common.js';

interface Job {
  id: number;
  nodes: string[];
  np: number;
  program: string;
  args: string[];
  status: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

const row = (j: Job) => ({ id: j.id, nodes: j.nodes.join(','), np: j.np, status: j.status, exit: j.exitCode ?? '-', program: [j.program, ...j.args].join(' ').slice(0, 60) });

const createCmd: Command = {
  name: 'jobs create',
  summary: 'launch an MPI job over dicom on this host or across lab nodes and wait for it (--detach to return at once)',
  usage: 'jobs create --np N [--node n1 --node n2...] [--mca NAME=VALUE...] [--component-dir DIR] [--daemon NAME] [--timeout S] [--detach] [--json] PROGRAM [ARGS...]',
  options: {
    ...clientOptions,
    np: { type: 'string' },
    node: { type: 'string', multiple: true },
    mca: { type: 'string', multiple: true },
    'component-dir': { type: 'string' },
    daemon: { type: 'string' },
    timeout: { type: 'string' },
    detach: { type: 'boolean' },
  },
  async run(args) {
    const [program, ...rest] = args.positionals;
    const np = int(args, 'np', 0, 1, 16);
    if (!program || !np) throw new CliError('jobs create needs --np N and a PROGRAM', 2);
    const api = client(args);
    const nodes = (args.values as Record<string, unknown>).node as string[] | undefined;
    const mcaArgs = ((args.values as Record<string, unknown>).mca as string[] | undefined) ?? [];
    const mca: Record<string, string> = {};
    for (const a of mcaArgs) {
      const eq = a.indexOf('=');
      if (eq < 1 || eq === a.length - 1) throw new CliError(`--mca ${a}: use NAME=VALUE`, 2);
      mca[a.slice(0, eq)] = a.slice(eq + 1);
    }
    const body = {
      program,
      args: rest,
      np,
      ...(nodes ? { nodes } : {}),
      ...(mcaArgs.length ? { mca } : {}),
      ...(str(args, 'component-dir') ? { componentDir: str(args, 'component-dir') } : {}),
      ...(str(args, 'daemon') ? { daemon: str(args, 'daemon') } : {}),
      ...(str(args, 'timeout') ? { timeoutSeconds: int(args, 'timeout', 300, 1, 3600) } : {}),
    };
    let j = await call(() => api.json<Job>('POST', '/jobs', body));
    step(`job ${j.id} queued: ${np} ranks of ${j.program} on ${j.nodes.join(', ')}`);
    if (args.values.detach) return args.values.json ? printJson(j) : void process.stdout.write(`${j.id}\n`);
    let last = '';
    const t0 = performance.now();
    while (j.status === 'queued' || j.status === 'running') {
      if (j.status !== last) note(`${j.status} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      last = j.status;
      await new Promise((r) => setTimeout(r, 300));
      j = await call(() => api.json<Job>('GET', `/jobs/${j.id}`));
    }
    if (args.values.json) printJson(j);
    else {
      process.stdout.write(j.stdout);
      process.stderr.write(j.stderr);
      note(`job ${j.id} ${j.status}, exit ${j.exitCode ?? '-'}${j.error ? ` (${j.error})` : ''}`);
    }
    if (j.status !== 'succeeded') throw new CliError(`job ${j.id} failed${j.error ? `: ${j.error}` : ''}`, 1);
  },
};

const listCmd: Command = {
  name: 'jobs list',
  summary: 'list MPI jobs, newest first',
  usage: 'jobs list [--json]',
  options: { ...clientOptions },
  async run(args) {
    const js = await call(() => client(args).json<Job[]>('GET', '/jobs?limit=100'));
    if (args.values.json) return printJson(js);
    if (js.length === 0) return void process.stdout.write('no jobs\n');
    printTable(js.map(row));
  },
};

const showCmd: Command = {
  name: 'jobs show',
  summary: 'one MPI job with its stdout',
  usage: 'jobs show ID [--json]',
  options: { ...clientOptions },
  async run(args) {
    const id = positiveId(args, 'job');
    const j = await call(() => client(args).json<Job>('GET', `/jobs/${id}`));
    if (args.values.json) return printJson(j);
    printTable([row(j)]);
    process.stdout.write(j.stdout);
  },
};

export const commands: Command[] = [createCmd, listCmd, showCmd];
