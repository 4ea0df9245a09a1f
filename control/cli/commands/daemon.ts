// dicomctl daemon start|stop|status: dicomd on this host, tracked by a pidfile under the state dir.
import { type Command, int, str } from '../command.js';
import { CliError, note, printJson, printTable, step } from '../output.js';
import { DaemonError, DEFAULT_PORT, DEFAULT_SOCKET, daemonStatus, startDaemon, stopDaemon } from '../../daemon/daemon.js';
import { LibdicomError, queryResolve, queryStatus, queryView } from '../../dicom/libdicom.js';
import { viewDetails, viewRows } from '../../cluster/gossip.js';

async function cli<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof DaemonError) throw new CliError(e.message);
    throw e;
  }
}

export const commands: Command[] = [
  {
    name: 'daemon start',
    summary: 'start dicomd on this host and wait until @dicomd answers',
    usage: 'daemon start [--node-addr A] [--port P] [--name SOCK] [--bin PATH] [--json]',
    options: { 'node-addr': { type: 'string' }, port: { type: 'string' }, name: { type: 'string' }, bin: { type: 'string' } },
    async run(args) {
      step('starting dicomd');
      const t0 = performance.now();
      const s = await cli(() => startDaemon({ bin: str(args, 'bin'), nodeAddr: str(args, 'node-addr'), port: int(args, 'port', DEFAULT_PORT, 1, 65535), name: str(args, 'name') }));
      note(s.alreadyRunning ? `already running (pid ${s.pid})` : `pid ${s.pid} listening on ${s.socket} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
      if (args.values.json) return printJson(s);
      process.stdout.write(`dicomd ${s.alreadyRunning ? 'already running' : 'started'}: pid ${s.pid}, log ${s.logFile}\n`);
    },
  },
  {
    name: 'daemon stop',
    summary: 'stop the dicomd started by "daemon start" (by its pidfile)',
    usage: 'daemon stop [--json]',
    async run(args) {
      const r = await cli(() => stopDaemon());
      if (args.values.json) return printJson(r);
      process.stdout.write(r.stopped ? `dicomd (pid ${r.pid}) stopped${r.killed ? ' with SIGKILL' : ''}\n` : 'dicomd is not running\n');
    },
  },
  {
    name: 'daemon status',
    summary: 'is dicomd running on this host, and does @dicomd answer',
    usage: 'daemon status [--json]',
    async run(args) {
      const s = daemonStatus();
      // The daemon's own view, asked through libdicom, when it answers.
      let view: Record<string, unknown> | null = null;
      if (s.running && s.listening) {
        try {
          view = queryStatus(s.socket.replace(/^@/, ''));
        } catch (e) {
          if (!(e instanceof LibdicomError)) throw e;
        }
      }
      if (args.values.json) return printJson({ ...s, view });
      if (!s.running) {
        process.stdout.write(`dicomd is not running${s.stalePidfile ? ' (stale pidfile)' : ''}\n`);
        process.exitCode = 3; // LSB: program is not running
        return;
      }
      process.stdout.write(
        `dicomd running: pid ${s.pid}, ${s.socket} ${s.listening ? 'listening' : 'NOT listening'}` +
          `${s.nodeAddr ? `, node ${s.nodeAddr}:${s.port}` : ''}, since ${s.startedAt ?? '?'}, log ${s.logFile}\n`,
      );
      if (view) process.stdout.write(`  ${(view.endpoints as unknown[]).length} endpoints registered, ${(view.directory as unknown[]).length} homed here, ${(view.cache as unknown[]).length} cached lookups\n`);
    },
  },
  {
    name: 'daemon query',
    summary: "the dicomd of this node (or network namespace) describes itself, through libdicom",
    usage: 'daemon query [--name SOCK] [--json]',
    options: { name: { type: 'string' } },
    async run(args) {
      const name = str(args, 'name') ?? DEFAULT_SOCKET;
      const view = await libdicom(() => queryStatus(name));
      if (args.values.json) return printJson(view);
      process.stdout.write(`dicomd @${name}: node ${String(view.node)}:${String(view.port)}, pid ${String(view.pid)}, up ${String(view.uptime_s)} s\n`);
      for (const e of view.endpoints as Record<string, unknown>[]) process.stdout.write(`  endpoint ${JSON.stringify(e)}\n`);
      for (const d of view.directory as Record<string, unknown>[]) process.stdout.write(`  homed ${JSON.stringify(d)}\n`);
    },
  },
  {
    name: 'daemon resolve',
    summary: 'where does (home node, home pid) run now? asks the home dicomd through the local one',
    usage: 'daemon resolve HOME_NODE:HOME_PID [--name SOCK] [--json]',
    options: { name: { type: 'string' } },
    async run(args) {
      const addr = args.positionals[0];
      if (!addr || !/^\d+\.\d+\.\d+\.\d+:\d+$/.test(addr)) throw new CliError('expected an address HOME_NODE:HOME_PID, e.g. 10.77.0.11:4242', 2);
      const r = await libdicom(() => queryResolve(addr, str(args, 'name') ?? DEFAULT_SOCKET));
      if (args.values.json) return printJson(r);
      process.stdout.write(`${addr} runs on ${String(r.node)} (endpoint port ${String(r.port)})\n`);
    },
  },
  {
    name: 'daemon view',
    summary: "the gossip view of this node's dicomd: every node it has heard of, with load, capacity and age",
    usage: 'daemon view [--name SOCK] [--json]',
    options: { name: { type: 'string' } },
    async run(args) {
      const name = str(args, 'name') ?? DEFAULT_SOCKET;
      const v = await libdicom(() => queryView(name));
      if (args.values.json) return printJson(v);
      process.stdout.write(
        `dicomd @${name} on ${v.node}: ${v.entries.length} node${v.entries.length === 1 ? '' : 's'} known; every ${v.period_ms} ms to one of ${v.peers.length} peers, window ${v.window}, max age ${v.max_age_ms} ms\n`,
      );
      printTable(viewRows(v));
      for (const line of viewDetails(v)) process.stdout.write(`  ${line}\n`);
    },
  },
];

async function libdicom<T>(fn: () => T): Promise<T> {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LibdicomError) throw new CliError(e.message);
    throw e;
  }
}
