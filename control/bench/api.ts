// dicomctl bench api: autocannon against GET /builds of a control plane
// (its own process, as in production) whose scratch database holds N builds,
// as deployed and, in the same invocation, with its list cache off.
// Loopback only, bounded in time.
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import autocannon from 'autocannon';
import { execa } from 'execa';
import pg from 'pg';
import { createToken } from '../api/auth.js';
import { poolConfig } from '../db/adapter.js';
import { type Embedded, startEmbedded } from '../db/embedded.js';
import { createClient, ensureDatabase, migrate, withDatabase } from '../db/index.js';
import { root } from '../paths.js';

export interface ApiBenchOptions {
  rows: number;
  durationS: number;
  connections: number;
  /** also measure with the list cache off */
  uncached: boolean;
  log: (m: string) => void;
}

export interface ApiBenchRun {
  requests: number;
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  errors: number;
}

/** The server as deployed (pages cached until Postgres notifies a change), and with the cache off: every request queries Postgres. */
export interface ApiBenchResult extends ApiBenchRun {
  endpoint: string;
  rows: number;
  connections: number;
  duration_s: number;
  embedded: boolean;
  uncached: ApiBenchRun | null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function dropDatabase(url: string): Promise<void> {
  const cfg = poolConfig(url, { Client: undefined }) as pg.ClientConfig;
  const c = new pg.Client({ ...cfg, database: 'postgres' });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(cfg.database!)} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

export async function benchApi(o: ApiBenchOptions): Promise<ApiBenchResult> {
  let embedded: Embedded | undefined;
  let base = process.env.DATABASE_URL;
  if (!base) {
    embedded = await startEmbedded();
    base = embedded.url;
  }
  const url = withDatabase(base, 'dicom_bench');
  try {
    await dropDatabase(url);
    await ensureDatabase(url);
    o.log('migrating the scratch database dicom_bench');
    await migrate(url);
    const prisma = createClient(url);
    let token: string;
    try {
      const target = await prisma.target.create({
        data: { kind: 'ompi', version: '4.1.4', btlApi: '3.1', pkglibdir: '/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3', incdirs: ['/usr/include'] },
      });
      const now = Date.now();
      await prisma.build.createMany({
        data: Array.from({ length: o.rows }, (_, i) => ({
          targetId: target.id,
          status: i % 10 === 0 ? ('failed' as const) : ('succeeded' as const),
          log: `build ${i}\n`,
          artifactPath: `/var/lib/dicom/builds/${i}/mca_btl_dicom.so`,
          sha256: (i.toString(16) + '0'.repeat(64)).slice(0, 64),
          createdAt: new Date(now - (o.rows - i) * 1000),
          startedAt: new Date(now - (o.rows - i) * 1000 + 10),
          finishedAt: new Date(now - (o.rows - i) * 1000 + 3000),
        })),
      });
      token = (await createToken(prisma, 'bench')).token;
    } finally {
      await prisma.$disconnect();
    }
    o.log(`seeded ${o.rows} builds`);

    const measure = async (label: string, env: Record<string, string>): Promise<ApiBenchRun> => {
      const port = await freePort();
      const server = execa(path.join(root, 'bin/dicomctl'), ['serve', '--port', String(port)], { env: { DATABASE_URL: url, ...env }, reject: false, all: true });
      try {
        const target = `http://127.0.0.1:${port}`;
        let up = false;
        for (let i = 0; i < 300 && !up; i++) {
          up = await fetch(`${target}/healthz`).then((r) => r.ok, () => false);
          if (!up) await new Promise((r) => setTimeout(r, 100));
        }
        if (!up) throw new Error(`the control plane did not start:\n${server.all ?? ''}`);
        const headers = { authorization: `Bearer ${token}` };
        o.log(`${label}: warm-up 1 s`);
        await autocannon({ url: `${target}/builds`, connections: o.connections, duration: 1, headers });
        o.log(`${label}: autocannon GET /builds, ${o.connections} connections, ${o.durationS} s`);
        const r = await autocannon({ url: `${target}/builds`, connections: o.connections, duration: o.durationS, headers });
        return { requests: r.requests.total, req_per_s: Math.round(r.requests.average), p50_ms: r.latency.p50, p99_ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
      } finally {
        server.kill('SIGTERM');
        await server;
      }
    };
    const deployed = await measure('as deployed', {});
    const uncached = o.uncached ? await measure('list cache off', { DICOM_API_LIST_CACHE: 'off' }) : null;
    return { endpoint: 'GET /builds', rows: o.rows, connections: o.connections, duration_s: o.durationS, embedded: Boolean(embedded), ...deployed, uncached };
  } finally {
    await dropDatabase(url).catch(() => {});
    await embedded?.stop();
  }
}
