// dicomctl daemon start|stop|status: dicomd on this host, tracked by a pidfile under the state dir.
import { type Command, int, str } from '../command.js';
import { CliError, note, printJson, step } from '../output.js';
import { DaemonError, DEFAULT_PORT, daemonStatus, startDaemon, stopDaemon } from '../../daemon/daemon.js';

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
      if (args.values.json) return printJson(s);
      if (!s.running) {
        process.stdout.write(`dicomd is not running${s.stalePidfile ? ' (stale pidfile)' : ''}\n`);
        process.exitCode = 3; // LSB: program is not running
        return;
      }
      process.stdout.write(
        `dicomd running: pid ${s.pid}, ${s.socket} ${s.listening ? 'listening' : 'NOT listening'}` +
          `${s.nodeAddr ? `, node ${s.nodeAddr}:${s.port}` : ''}, since ${s.startedAt ?? '?'}, log ${s.logFile}\n`,
      );
    },
  },
];
