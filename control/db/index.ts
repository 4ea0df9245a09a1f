// The job database: Postgres from DATABASE_URL, else the embedded default.
// Migrations (prisma/migrations) are applied on open with `prisma migrate deploy`.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { PrismaClient } from '../../build/prisma-client/client.js';
import { root } from '../paths.js';
import { PrismaPg } from '@prisma/adapter-pg';
import { adapterFactory, poolConfig } from './adapter.js';
import { type Embedded, startEmbedded } from './embedded.js';

export { PrismaClient };
export type { Prisma } from '../../build/prisma-client/client.js';

export interface Db {
  prisma: PrismaClient;
  /** the pg pool under Prisma, for the few hot reads that skip the ORM */
  pool: pg.Pool;
  url: string;
  /** set when the embedded default serves */
  embedded?: Embedded;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** overrides DATABASE_URL */
  url?: string;
  /** apply pending migrations (default true) */
  migrate?: boolean;
  /** data directory for the embedded default */
  embeddedDir?: string;
  log?: (msg: string) => void;
}

const migrationsDir = path.join(root, 'prisma', 'migrations');

/** Names of migrations on disk that the database has not finished applying. */
export async function pendingMigrations(url: string): Promise<string[]> {
  const onDisk = (await readdir(migrationsDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  const client = new pg.Client(poolConfig(url, { Client: undefined }) as pg.ClientConfig);
  await client.connect();
  try {
    const exists = await client.query(`SELECT to_regclass('public._prisma_migrations') IS NOT NULL AS ok`);
    if (!exists.rows[0]?.ok) return onDisk;
    const done = await client.query<{ migration_name: string }>(
      `SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const applied = new Set(done.rows.map((r) => r.migration_name));
    return onDisk.filter((m) => !applied.has(m));
  } finally {
    await client.end();
  }
}

/** `prisma migrate deploy` through the CLI (wasm schema engine, offline). Skipped when nothing is pending. */
export async function migrate(url: string, log: (msg: string) => void = () => {}): Promise<string[]> {
  const pending = await pendingMigrations(url);
  if (pending.length === 0) return [];
  log(`applying ${pending.length} migration(s): ${pending.join(', ')}`);
  const r = await execa(path.join(root, 'node_modules', '.bin', 'prisma'), ['migrate', 'deploy'], {
    cwd: root,
    env: { DATABASE_URL: url },
    all: true,
    reject: false,
    timeout: 120_000,
  });
  if (r.exitCode !== 0) throw new Error(`prisma migrate deploy failed (exit ${r.exitCode}):\n${r.all}`);
  return pending;
}

/** Creates database `name` on the server of `url` if missing (the role needs CREATEDB). */
export async function ensureDatabase(url: string): Promise<void> {
  const cfg = poolConfig(url, { Client: undefined }) as pg.ClientConfig;
  const name = cfg.database;
  if (!name) return;
  const client = new pg.Client({ ...cfg, database: 'postgres' });
  await client.connect();
  try {
    const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (r.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } catch (e) {
    // a concurrent creator won the race
    if ((e as { code?: string }).code !== '42P04') throw e;
  } finally {
    await client.end();
  }
}

/** Prisma over a pg pool we own, so hot paths can use the same pool directly. */
export function createClients(url: string): { prisma: PrismaClient; pool: pg.Pool } {
  const pool = new pg.Pool(
    poolConfig(url, {
      max: 8,
      connectionTimeoutMillis: 3000,
      // A query waiting on a dead server fails instead of hanging: the API answers 503.
      query_timeout: 15_000,
    }),
  );
  pool.on('error', () => {}); // an idle client lost with the server; the next query reports it
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return { prisma, pool };
}

export function createClient(url: string): PrismaClient {
  return new PrismaClient({ adapter: adapterFactory(url, { max: 4, connectionTimeoutMillis: 3000, query_timeout: 15_000 }) });
}

export async function openDb(opts: OpenOptions = {}): Promise<Db> {
  const log = opts.log ?? (() => {});
  let url = opts.url ?? process.env.DATABASE_URL;
  let embedded: Embedded | undefined;
  if (!url) {
    embedded = await startEmbedded(opts.embeddedDir, log);
    url = embedded.url;
    log(`embedded postgres in ${embedded.dir} on 127.0.0.1:${embedded.port}`);
  }
  try {
    if (opts.migrate !== false) await migrate(url, log);
  } catch (e) {
    await embedded?.stop();
    throw e;
  }
  const { prisma, pool } = createClients(url);
  return {
    prisma,
    pool,
    url,
    embedded,
    async close() {
      await prisma.$disconnect();
      await pool.end().catch(() => {});
      await embedded?.stop();
    },
  };
}

/** Postgres URL with a different database name. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = '/' + database;
  return u.toString();
}
