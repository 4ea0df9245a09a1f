// Matrix cells as pg-boss jobs (queue "matrix-cell"), one at a time: a cell
// builds Open MPI components or boots a kernel in qemu, and either fills this
// machine's two cores. The MatrixCell row is the source of truth (claimed
// queued → running), so duplicate or re-sent jobs are no-ops. Started by the
// matrix routes when the server has a job queue; stopping it cancels the
// running cell (its whole process group) and records it as interrupted.
import type PgBoss from 'pg-boss';
import type { PrismaClient } from '../db/index.js';
import { loadMatrix } from '../matrix/definition.js';
import { recoverMatrix, runStoredCell } from '../matrix/store.js';

export const MATRIX_QUEUE = 'matrix-cell';
const FALLBACK_TIMEOUT_MS = 60 * 60_000;

export interface MatrixWorker {
  enqueue(cellIds: number[]): Promise<void>;
  /** resolves when no cell is running in this process */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** Per test set, from ci/matrix.json as it is now (a set since removed gets the fallback). */
async function timeouts(): Promise<(testSet: string) => number> {
  const def = await loadMatrix().catch(() => undefined);
  return (testSet) => {
    const set = def?.sets.find((s) => s.id === testSet);
    return set ? set.timeoutMinutes * 60_000 : FALLBACK_TIMEOUT_MS;
  };
}

export async function startMatrixWorker(prisma: PrismaClient, boss: PgBoss, o: { log?: (msg: string) => void } = {}): Promise<MatrixWorker> {
  const log = o.log ?? (() => {});
  // Longest cell (180 min by ci/matrix.json's bound) plus slack.
  await boss.createQueue(MATRIX_QUEUE, { name: MATRIX_QUEUE, retryLimit: 0, expireInSeconds: 4 * 60 * 60 });
  const rec = await recoverMatrix(prisma);
  if (rec.failed) log(`marked ${rec.failed} interrupted matrix cell(s) failed`);

  const abort = new AbortController();
  const running = new Set<Promise<unknown>>();
  let stopping = false;
  const worker = await boss.work<{ cellId: number }>(MATRIX_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async ([job]) => {
    if (!job || stopping) return;
    const id = job.data.cellId;
    const p = (async () => runStoredCell(prisma, id, { signal: abort.signal, timeoutMs: await timeouts(), log }))();
    running.add(p);
    try {
      await p;
    } finally {
      running.delete(p);
    }
  });
  const enqueue = async (cellIds: number[]) => {
    for (const cellId of cellIds) await boss.send(MATRIX_QUEUE, { cellId });
    boss.notifyWorker(worker);
  };
  await enqueue(rec.queued);
  return {
    enqueue,
    async idle() {
      while (running.size) await Promise.allSettled([...running]);
    },
    async stop() {
      stopping = true;
      await boss.offWork(MATRIX_QUEUE).catch(() => {});
      abort.abort('interrupted: the server stopped while this cell was running');
      while (running.size) await Promise.allSettled([...running]);
    },
  };
}
