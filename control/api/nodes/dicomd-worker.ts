// Worker thread: asks the dicomd of a network namespace for its status
// through libdicom. setns(CLONE_NEWNET) moves only the calling thread, and an
// abstract unix socket belongs to the namespace of the thread that creates
// it; so from here the query reaches a lab node's own @dicomd while the rest
// of the process stays where it is. After each query the thread goes back to
// the namespace it started in; if it cannot, it exits rather than answer
// from the wrong place.
import { parentPort } from 'node:worker_threads';
import { DataType, load, open } from 'ffi-rs';
import { queryStatus } from '../../dicom/libdicom.js';

export interface DicomdQuery {
  /** /run/netns/<name>, or null for the namespace the process runs in */
  netns: string | null;
  daemon: string;
}
export type DicomdAnswer = { status: Record<string, unknown>; error: null } | { status: null; error: string };
export interface WorkerRequest {
  id: number;
  queries: DicomdQuery[];
}
export interface WorkerReply {
  id: number;
  answers: DicomdAnswer[];
}

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
const LIBC = 'dicomd-worker-libc';

function libc(funcName: string, paramsType: DataType[], paramsValue: unknown[]): { value: number; errnoMessage: string } {
  return load({ library: LIBC, funcName, retType: DataType.I32, paramsType, paramsValue, errno: true }) as unknown as { value: number; errnoMessage: string };
}

function openNs(file: string): number {
  const fd = libc('open', [DataType.String, DataType.I32], [file, O_RDONLY | O_CLOEXEC]);
  if (fd.value < 0) throw new Error(`open ${file}: ${fd.errnoMessage}`);
  return fd.value;
}

function setns(fd: number, what: string): void {
  const rc = libc('setns', [DataType.I32, DataType.I32], [fd, CLONE_NEWNET]);
  if (rc.value !== 0) throw new Error(`setns ${what}: ${rc.errnoMessage}`);
}

open({ library: LIBC, path: '' });
const home = openNs('/proc/thread-self/ns/net');

function ask(q: DicomdQuery): DicomdAnswer {
  if (!q.netns) return { status: queryStatus(q.daemon), error: null };
  const fd = openNs(q.netns);
  try {
    setns(fd, q.netns);
  } finally {
    libc('close', [DataType.I32], [fd]);
  }
  try {
    return { status: queryStatus(q.daemon), error: null };
  } finally {
    try {
      setns(home, 'back to the home namespace');
    } catch {
      process.exit(70);
    }
  }
}

parentPort!.on('message', ({ id, queries }: WorkerRequest) => {
  const answers = queries.map((q): DicomdAnswer => {
    try {
      return ask(q);
    } catch (e) {
      return { status: null, error: (e as Error).message };
    }
  });
  parentPort!.postMessage({ id, answers } satisfies WorkerReply);
});
