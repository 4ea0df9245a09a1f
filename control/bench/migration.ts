// dicomctl bench migration: in a 3-node lab, a 4-rank job (ring + all-to-all, ranks 0 and 1 also
// ping-pong every round) has rank 1 moved n2 -> n3 while it runs:
//  - downtime per phase for ranks holding 16, 64 and 256 MiB resident;
//  - the ping-pong latency between ranks 0 and 1 before versus after the move (median one-way);
//  - the same job on btl/tcp under the same migration, to show what happens there.
// Measured, never asserted; every job is bounded and stops by itself.
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sleep } from '../daemon/proc.js';
import { labDown, labMpirun, labStatus, labUp, nsPids, requireState, type ExecResult } from '../lab/index.js';
import { locateRanks, type RankLocation } from '../migration/locate.js';
import { migrateRank, type MigrationOutcome } from '../migration/migrate.js';
import { dicomRunBin, defaultComponentDir } from '../paths.js';
import { mpiProgramsDir } from '../runner/prereq.js';

export interface MigrationBenchResult {
  downtime_ms: Record<string, number | null>;
  phases_ms: Record<string, MigrationOutcome['phases']>;
  image_bytes: Record<string, number>;
  latency_before_us: number | null;
  latency_after_us: number | null;
  after_before_latency_ratio: number | null;
  tcp: { outcome: string; failed_at: string | null; error: string | null; job_exit: number; job_result: string };
  dicom_job_exit: Record<string, number>;
}

type Log = (line: string) => void;

interface Job {
  stop: string;
  done: Promise<ExecResult>;
  label: string;
}

function start(tmp: string, label: string, btl: string, residentMiB: number, pingpong: boolean): Job {
  const stop = path.join(tmp, `${label}.stop`);
  const args = [path.join(mpiProgramsDir, 'migrate_ring'), '--rounds', '100000', '--compute-ms', '10', '--report', '1000', '--until-file', stop, '--resident', `${residentMiB}M`];
  if (pingpong) args.push('--pingpong', '50');
  const done = labMpirun({
    np: 4, program: dicomRunBin, args, btl, componentPath: defaultComponentDir, mca: { pml: 'ob1' }, env: { DICOM_JOB: label }, timeoutMs: 5 * 60_000,
  });
  return { stop, done, label };
}

async function rank1(label: string): Promise<RankLocation> {
  for (let i = 0; i < 300; i++) {
    const r = locateRanks().filter((x) => x.job === label);
    if (r.length === 4) return r.find((x) => x.rank === 1)!;
    await sleep(100);
  }
  throw new Error(`job ${label}: ranks did not register`);
}

const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : null);

/** Rank 0's "latency EPOCH_MS USEC" lines in [t0, t1). */
function latencies(stdout: string, t0: number, t1: number): number[] {
  return [...stdout.matchAll(/^latency (\d+) ([\d.]+)$/gm)].map((m) => [Number(m[1]), Number(m[2])] as const).filter(([t]) => t >= t0 && t < t1).map(([, us]) => us);
}

export async function benchMigration(o: { sizesMiB?: number[]; json?: string; log?: Log } = {}): Promise<MigrationBenchResult> {
  const log = o.log ?? (() => {});
  const sizes = o.sizesMiB ?? [16, 64, 256];
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-bench-mig-'));
  const ownLab = !(await labStatus()).up;
  if (ownLab) await labUp({ nodes: 3, log });
  const res: MigrationBenchResult = {
    downtime_ms: {}, phases_ms: {}, image_bytes: {}, latency_before_us: null, latency_after_us: null, after_before_latency_ratio: null,
    tcp: { outcome: '', failed_at: null, error: null, job_exit: -1, job_result: '' }, dicom_job_exit: {},
  };
  try {
    for (const [i, mib] of sizes.entries()) {
      const label = `bench-mig-${i}-${mib}`;
      log(`dicom: ${mib} MiB resident per rank: moving rank 1 n2 -> n3 while the job runs`);
      const job = start(tmp, label, 'self,dicom', mib, i === 0);
      const r = await rank1(label);
      await sleep(3000); // "before": the job settles and ping-pongs on n1 <-> n2
      const tMove = Date.now();
      const out = await migrateRank({ addr: r.addr, from: r.node, to: 'n3' });
      const tBack = Date.now();
      await sleep(3000); // "after": n1 <-> n3
      await writeFile(job.stop, '');
      const done = await job.done;
      res.dicom_job_exit[`${mib}MiB`] = done.exitCode;
      res.downtime_ms[`${mib}MiB`] = out.outcome === 'succeeded' ? out.downtimeMs : null;
      res.phases_ms[`${mib}MiB`] = out.phases;
      res.image_bytes[`${mib}MiB`] = out.imageBytes;
      log(`  ${out.outcome}: downtime ${out.downtimeMs ?? '-'} ms ${JSON.stringify(out.phases)}; job exit ${done.exitCode}${out.error ? `; ${out.error}` : ''}`);
      if (i === 0) {
        res.latency_before_us = median(latencies(done.stdout, tMove - 2500, tMove));
        res.latency_after_us = median(latencies(done.stdout, tBack + 500, tBack + 3000));
        if (res.latency_before_us && res.latency_after_us) res.after_before_latency_ratio = Math.round((res.latency_after_us / res.latency_before_us) * 1000) / 1000;
        log(`  ping-pong rank 0 <-> rank 1: ${res.latency_before_us} us before, ${res.latency_after_us} us after: ratio ${res.after_before_latency_ratio}`);
      }
    }

    log('btl/tcp: the same job and the same move of rank 1');
    const tcp = start(tmp, 'bench-mig-tcp', 'self,tcp', sizes[0]!, false);
    const r = await rank1Tcp(tcp.label);
    await sleep(2000);
    const out = await migrateRank({ addr: r.addr, from: r.node, to: 'n3', force: true });
    await sleep(1000);
    await writeFile(tcp.stop, '');
    const done = await tcp.done;
    res.tcp = { outcome: out.outcome, failed_at: out.failedAt ?? null, error: out.error ?? null, job_exit: done.exitCode, job_result: /^RESULT .*$/m.exec(done.stdout)?.[0] ?? '' };
    log(`  ${out.outcome} at ${out.failedAt ?? '-'}: ${out.error ?? ''}; the job exits ${done.exitCode} (${res.tcp.job_result})`);
  } finally {
    if (ownLab) await labDown();
    await rm(tmp, { recursive: true, force: true });
  }
  if (o.json) writeFileSync(o.json, JSON.stringify(res, null, 2) + '\n');
  return res;
}

/** A btl/tcp rank never registers with dicomd: find it by its stub's environment instead. */
async function rank1Tcp(label: string): Promise<{ addr: string; node: string }> {
  const state = requireState();
  for (let i = 0; i < 300; i++) {
    for (const n of state.nodes) {
      for (const pid of await nsPids(n.ns)) {
        let env = '';
        try {
          env = readFileSync(`/proc/${pid}/environ`, 'utf8');
          if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('migrate_ring') || readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(dicomRunBin)) continue;
        } catch {
          continue;
        }
        if (env.includes(`\0DICOM_JOB=${label}\0`) && env.includes('\0OMPI_COMM_WORLD_RANK=1\0')) return { addr: `${n.addr}:${pid}`, node: n.name };
      }
    }
    await sleep(100);
  }
  throw new Error('the btl/tcp job did not start');
}
