// The pg driver adapter shared by the runtime client and the Prisma CLI
// (prisma.config.ts), with the workarounds STACK.md measured for
// @prisma/adapter-pg 6.19.3:
// - pg type OIDs name/char (19/18) and their arrays (1003/1002) are reported as
//   text (25) / text[] (1009), otherwise migrate fails with "Column type 'name'
//   could not be deserialized" (prisma/orm#27403);
// - the pool never keeps a process alive (allowExitOnIdle);
// - migration scripts are sent whole, not split on ";" (wholeScripts);
// - the shadow database is reached with discrete host/user/password/database
//   fields (a connectionString would override its name), and is dropped WITH
//   (FORCE) after our own connection to it is closed.
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';

const OID_REMAP: Record<number, number> = { 19: 25, 18: 25, 1003: 1009, 1002: 1009 };

function remap<T>(res: T): T {
  const fields = (res as { fields?: { dataTypeID: number }[] } | undefined)?.fields;
  if (Array.isArray(fields)) {
    for (const f of fields) {
      const to = OID_REMAP[f.dataTypeID];
      if (to !== undefined) f.dataTypeID = to;
    }
  }
  return res;
}

/** A pg.Client whose results report name/char columns as text. */
export class RemapClient extends pg.Client {
  // pg's overloads are many; this wrapper only post-processes the result.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override query(...args: any[]): any {
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args[args.length - 1] = (err: unknown, res: unknown) => last(err, err ? res : remap(res));
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const r = (super.query as (...a: unknown[]) => unknown)(...args);
    if (r && typeof (r as Promise<unknown>).then === 'function') return (r as Promise<unknown>).then(remap);
    return r;
  }
}

/** Discrete connection fields from a postgres:// URL. */
export function poolConfig(url: string, extra: pg.PoolConfig = {}): pg.PoolConfig {
  const u = new URL(url);
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new Error(`DATABASE_URL must be a postgres:// or postgresql:// URL, got ${u.protocol}`);
  }
  const host = u.searchParams.get('host') ?? (decodeURIComponent(u.hostname) || 'localhost');
  return {
    host,
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || undefined,
    password: decodeURIComponent(u.password) || undefined,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
    Client: RemapClient,
    allowExitOnIdle: true,
    ...extra,
  };
}

type Adapter = Awaited<ReturnType<PrismaPg['connect']>>;

/**
 * adapter-pg runs a migration script by splitting it on ";", which cuts a
 * dollar-quoted function body (plpgsql) apart. The script goes to the server
 * whole instead, as one simple query: Postgres runs its statements in order,
 * in one implicit transaction.
 */
function wholeScripts(adapter: Adapter): Adapter {
  const pool = adapter.underlyingDriver() as pg.Pool;
  const toDriverError = (adapter as unknown as { onError(e: unknown): never }).onError.bind(adapter);
  adapter.executeScript = async (script: string) => {
    try {
      await pool.query(script);
    } catch (e) {
      toDriverError(e);
    }
  };
  return adapter;
}

class ShadowAwarePg extends PrismaPg {
  constructor(private readonly cfg: pg.PoolConfig) {
    super(cfg);
  }
  override async connect() {
    return wholeScripts(await super.connect());
  }
  override async connectToShadowDb() {
    const database = `prisma_shadow_${globalThis.crypto.randomUUID().replaceAll('-', '')}`;
    const admin = new pg.Client({ ...this.cfg, Client: undefined } as pg.ClientConfig);
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${database}"`);
    } finally {
      await admin.end();
    }
    const shadow = new PrismaPg({ ...this.cfg, database });
    const adapter = wholeScripts(await shadow.connect());
    const dispose = adapter.dispose.bind(adapter);
    adapter.dispose = async () => {
      await dispose();
      const drop = new pg.Client({ ...this.cfg, Client: undefined } as pg.ClientConfig);
      await drop.connect();
      try {
        await drop.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      } finally {
        await drop.end();
      }
    };
    return adapter;
  }
}

export function adapterFactory(url: string, extra: pg.PoolConfig = {}): PrismaPg {
  return new ShadowAwarePg(poolConfig(url, extra));
}
