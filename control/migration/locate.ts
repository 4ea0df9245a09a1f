// Where the ranks of a job run now. Each lab node's dicomd lists the endpoints registered with it
// (home address and local PID); the MPI rank and the job come from the process's environment as
// mpirun started it (OMPI_COMM_WORLD_RANK, and DICOM_JOB or else PMIX_NAMESPACE).
import { readFileSync } from 'node:fs';
import { inNetns, queryStatus } from '../dicom/libdicom.js';
import { type LabState, requireState } from '../lab/state.js';

export interface RankLocation {
  job: string;
  rank: number;
  /** home address "a.b.c.d:pid": the rank's name for life */
  addr: string;
  pid: number;
  /** lab node it runs on now */
  node: string;
}

function environ(pid: number): Map<string, string> {
  const env = new Map<string, string>();
  try {
    for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const i = kv.indexOf('=');
      if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
    }
  } catch {
    /* the process is gone */
  }
  return env;
}

interface Endpoint {
  addr: string;
  pid: number;
}

/** Every MPI rank registered with a lab dicomd right now. */
export function locateRanks(state: LabState = requireState()): RankLocation[] {
  const out: RankLocation[] = [];
  for (const n of state.nodes) {
    let eps: Endpoint[] = [];
    try {
      eps = (queryStatus(inNetns(n.ns)).endpoints as Endpoint[] | undefined) ?? [];
    } catch {
      continue; // that node's dicomd is down: its ranks cannot be migrated anyway
    }
    for (const e of eps) {
      const env = environ(e.pid);
      const rank = Number(env.get('OMPI_COMM_WORLD_RANK'));
      const job = env.get('DICOM_JOB') ?? env.get('PMIX_NAMESPACE');
      if (!Number.isInteger(rank) || !job) continue;
      out.push({ job, rank, addr: e.addr, pid: e.pid, node: n.name });
    }
  }
  return out.sort((a, b) => a.job.localeCompare(b.job) || a.rank - b.rank);
}
