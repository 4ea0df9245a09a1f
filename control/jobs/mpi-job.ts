// One MPI job launched through the API: mpirun over self,dicom on this host,
// stdout/stderr captured (bounded) and the exit status recorded. The
// component comes from a deployment's directory; the ranks register with the
// named dicomd. Never used for benchmarks: every job is bounded by its timeout.
import { execa } from 'execa';
import type { PrismaClient } from '../db/index.js';
import { detectOmpi } from '../generator/detect.js';
import { componentEnv } from '../generator/install.js';
import { defaultComponentDir } from '../paths.js';

const MAX_OUTPUT = 1 << 20;
const clip = (s: string) => (s.length > MAX_OUTPUT ? s.slice(0, MAX_OUTPUT) + '\n[output truncated at 1 MiB]\n' : s);

export async function runMpiJob(prisma: PrismaClient, id: number): Promise<void> {
  const claimed = await prisma.mpiJob.updateMany({ where: { id, status: 'queued' }, data: { status: 'running', startedAt: new Date() } });
  if (claimed.count === 0) return;
  const job = await prisma.mpiJob.findUniqueOrThrow({ where: { id } });
  try {
    const t = await detectOmpi();
    const env = { ...componentEnv(t, job.componentDir ?? defaultComponentDir), OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
    const argv = [
      '--oversubscribe', '-np', String(job.np), '--bind-to', 'none',
      '--mca', 'pml', 'ob1', '--mca', 'btl', 'self,dicom', '--mca', 'btl_dicom_daemon', job.daemon,
      '--mca', 'oob_tcp_if_include', 'lo',
      job.program, ...job.args,
    ];
    const r = await execa('mpirun', argv, { env, reject: false, timeout: job.timeoutSeconds * 1000, forceKillAfterDelay: 5000, maxBuffer: 8 * MAX_OUTPUT });
    const error = r.timedOut ? `timed out after ${job.timeoutSeconds} s` : r.signal ? `killed by ${r.signal}` : r.exitCode !== 0 ? `mpirun exited ${r.exitCode}` : null;
    await prisma.mpiJob.update({
      where: { id },
      data: {
        status: error ? 'failed' : 'succeeded',
        exitCode: r.exitCode ?? null,
        stdout: clip(String(r.stdout)),
        stderr: clip(String(r.stderr)),
        error,
        finishedAt: new Date(),
      },
    });
  } catch (e) {
    await prisma.mpiJob.update({ where: { id }, data: { status: 'failed', error: (e as Error).message, finishedAt: new Date() } });
  }
}
