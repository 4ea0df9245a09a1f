// dicomctl targets list|add|detect: through the REST API.
import { type Command, str } from '../command.js';
import { CliError, printJson, printTable, step } from '../output.js';
import { call, client, clientOptions } from './api-common.js';

interface Target {
  id: number;
  kind: string;
  version: string;
  btlApi: string | null;
  pkglibdir: string | null;
  sysroot: string;
  prefix: string | null;
  node: { name: string; address: string } | null;
}

const row = (t: Target) => ({ id: t.id, node: t.node?.name ?? 'local', kind: t.kind, version: t.version, btlApi: t.btlApi ?? '-', pkglibdir: t.pkglibdir ?? '-', sysroot: t.sysroot });

const listCmd: Command = {
  name: 'targets list',
  summary: 'list registered targets',
  usage: 'targets list [--url URL] [--token T] [--json]',
  options: { ...clientOptions },
  async run(args) {
    const ts = await call(() => client(args).json<Target[]>('GET', '/targets?limit=1000'));
    if (args.values.json) return printJson(ts);
    if (ts.length === 0) return void process.stdout.write('no targets; add one with "dicomctl targets detect"\n');
    printTable(ts.map(row));
  },
};

const detectCmd: Command = {
  name: 'targets detect',
  summary: "detect Open MPI (ompi_info, mpicc, btl.h) on the server host, or on a lab node over ssh, and register it",
  usage: 'targets detect [--node n2] [--prefix PREFIX] [--url URL] [--token T] [--json]',
  options: { ...clientOptions, prefix: { type: 'string' }, node: { type: 'string' } },
  async run(args) {
    const prefix = str(args, 'prefix');
    const node = str(args, 'node');
    step(node ? `detecting Open MPI on ${node} over ssh` : 'detecting Open MPI on the control-plane host');
    const body = node ? { detect: 'ssh', node } : { detect: 'local' };
    const t = await call(() => client(args).json<Target>('POST', '/targets', { ...body, ...(prefix ? { prefix } : {}) }));
    if (args.values.json) return printJson(t);
    printTable([row(t)]);
  },
};

const addCmd: Command = {
  name: 'targets add',
  summary: 'register a target with explicit facts',
  usage: 'targets add --kind ompi|kernel --version V [--btl-api 3.1|3.3 --pkglibdir DIR --incdir DIR...] [--sysroot DIR] [--json]',
  options: {
    ...clientOptions,
    kind: { type: 'string' },
    version: { type: 'string' },
    'btl-api': { type: 'string' },
    pkglibdir: { type: 'string' },
    incdir: { type: 'string', multiple: true },
    libdir: { type: 'string', multiple: true },
    bindir: { type: 'string' },
    sysroot: { type: 'string' },
  },
  async run(args) {
    const kind = str(args, 'kind');
    const version = str(args, 'version');
    if (!kind || !version) throw new CliError('targets add needs --kind and --version', 2);
    const list = (k: string) => (args.values as Record<string, unknown>)[k] as string[] | undefined;
    const body = {
      kind,
      version,
      btlApi: str(args, 'btl-api'),
      pkglibdir: str(args, 'pkglibdir'),
      incdirs: list('incdir'),
      libdirs: list('libdir'),
      bindir: str(args, 'bindir'),
      sysroot: str(args, 'sysroot'),
    };
    const t = await call(() => client(args).json<Target>('POST', '/targets', body));
    if (args.values.json) return printJson(t);
    printTable([row(t)]);
  },
};

export const commands: Command[] = [listCmd, addCmd, detectCmd];
