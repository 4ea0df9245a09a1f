// dicomctl deployments list|create|show: through the REST API.
import { type Command, int, str } from '../command.js';
import { CliError, note, printJson, printTable, step } from '../output.js';
import { call, client, clientOptions, positiveId } from './api-common.js';

interface Deployment {
  id: number;
  buildId: number;
  status: string;
  dest: string;
  error: string | null;
  createdAt: string;
  nodes: { nodeName: string; status: string; error: string | null; log: string }[];
}

const row = (d: Deployment) => ({ id: d.id, build: d.buildId, status: d.status, dest: d.dest, nodes: d.nodes.map((n) => `${n.nodeName}:${n.status}`).join(',') });

const listCmd: Command = {
  name: 'deployments list',
  summary: 'list deployments, newest first',
  usage: 'deployments list [--json]',
  options: { ...clientOptions },
  async run(args) {
    const ds = await call(() => client(args).json<Deployment[]>('GET', '/deployments?limit=100'));
    if (args.values.json) return printJson(ds);
    if (ds.length === 0) return void process.stdout.write('no deployments\n');
    printTable(ds.map(row));
  },
};

const createCmd: Command = {
  name: 'deployments create',
  summary: "install a succeeded build's artifact into DIR on nodes (local, or lab nodes over ssh), verify with ompi_info, roll back a failing node",
  usage: 'deployments create --build ID --dest DIR [--node local|n1|n2...]... [--detach] [--json]',
  options: { ...clientOptions, build: { type: 'string' }, dest: { type: 'string' }, node: { type: 'string', multiple: true }, detach: { type: 'boolean' } },
  async run(args) {
    const buildId = int(args, 'build', 0, 1, 2147483647);
    const dest = str(args, 'dest');
    if (!buildId || !dest) throw new CliError('deployments create needs --build ID and --dest DIR', 2);
    const nodes = (args.values as Record<string, unknown>).node as string[] | undefined;
    const api = client(args);
    let d = await call(() => api.json<Deployment>('POST', '/deployments', { buildId, dest: dest.startsWith('/') ? dest : `${process.cwd()}/${dest}`, ...(nodes ? { nodes } : {}) }));
    step(`deployment ${d.id} of build ${buildId} to ${d.nodes.map((n) => n.nodeName).join(', ')}`);
    if (!args.values.detach) {
      const seen = new Map<string, string>();
      for (;;) {
        d = await call(() => api.json<Deployment>('GET', `/deployments/${d.id}`));
        for (const n of d.nodes) {
          if (seen.get(n.nodeName) !== n.status) note(`${n.nodeName}: ${n.status}${n.error ? ` (${n.error})` : ''}`);
          seen.set(n.nodeName, n.status);
        }
        if (d.status !== 'pending' && d.status !== 'running') break;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    if (args.values.json) printJson(d);
    else process.stdout.write(`deployment ${d.id} ${d.status}\n`);
    if (d.status === 'failed') throw new CliError(`deployment ${d.id} failed`, 1);
  },
};

const showCmd: Command = {
  name: 'deployments show',
  summary: 'one deployment with its per-node status and log',
  usage: 'deployments show ID [--json]',
  options: { ...clientOptions },
  async run(args) {
    const id = positiveId(args, 'deployment');
    const d = await call(() => client(args).json<Deployment>('GET', `/deployments/${id}`));
    if (args.values.json) return printJson(d);
    printTable([row(d)]);
    for (const n of d.nodes) process.stdout.write(`\n[${n.nodeName}] ${n.status}\n${n.log}`);
  },
};

export const commands: Command[] = [listCmd, createCmd, showCmd];
