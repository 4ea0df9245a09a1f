// GET /metrics in the Prometheus text format: builds by status, queue jobs
// by state, and HTTP requests served by this process.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ApiDeps } from '../app.js';

export class HttpCounters {
  private counts = new Map<string, number>();
  add(method: string, route: string, status: number): void {
    const k = `${method}\u0000${route}\u0000${status}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }
  lines(): string[] {
    return [...this.counts].map(([k, n]) => {
      const [method, route, status] = k.split('\u0000') as [string, string, string];
      return `dicom_http_requests_total{method="${method}",route="${esc(route)}",status="${status}"} ${n}`;
    });
  }
}
const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export const metricsRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db, counters }) => {
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['health'], produces: ['text/plain'] } }, async (_req, reply) => {
    const builds = await db.prisma.build.groupBy({ by: ['status'], _count: { _all: true } });
    const jobs = await db.prisma.mpiJob.groupBy({ by: ['status'], _count: { _all: true } });
    let queue: { state: string; n: bigint }[] = [];
    try {
      queue = await db.prisma.$queryRaw<{ state: string; n: bigint }[]>`SELECT state::text AS state, count(*) AS n FROM pgboss.job GROUP BY state`;
    } catch {
      // the queue schema does not exist until the job queue first starts
    }
    const out: string[] = [];
    out.push('# HELP dicom_builds Builds in the job database by status.', '# TYPE dicom_builds gauge');
    for (const s of ['queued', 'running', 'succeeded', 'failed']) {
      out.push(`dicom_builds{status="${s}"} ${builds.find((b) => b.status === s)?._count._all ?? 0}`);
    }
    out.push('# HELP dicom_mpi_jobs MPI jobs by status.', '# TYPE dicom_mpi_jobs gauge');
    for (const s of ['queued', 'running', 'succeeded', 'failed']) {
      out.push(`dicom_mpi_jobs{status="${s}"} ${jobs.find((b) => b.status === s)?._count._all ?? 0}`);
    }
    out.push('# HELP dicom_queue_jobs Jobs in the Postgres queue (pg-boss) by state.', '# TYPE dicom_queue_jobs gauge');
    for (const s of ['created', 'retry', 'active', 'completed', 'cancelled', 'failed']) {
      out.push(`dicom_queue_jobs{state="${s}"} ${Number(queue.find((q) => q.state === s)?.n ?? 0)}`);
    }
    out.push('# HELP dicom_http_requests_total HTTP requests served since start.', '# TYPE dicom_http_requests_total counter');
    out.push(...counters.lines());
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(out.join('\n') + '\n');
  });
};
