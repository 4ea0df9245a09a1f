// One MPI job launched through the API, over self,dicom: on this host
// ("local"), or across lab nodes, where mpirun runs in n1 (the lab's login
// node) and starts orted on the chosen nodes over ssh, each rank registering
// with its own node's dicomd. stdout/stderr are captured (bounded) and the exit
// status recorded. Never used for benchmarks: every job is bounded by its timeout.
import { execa } from 'execa';
import type { PrismaClient } from '../db/index.js';
import { detectOmpi } from '../generator/detect.js';
import { componentEnv } from '../generator/install.js';
import { labMpirun } from '../lab/mpirun.js';
import { dicomRunBin, defaultComponentDir } from '../paths.js';
import { LOCAL, resolveNodes } from './nodes.js';

const MAX_OUTPUT = 1 << 20;
const clip = (s: string) => (s.length > MAX_OUTPUT ? s.slice(0, MAX_OUTPUT) + '\n[output truncated at 1 MiB]\n' : s);

interface Outcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  signal?: string;
}

interface JobRow {
  id: number;
  mca: unknown;
  nodes: string[];
  np: number;
  program: string;
  args: string[];
  componentDir: string | null;
  daemon: string;
  timeoutSeconds: number;
}

/** The job's extra MCA parameters, as the API checked them (a JSON object of strings). */
function mcaOf(job: JobRow): Record<string, string> {
  const m = job.mca;
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return {};
  return Object.fromEntries(Object.entries(m).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

async function runLocal(job: JobRow): Promise<Outcome> {
  const t = await detectOmpi();
  const env = { ...componentEnv(t, job.componentDir ?? defaultComponentDir), OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
  const argv = [
    '--oversubscribe', '-np', String(job.np), '--bind-to', 'none',
    '--mca', 'pml', 'ob1', '--mca', 'btl', 'self,dicom', '--mca', 'btl_dicom_daemon', job.daemon,
    '--mca', 'oob_tcp_if_include', 'lo',
    ...Object.entries(mcaOf(job)).flatMap(([k, v]) => ['--mca', k, v]),
    job.program, ...job.args,
  ];
  const r = await execa('mpirun', argv, { env, reject: false, timeout: job.timeoutSeconds * 1000, forceKillAfterDelay: 5000, maxBuffer: 8 * MAX_OUTPUT });
  return { exitCode: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr), timedOut: Boolean(r.timedOut), signal: r.signal ?? undefined };
}

async function runLab(job: JobRow): Promise<Outcome> {
  const { remote } = await resolveNodes(job.nodes);
  // Every lab rank starts under its home stub, so it can be migrated (POST /migrations);
  // DICOM_JOB names the job in the ranks' environment, where the migration locator reads it.
  const r = await labMpirun({
    np: job.np,
    nodes: remote.map((n) => n.k),
    program: dicomRunBin,
    args: [job.program, ...job.args],
    env: { DICOM_JOB: String(job.id) },
    btl: 'self,dicom',
    componentPath: job.componentDir ?? defaultComponentDir,
    mca: { ...mcaOf(job), pml: 'ob1', btl_dicom_daemon: job.daemon },
    timeoutMs: job.timeoutSeconds * 1000,
  });
  return { exitCode: r.timedOut ? null : r.exitCode, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
}

export async function runMpiJob(prisma: PrismaClient, id: number): Promise<void> {
  const claimed = await prisma.mpiJob.updateMany({ where: { id, status: 'queued' }, data: { status: 'running', startedAt: new Date() } });
  if (claimed.count === 0) return;
  const job = await prisma.mpiJob.findUniqueOrThrow({ where: { id } });
  try {
    const r = job.nodes.every((n) => n === LOCAL) ? await runLocal(job) : await runLab(job);
    const error = r.timedOut ? `timed out after ${job.timeoutSeconds} s` : r.signal ? `killed by ${r.signal}` : r.exitCode !== 0 ? `mpirun exited ${r.exitCode}` : null;
    await prisma.mpiJob.update({
      where: { id },
      data: { status: error ? 'failed' : 'succeeded', exitCode: r.exitCode, stdout: clip(r.stdout), stderr: clip(r.stderr), error, finishedAt: new Date() },
    });
  } catch (e) {
    await prisma.mpiJob.update({ where: { id }, data: { status: 'failed', error: (e as Error).message, finishedAt: new Date() } });
  }
}
