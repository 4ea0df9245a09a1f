// dicomctl serve: the control plane (API + job queue) on loopback by default.
import { type Command, int, str } from '../command.js';
import { CliError, note, step } from '../output.js';
import { serve } from '../../api/server.js';
import { MPI_SLOTS_DEFAULT, MPI_SLOTS_MAX } from '../../jobs/queue.js';
import { releaseSignalHandlers } from '../../db/embedded.js';

const serveCmd: Command = {
  name: 'serve',
  summary: 'start the control plane: REST API, job queue, database (DATABASE_URL or embedded)',
  usage: `serve [--port 7311] [--host 127.0.0.1] [--mpi-slots ${MPI_SLOTS_DEFAULT}] [--verbose]`,
  options: { port: { type: 'string' }, host: { type: 'string' }, 'mpi-slots': { type: 'string' }, verbose: { type: 'boolean' } },
  async run(args) {
    const port = int(args, 'port', 7311, 0, 65535);
    const mpiSlots = int(args, 'mpi-slots', MPI_SLOTS_DEFAULT, 1, MPI_SLOTS_MAX);
    const host = str(args, 'host') ?? '127.0.0.1';
    step(process.env.DATABASE_URL ? 'database from DATABASE_URL' : 'no DATABASE_URL: starting the embedded database');
    const t0 = performance.now();
    const s = await serve({ port, host, mpiSlots, log: (m) => note(m), logger: Boolean(args.values.verbose) }).catch((e: unknown) => {
      throw new CliError(`cannot start: ${(e as Error).message}`);
    });
    note(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') note(`warning: listening on ${host}, beyond loopback`);
    process.stdout.write(`${args.values.json ? JSON.stringify({ url: s.url, embedded: Boolean(s.db.embedded) }) : `control plane at ${s.url} (docs at ${s.url}/docs)`}\n`);
    releaseSignalHandlers();
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        step(`${sig}: stopping (waiting for a running build)`);
        void s.close().then(resolve, resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
  },
};

export const commands: Command[] = [serveCmd];
