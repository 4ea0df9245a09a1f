// Jobs queued in Postgres through pg-boss (schema "pgboss" in the same
// database). Builds run one at a time: the generator shares build/c and
// build/btl/ompi-<version> between builds, and make -j2 already fills the
// machine's 2 cores. The Build row is the source of truth: a worker claims a
// build by moving it queued → running, so duplicate or stale jobs are no-ops.
import PgBoss from 'pg-boss';
import type { Db, PrismaClient } from '../db/index.js';
import { poolConfig } from '../db/adapter.js';
import { defaultBuildsDir, runBuild } from './build-job.js';
import { runDeployment } from './deploy-job.js';
import { runMpiJob } from './mpi-job.js';

export const BUILD_QUEUE = 'build';
export const DEPLOY_QUEUE = 'deploy';
export const MPI_QUEUE = 'mpi';

export interface QueueOptions {
  /** global build concurrency (1 or 2); default 1 */
  concurrency?: number;
  /** MPI jobs that run at once (1-8); default 2: jobs compete for the nodes, and the balancer spreads them */
  mpiSlots?: number;
  buildsDir?: string;
  log?: (msg: string) => void;
}

export const MPI_SLOTS_DEFAULT = 2;
export const MPI_SLOTS_MAX = 8;

/** The number of MPI workers; a value outside 1..MPI_SLOTS_MAX is a caller's error. */
export function mpiSlots(n: number | undefined): number {
  if (n === undefined) return MPI_SLOTS_DEFAULT;
  if (!Number.isInteger(n) || n < 1 || n > MPI_SLOTS_MAX) throw new RangeError(`MPI slots must be an integer from 1 to ${MPI_SLOTS_MAX}, not ${n}`);
  return n;
}

export interface JobQueue {
  boss: PgBoss;
  enqueueBuild(buildId: number): Promise<void>;
  enqueueDeployment(deploymentId: number): Promise<void>;
  enqueueMpiJob(jobId: number): Promise<void>;
  /** resolves when no build is running in this process */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * After a crash: builds left "running" by a dead server are failed (their
 * process is gone), and queued builds are re-sent so none is lost.
 */
export async function recoverInterrupted(prisma: PrismaClient): Promise<{ failed: number; requeued: number[]; pendingDeployments: number[]; queuedJobs: number[] }> {
  const failed = await prisma.build.updateMany({
    where: { status: 'running' },
    data: { status: 'failed', error: 'interrupted: the server stopped while this build was running', finishedAt: new Date() },
  });
  const queued = await prisma.build.findMany({ where: { status: 'queued' }, select: { id: true }, orderBy: { id: 'asc' } });
  const interrupted = 'interrupted: the server stopped during this deployment';
  await prisma.deploymentNode.updateMany({ where: { status: 'running' }, data: { status: 'failed', error: interrupted, finishedAt: new Date() } });
  const dfailed = await prisma.deployment.updateMany({ where: { status: 'running' }, data: { status: 'failed', error: interrupted, finishedAt: new Date() } });
  const mfailed = await prisma.mpiJob.updateMany({ where: { status: 'running' }, data: { status: 'failed', error: 'interrupted: the server stopped while this job was running', finishedAt: new Date() } });
  const mqueued = await prisma.mpiJob.findMany({ where: { status: 'queued' }, select: { id: true }, orderBy: { id: 'asc' } });
  const pending = await prisma.deployment.findMany({ where: { status: 'pending' }, select: { id: true }, orderBy: { id: 'asc' } });
  return { failed: failed.count + dfailed.count + mfailed.count, requeued: queued.map((b) => b.id), pendingDeployments: pending.map((d) => d.id), queuedJobs: mqueued.map((j) => j.id) };
}

export async function startQueue(db: Db, opts: QueueOptions = {}): Promise<JobQueue> {
  const log = opts.log ?? (() => {});
  const cfg = poolConfig(db.url, { Client: undefined });
  const boss = new PgBoss({
    host: cfg.host,
    port: cfg.port,
    user: cfg.user,
    password: typeof cfg.password === 'string' ? cfg.password : undefined,
    database: cfg.database,
    max: 3,
    application_name: 'dicom-ompi-jobs',
    schedule: false,
    supervise: true,
  });
  boss.on('error', (e: Error) => log(`job queue: ${e.message}`));
  await boss.start();
  await boss.createQueue(BUILD_QUEUE, { name: BUILD_QUEUE, retryLimit: 0, expireInSeconds: 30 * 60 });
  await boss.createQueue(DEPLOY_QUEUE, { name: DEPLOY_QUEUE, retryLimit: 0, expireInSeconds: 10 * 60 });
  await boss.createQueue(MPI_QUEUE, { name: MPI_QUEUE, retryLimit: 0, expireInSeconds: 70 * 60 });

  // Before any worker can claim a build: whatever is "running" now belongs to a dead server.
  const rec = await recoverInterrupted(db.prisma);
  if (rec.failed) log(`marked ${rec.failed} interrupted build(s) failed`);

  const running = new Set<Promise<void>>();
  const workers: string[] = [];
  const concurrency = Math.min(Math.max(opts.concurrency ?? 1, 1), 2);
  for (let i = 0; i < concurrency; i++) {
    workers.push(
      await boss.work<{ buildId: number }>(BUILD_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async ([job]) => {
        if (!job) return;
        const p = runBuild(db.prisma, job.data.buildId, opts.buildsDir ?? defaultBuildsDir());
        running.add(p);
        try {
          await p;
        } finally {
          running.delete(p);
        }
      }),
    );
  }

  // Deployments are short and I/O bound: one worker of their own, so they never wait behind a build.
  const deployWorker = await boss.work<{ deploymentId: number }>(DEPLOY_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async ([job]) => {
    if (!job) return;
    const p = runDeployment(db.prisma, job.data.deploymentId);
    running.add(p);
    try {
      await p;
    } finally {
      running.delete(p);
    }
  });
  const enqueueDeployment = async (deploymentId: number) => {
    await boss.send(DEPLOY_QUEUE, { deploymentId });
    boss.notifyWorker(deployWorker);
  };

  // MPI jobs: a bounded number at once, one pg-boss worker each; the rest wait queued.
  const mpiWorkers: string[] = [];
  for (let i = 0; i < mpiSlots(opts.mpiSlots); i++) {
    mpiWorkers.push(
      await boss.work<{ jobId: number }>(MPI_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async ([job]) => {
        if (!job) return;
        const p = runMpiJob(db.prisma, job.data.jobId);
        running.add(p);
        try {
          await p;
        } finally {
          running.delete(p);
        }
      }),
    );
  }
  const enqueueMpiJob = async (jobId: number) => {
    await boss.send(MPI_QUEUE, { jobId });
    for (const w of mpiWorkers) boss.notifyWorker(w);
  };

  const enqueueBuild = async (buildId: number) => {
    await boss.send(BUILD_QUEUE, { buildId });
    for (const w of workers) boss.notifyWorker(w);
  };
  for (const id of rec.requeued) await enqueueBuild(id);
  for (const id of rec.pendingDeployments) await enqueueDeployment(id);
  for (const id of rec.queuedJobs) await enqueueMpiJob(id);

  return {
    boss,
    enqueueBuild,
    enqueueDeployment,
    enqueueMpiJob,
    async idle() {
      while (running.size) await Promise.allSettled([...running]);
    },
    async stop() {
      await boss.stop({ graceful: true, wait: true, timeout: 20_000 });
      while (running.size) await Promise.allSettled([...running]);
    },
  };
}
