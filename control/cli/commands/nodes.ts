// dicomctl nodes list: GET /nodes.
import { type Command } from '../command.js';
import { printJson, printTable } from '../output.js';
import { call, client, clientOptions } from './api-common.js';

interface NodeView {
  name: string;
  source: string;
  address: string | null;
  healthy: boolean | null;
  dicomdError: string | null;
}

const listCmd: Command = {
  name: 'nodes list',
  summary: 'this host (dicomd status via libdicom), lab nodes and registered nodes',
  usage: 'nodes list [--json]',
  options: { ...clientOptions },
  async run(args) {
    const ns = await call(() => client(args).json<NodeView[]>('GET', '/nodes'));
    if (args.values.json) return printJson(ns);
    printTable(ns.map((n) => ({ name: n.name, source: n.source, address: n.address ?? '-', healthy: n.healthy === null ? '-' : n.healthy ? 'yes' : 'no', note: n.dicomdError?.slice(0, 60) ?? '' })));
  },
};

export const commands: Command[] = [listCmd];
