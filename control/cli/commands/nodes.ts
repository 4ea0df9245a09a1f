// dicomctl nodes list: GET /nodes.
import { type Command } from '../command.js';
import { printJson, printTable } from '../output.js';
import { call, client, clientOptions } from './api-common.js';

interface NodeView {
  name: string;
  source: string;
  address: string | null;
  healthy: boolean | null;
  dicomd: { pid?: number; uptime_s?: number; endpoints?: unknown[]; directory?: unknown[] } | null;
  dicomdError: string | null;
}

const dicomd = (n: NodeView) =>
  n.dicomd ? `pid ${n.dicomd.pid}, up ${Number(n.dicomd.uptime_s ?? 0).toFixed(0)} s, ${n.dicomd.endpoints?.length ?? 0} endpoints, ${n.dicomd.directory?.length ?? 0} homed` : n.source === 'registered' ? '-' : `no answer: ${n.dicomdError?.slice(0, 60) ?? ''}`;

const listCmd: Command = {
  name: 'nodes list',
  summary: "this host and the lab's nodes with their dicomd status (through libdicom), and registered nodes",
  usage: 'nodes list [--json]',
  options: { ...clientOptions },
  async run(args) {
    const ns = await call(() => client(args).json<NodeView[]>('GET', '/nodes'));
    if (args.values.json) return printJson(ns);
    printTable(ns.map((n) => ({ name: n.name, source: n.source, address: n.address ?? '-', healthy: n.healthy === null ? '-' : n.healthy ? 'yes' : 'no', dicomd: dicomd(n) })));
  },
};

export const commands: Command[] = [listCmd];
