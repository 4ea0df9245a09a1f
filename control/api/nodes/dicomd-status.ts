// dicomd status of this host and of lab nodes, through libdicom (ffi-rs),
// asked by one long-lived worker thread that steps into each node's network
// namespace for its query (see dicomd-worker.ts). The event loop never waits
// on a daemon.
import { Worker } from 'node:worker_threads';
// The main thread must load ffi-rs's native addon before any worker does: when
// a worker that loaded it first exits, the process segfaults (measured here).
import 'ffi-rs';
import type { DicomdAnswer, DicomdQuery, WorkerReply, WorkerRequest } from './dicomd-worker.js';

export type { DicomdAnswer, DicomdQuery };

const WORKER = new URL('./dicomd-worker.ts', import.meta.url).href;
// Node 20 does not hand the process's tsx loader to workers: the worker registers it before importing the .ts
// (resolved here: an eval'd worker would resolve a bare name from the current directory)
const TSX = import.meta.resolve('tsx/esm/api');
const BOOT = `import(${JSON.stringify(TSX)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER)}); })`;

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, { resolve: (a: DicomdAnswer[]) => void; timer: NodeJS.Timeout; n: number }>();

function failAll(error: string): void {
  for (const [id, p] of pending) {
    clearTimeout(p.timer);
    p.resolve(Array.from({ length: p.n }, () => ({ status: null, error })));
    pending.delete(id);
  }
}

function getWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(BOOT, { eval: true });
  w.on('message', ({ id, answers }: WorkerReply) => {
    const p = pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    pending.delete(id);
    p.resolve(answers);
  });
  const gone = (why: string) => {
    if (worker === w) worker = undefined;
    failAll(why);
  };
  w.on('error', (e) => gone(`dicomd status worker failed: ${e.message}`));
  w.on('exit', (code) => gone(`dicomd status worker exited ${code}`));
  w.unref(); // never keeps the process alive (after the listeners: adding one refs it again)
  worker = w;
  return w;
}

/** One answer per query, in order. libdicom bounds each query (5 s); a worker that hangs beyond timeoutMs is replaced. */
export function queryDicomds(queries: DicomdQuery[], timeoutMs = 20_000): Promise<DicomdAnswer[]> {
  if (queries.length === 0) return Promise.resolve([]);
  const w = getWorker();
  const id = nextId++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (worker === w) worker = undefined;
      failAll(`no answer from the dicomd status worker within ${timeoutMs} ms`);
      void w.terminate();
    }, timeoutMs);
    pending.set(id, { resolve, timer, n: queries.length });
    w.postMessage({ id, queries } satisfies WorkerRequest);
  });
}

/** Stops the worker (tests and server shutdown). */
export async function stopDicomdWorker(): Promise<void> {
  const w = worker;
  worker = undefined;
  failAll('server stopping');
  await w?.terminate();
}
