// dicomctl lab up|down|status: the cluster in a box (network namespaces + bridge, sshd and dicomd per node).
import { type Command, int, str } from '../command.js';
import { CliError, note, printJson, printTable, step } from '../output.js';
import { LabError, MAX_NODES, labDown, labStatus, labUp } from '../../lab/index.js';
import { DaemonError } from '../../daemon/daemon.js';
import { type NodeCapacity, parseCapacity } from '../../lab/cgroup.js';

/** Library errors are the user's to act on: no stack trace. */
async function cli<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof LabError || e instanceof DaemonError) throw new CliError(e.message);
    throw e;
  }
}

const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const capacityText = (c: NodeCapacity | null) =>
  c ? [c.cpus !== undefined ? `cpus ${c.cpus}` : '', c.quota !== undefined ? `quota ${c.quota}` : ''].filter(Boolean).join(', ') : 'all CPUs';

export const commands: Command[] = [
  {
    name: 'lab up',
    summary: `start a lab of N nodes (netns + bridge, sshd and dicomd per node; N ≤ ${MAX_NODES})`,
    usage: 'lab up --nodes N [--cpus n1=0,n2=1] [--cpu-quota n3=0.5] [--no-dicomd] [--dicomd-bin PATH] [--no-verify] [--gossip-period-ms MS] [--gossip-window N] [--gossip-max-age-ms MS] [--json]',
    options: {
      nodes: { type: 'string', short: 'n' },
      cpus: { type: 'string' },
      'cpu-quota': { type: 'string' },
      'gossip-period-ms': { type: 'string' },
      'gossip-window': { type: 'string' },
      'gossip-max-age-ms': { type: 'string' },
      'no-dicomd': { type: 'boolean' },
      'dicomd-bin': { type: 'string' },
      'no-verify': { type: 'boolean' },
    },
    async run(args) {
      const nodes = int(args, 'nodes', 3, 1, MAX_NODES);
      const gossip = {
        periodMs: int(args, 'gossip-period-ms', 500, 10, 60_000),
        window: int(args, 'gossip-window', 16, 1, 1024),
        maxAgeMs: int(args, 'gossip-max-age-ms', 10_000, 10, 86_400_000),
      };
      const cpus = str(args, 'cpus');
      const cpuQuota = str(args, 'cpu-quota');
      try {
        parseCapacity(cpus, cpuQuota, nodes);
      } catch (e) {
        if (e instanceof LabError) throw new CliError(e.message, 2);
        throw e;
      }
      const r = await cli(() => labUp({ nodes, dicomd: !args.values['no-dicomd'], dicomdBin: str(args, 'dicomd-bin'), verify: !args.values['no-verify'], gossip, cpus, cpuQuota, log: step }));
      note(`lab up with ${nodes} nodes in ${secs(r.timings.total ?? 0)}`);
      if (args.values.json) return printJson({ ...r.state, timings: r.timings });
      printTable(r.state.nodes.map((n) => ({ node: n.name, netns: n.ns, addr: n.addr, sshd: n.sshdPid, dicomd: n.dicomdPid ?? '-', capacity: capacityText(n.capacity ?? null) })));
      process.stdout.write(`ssh config: ${r.state.sshConfig}\nhostfile:   ${r.state.hostfile}\n`);
    },
  },
  {
    name: 'lab down',
    summary: 'stop every lab process and delete the lab namespaces (safe after a crash; idempotent)',
    usage: 'lab down [--json]',
    async run(args) {
      const r = await cli(() => labDown({ log: step }));
      if (args.values.json) return printJson(r);
      if (!r.hadLab) return void process.stdout.write('no lab\n');
      process.stdout.write(
        `lab down: ${r.namespaces.length} namespaces, ${r.terminated.length} processes stopped` +
          `${r.killed.length ? ` (${r.killed.length} killed)` : ''} in ${secs(r.durationMs)}\n`,
      );
    },
  },
  {
    name: 'lab status',
    summary: 'show each lab node: namespace, sshd, dicomd',
    usage: 'lab status [--json]',
    async run(args) {
      const s = await cli(() => labStatus());
      if (args.values.json) return printJson(s);
      if (!s.up) {
        process.stdout.write(s.strayNamespaces.length ? `no lab state, but namespaces remain: ${s.strayNamespaces.join(' ')}; run: dicomctl lab down\n` : 'no lab\n');
        return;
      }
      const yn = (b: boolean) => (b ? 'yes' : 'NO');
      printTable(
        s.nodes.map((n) => ({
          node: n.name,
          addr: n.addr,
          netns: yn(n.nsPresent),
          sshd: n.sshdAlive ? `${n.sshdPid}${n.sshdListening ? '' : ' (not listening)'}` : 'DEAD',
          dicomd: !s.dicomd ? '-' : n.dicomdAlive ? `${n.dicomdPid}${n.dicomdListening ? ' @dicomd' : ' (no @dicomd)'}` : 'DEAD',
          capacity: capacityText(n.capacity),
          healthy: yn(n.healthy),
        })),
      );
      process.stdout.write(`subnet ${s.subnet}, created ${s.createdAt}, bridge ${s.bridgePresent ? 'present' : 'MISSING'}\n`);
      if (s.strayNamespaces.length) process.stdout.write(`stray namespaces: ${s.strayNamespaces.join(' ')}\n`);
      if (!s.healthy) throw new CliError('lab is not healthy', 1);
    },
  },
];
