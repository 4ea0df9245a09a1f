// dicomctl pool ...: node pools through the REST API (a policy moves ranks only within its pools).
import { type Command, str } from '../command.js';
import { CliError, printJson, printTable } from '../output.js';
import { call, client, clientOptions, positiveId } from './api-common.js';

interface Pool {
  id: number;
  name: string;
  nodes: string[];
}

export const commands: Command[] = [
  {
    name: 'pool list',
    summary: 'node pools (policies move ranks only within a pool)',
    usage: 'pool list [--json]',
    options: { ...clientOptions },
    async run(args) {
      const ps = await call(() => client(args).json<Pool[]>('GET', '/pools'));
      if (args.values.json) return printJson(ps);
      printTable(ps.map((p) => ({ id: p.id, name: p.name, nodes: p.nodes.join(',') })));
    },
  },
  {
    name: 'pool create',
    summary: 'define a node pool by the nodes\' addresses',
    usage: 'pool create NAME --nodes ADDR,ADDR,... [--json]',
    options: { ...clientOptions, nodes: { type: 'string' } },
    async run(args) {
      const name = args.positionals[0];
      const nodes = str(args, 'nodes')?.split(',').filter(Boolean);
      if (!name || !nodes?.length) throw new CliError('usage: dicomctl pool create NAME --nodes 10.77.0.11,10.77.0.12', 2);
      const p = await call(() => client(args).json<Pool>('POST', '/pools', { name, nodes }));
      if (args.values.json) return printJson(p);
      process.stdout.write(`pool ${p.id} "${p.name}": ${p.nodes.join(', ')}\n`);
    },
  },
  {
    name: 'pool update',
    summary: "replace a pool's nodes",
    usage: 'pool update ID --nodes ADDR,ADDR,... [--json]',
    options: { ...clientOptions, nodes: { type: 'string' } },
    async run(args) {
      const id = positiveId(args, 'pool');
      const nodes = str(args, 'nodes')?.split(',').filter(Boolean);
      if (!nodes?.length) throw new CliError('usage: dicomctl pool update ID --nodes 10.77.0.11,10.77.0.12', 2);
      const p = await call(() => client(args).json<Pool>('PATCH', `/pools/${id}`, { nodes }));
      if (args.values.json) return printJson(p);
      process.stdout.write(`pool ${p.id} "${p.name}": ${p.nodes.join(', ')}\n`);
    },
  },
  {
    name: 'pool delete',
    summary: 'delete a pool that no policy uses',
    usage: 'pool delete ID',
    options: { ...clientOptions },
    async run(args) {
      const id = positiveId(args, 'pool');
      await call(() => client(args).raw('DELETE', `/pools/${id}`));
      process.stdout.write(`pool ${id} deleted\n`);
    },
  },
];
