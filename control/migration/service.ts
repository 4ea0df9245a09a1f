// Ordering a migration by (job, rank, target node), as the REST API, dicomctl and policies do:
// find the rank, refuse bad requests before anything moves, record every attempt with its
// phase timings and outcome in the job database.
import type { PrismaClient } from '../db/index.js';
import { labNode, MigrationError, migrateRank, type MigrateOptions, type MigrationOutcome } from './migrate.js';
import { locateRanks, type RankLocation } from './locate.js';
import { readState } from '../lab/state.js';

export interface MigrationOrder {
  /** an MPI job id from the database, or the label its ranks carry (DICOM_JOB / PMIx namespace) */
  job: number | string;
  rank: number;
  toNode: string;
  policyId?: number;
}

const inFlight = new Set<string>();

/** Finds the rank or throws MigrationError with the HTTP status a caller should answer. */
export async function findRank(prisma: PrismaClient | null, job: number | string, rank: number): Promise<{ loc: RankLocation; jobId: number | null }> {
  const state = readState();
  if (!state) throw new MigrationError('no lab is up: migrations move ranks between lab nodes (dicomctl lab up --nodes N)', 409);
  let jobId: number | null = null;
  if (typeof job === 'number') {
    if (prisma && !(await prisma.mpiJob.findUnique({ where: { id: job }, select: { id: true } }))) throw new MigrationError(`job ${job} not found`, 404);
    jobId = job;
  }
  const label = String(job);
  const ranks = locateRanks(state).filter((r) => r.job === label);
  if (ranks.length === 0) throw new MigrationError(`job ${label} has no running ranks on the lab nodes`, 404);
  const loc = ranks.find((r) => r.rank === rank);
  if (!loc) throw new MigrationError(`job ${label} has no rank ${rank} (it has ranks ${ranks.map((r) => r.rank).join(', ')})`, 404);
  return { loc, jobId };
}

export async function orderMigration(prisma: PrismaClient | null, o: MigrationOrder, extra: Partial<MigrateOptions> = {}): Promise<{ id: number | null; outcome: MigrationOutcome }> {
  const state = readState();
  if (state) labNode(state, o.toNode); // 404 before anything else happens
  const { loc, jobId } = await findRank(prisma, o.job, o.rank);
  if (loc.node === o.toNode) throw new MigrationError(`rank ${o.rank} of job ${o.job} already runs on ${o.toNode}`, 409);
  if (inFlight.has(loc.addr)) throw new MigrationError(`rank ${o.rank} of job ${o.job} is being migrated already`, 409);
  inFlight.add(loc.addr);
  const [homeNode, homePid] = loc.addr.split(':');
  const row = prisma
    ? await prisma.migration.create({
        data: { jobId, jobLabel: String(o.job), rank: o.rank, homeNode: homeNode!, homePid: Number(homePid), fromNode: loc.node, toNode: o.toNode, outcome: 'running', policyId: o.policyId ?? null },
      })
    : null;
  try {
    const outcome = await migrateRank({ ...extra, addr: loc.addr, from: loc.node, to: o.toNode });
    if (row && prisma) {
      await prisma.migration.update({
        where: { id: row.id },
        data: { outcome: outcome.outcome, phases: outcome.phases, downtimeMs: outcome.downtimeMs, imageBytes: BigInt(outcome.imageBytes), failedAt: outcome.failedAt ?? null, error: outcome.error ?? null },
      });
    }
    return { id: row?.id ?? null, outcome };
  } catch (e) {
    if (row && prisma) await prisma.migration.update({ where: { id: row.id }, data: { outcome: 'failed', error: (e as Error).message } });
    throw e;
  } finally {
    inFlight.delete(loc.addr);
  }
}
