// The API tests' world: a real Postgres (Debian's, started by ci/provision.sh),
// one fresh database per test file cloned from a migrated template, and an
// API server on a loopback port with a valid token.
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../control/api/app.js';
import { createToken } from '../../control/api/auth.js';
import { type Db, createClients, ensureDatabase, migrate, withDatabase } from '../../control/db/index.js';
import { poolConfig } from '../../control/db/adapter.js';
import { type JobQueue, startQueue } from '../../control/jobs/queue.js';

/** The template database: migrated once, cloned per test file. */
export const TEST_DATABASE_URL = process.env.DICOM_TEST_DATABASE_URL ?? 'postgresql://dicom:dicom@127.0.0.1:5432/dicom_test';

let templateReady: Promise<void> | undefined;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...(poolConfig(withDatabase(TEST_DATABASE_URL, 'postgres'), { Client: undefined }) as pg.ClientConfig) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A fresh, migrated database named dicom_test_<name>. */
export async function freshDatabase(name: string): Promise<string> {
  templateReady ??= (async () => {
    try {
      await ensureDatabase(TEST_DATABASE_URL);
    } catch (e) {
      throw new Error(`the test Postgres at ${TEST_DATABASE_URL} is unreachable (${(e as Error).message}); run "bash ci/provision.sh" (starts Debian's PostgreSQL and creates the dicom role)`);
    }
    await migrate(TEST_DATABASE_URL);
  })();
  await templateReady;
  const template = new URL(TEST_DATABASE_URL).pathname.slice(1);
  const db = `${template}_${name}`;
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(db)} WITH (FORCE)`);
    // Cloning needs the template idle; another test process may be touching it for a moment (55006).
    for (let i = 0; ; i++) {
      try {
        await c.query(`CREATE DATABASE ${c.escapeIdentifier(db)} TEMPLATE ${c.escapeIdentifier(template)}`);
        break;
      } catch (e) {
        if ((e as { code?: string }).code !== '55006' || i >= 40) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  });
  return withDatabase(TEST_DATABASE_URL, db);
}

export interface TestApi {
  app: FastifyInstance;
  db: Db;
  queue?: JobQueue;
  url: string;
  token: string;
  /** fetch with the token */
  req(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

export async function startApi(url: string, opts: { queue?: boolean; buildsDir?: string; bodyLimit?: number; mpiSlots?: number } = {}): Promise<TestApi> {
  const { prisma, pool } = createClients(url);
  const db: Db = {
    prisma,
    pool,
    url,
    close: async () => {
      await prisma.$disconnect();
      await pool.end().catch(() => {});
    },
  };
  const queue = opts.queue ? await startQueue(db, { buildsDir: opts.buildsDir, mpiSlots: opts.mpiSlots }) : undefined;
  const app = await buildApp({ db, queue, bodyLimit: opts.bodyLimit });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const { token } = await createToken(prisma, `test-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  return {
    app,
    db,
    queue,
    url: base,
    token,
    req: (method, path, body, headers = {}) =>
      fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      }),
    async close() {
      await app.close();
      await queue?.stop();
      await db.close();
    },
  };
}

export const json = async <T = Record<string, unknown>>(r: Response): Promise<T> => (await r.json()) as T;
