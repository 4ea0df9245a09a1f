// `dicomctl serve`: the database (DATABASE_URL or embedded), migrations, the
// job queue with crash recovery, then the API on loopback by default.
import type { FastifyInstance } from 'fastify';
import { type Db, openDb } from '../db/index.js';
import { type JobQueue, startQueue } from '../jobs/queue.js';
import { startPolicyRunner } from '../balancer/runner.js';
import { buildApp } from './app.js';

export interface ServeOptions {
  port?: number;
  host?: string;
  databaseUrl?: string;
  embeddedDir?: string;
  buildsDir?: string;
  concurrency?: number;
  /** MPI jobs run at once (see control/jobs/queue.ts) */
  mpiSlots?: number;
  log?: (msg: string) => void;
  logger?: boolean;
}

export interface Server {
  app: FastifyInstance;
  db: Db;
  queue: JobQueue;
  url: string;
  close(): Promise<void>;
}

export async function serve(opts: ServeOptions = {}): Promise<Server> {
  const log = opts.log ?? (() => {});
  const db = await openDb({ url: opts.databaseUrl, embeddedDir: opts.embeddedDir, log });
  let queue: JobQueue | undefined;
  try {
    queue = await startQueue(db, { concurrency: opts.concurrency, mpiSlots: opts.mpiSlots, buildsDir: opts.buildsDir, log });
    const app = await buildApp({ db, queue, logger: opts.logger ? { level: 'info' } : false });
    const address = await app.listen({ port: opts.port ?? 7311, host: opts.host ?? '127.0.0.1' });
    // Enabled load-balance policies run while a lab is up (see control/balancer/runner.ts).
    const policies = startPolicyRunner(db.prisma, { log });
    const q = queue;
    let closing: Promise<void> | undefined;
    return {
      app,
      db,
      queue: q,
      url: address,
      close: () =>
        (closing ??= (async () => {
          await policies.stop();
          await app.close();
          await q.stop();
          await db.close();
        })()),
    };
  } catch (e) {
    await queue?.stop().catch(() => {});
    await db.close().catch(() => {});
    throw e;
  }
}
