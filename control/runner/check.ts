// `dicomctl btl check --ompi 4.1|5.0`: the two-rank correctness subset of the
// btl_dicom issue, plus MPI RMA, on one Open MPI installation, over
// `--mca pml ob1 --mca btl self,dicom`.
//   4.1: the host's mpirun; RMA through osc/pt2pt (4.1's osc/rdma needs an RDMA BTL).
//   5.0: mpirun inside the trixie root (chroot; same network namespace, so the
//        host's dicomd is reachable on its abstract socket); RMA through
//        osc/rdma, which wraps a send-only BTL in its AM-RDMA emulation.
// The MPI programs are compiled with the installation's own mpicc (inside the
// root for 5.0), the component is built, installed and verified first, and a
// private dicomd (own socket name and port) serves the run and is stopped after.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startDaemon, stopDaemon } from '../daemon/daemon.js';
import { buildLibdicom } from '../generator/build.js';
import { componentPath, inTargetView } from '../generator/install.js';
import { buildInstallVerify } from '../generator/pipeline.js';
import { selectOmpi } from '../generator/select.js';
import { type OmpiTarget, targetId } from '../generator/target.js';
import { buildDir, dicomdBin, root } from '../paths.js';

export interface CheckCase {
  title: string;
  program: string;
  args: string[];
  /** extra mpirun arguments per Open MPI generation */
  mca?: { '3.1'?: string[]; '3.3'?: string[] };
}

/** The two-rank subset (same programs and arguments as tests/helpers/correctness.ts) plus RMA. */
export const checkCases: CheckCase[] = [
  { title: 'ping-pong 0 B..16 MiB, data verified', program: 'pingpong', args: ['--neighbors'] },
  { title: 'every MPI collective', program: 'collectives', args: [] },
  { title: 'MPI_ANY_SOURCE and MPI_ANY_TAG', program: 'anysource', args: [] },
  { title: '10,000 outstanding Isend/Irecv', program: 'outstanding', args: ['--requests', '10000'] },
  { title: 'non-contiguous derived datatypes', program: 'datatypes', args: [] },
  { title: 'checksummed stress', program: 'stress', args: [] },
  {
    title: 'MPI RMA: Put/Get/Accumulate/Fetch_and_op, fence and lock/unlock',
    program: 'rma',
    args: [],
    mca: { '3.1': ['--mca', 'osc', 'pt2pt'], '3.3': ['--mca', 'osc', 'rdma'] },
  },
];

export interface CaseResult {
  title: string;
  program: string;
  ok: boolean;
  exitCode: number | undefined;
  seconds: number;
  result: string;
  /** the end of mpirun's output when it failed */
  output?: string;
}

export interface CheckReport {
  version: string;
  btlApi: string;
  where: string;
  np: number;
  seconds: { select: number; component: number; programs: number; runs: number };
  cases: CaseResult[];
  ok: boolean;
}

type Log = (line: string) => void;

export function mpiProgramsDirFor(t: OmpiTarget): string {
  return t.sysroot === '/' ? path.join(buildDir, 'mpi') : path.join(buildDir, `mpi-${targetId(t)}`);
}

/** tests/mpi built with the target's own mpicc (inside its root when it has one). */
export async function buildMpiPrograms(t: OmpiTarget): Promise<string> {
  const out = mpiProgramsDirFor(t);
  const [cmd, ...pre] = [...t.runPrefix, 'make'];
  const r = await execa(cmd!, [...pre, '-C', path.join(root, 'tests/mpi'), '-j2', `BUILD=${out}`], { reject: false, all: true, timeout: 10 * 60_000 });
  if (r.exitCode !== 0) throw new Error(`building the MPI test programs for Open MPI ${t.version} failed:\n${String(r.all).slice(-3000)}`);
  return out;
}

export interface MpirunOptions {
  np: number;
  daemon: string;
  componentDir: string;
  extra?: string[];
  timeoutMs?: number;
}

/** mpirun over self,dicom for target `t`, with the component dir on the loader path. */
export function mpirun(t: OmpiTarget, program: string, args: string[], o: MpirunOptions) {
  const inside = inTargetView(t, o.componentDir);
  const env: Record<string, string> = { OMPI_MCA_mca_base_component_path: componentPath(t, inside) };
  // Open MPI 5's PMIx reads the OMPI_MCA_ component path too and would list every
  // non-PMIx file in it as a load error.
  if (t.btlApi === '3.3') env.PMIX_MCA_mca_base_component_show_load_errors = '0';
  const argv = [
    ...t.runPrefix,
    'mpirun', '--allow-run-as-root', '--oversubscribe', '-np', String(o.np), '--bind-to', 'none',
    '--mca', 'pml', 'ob1', '--mca', 'btl', 'self,dicom', '--mca', 'btl_dicom_daemon', o.daemon,
    ...(t.btlApi === '3.1' ? ['--mca', 'oob_tcp_if_include', 'lo'] : []),
    ...(o.extra ?? []),
    path.join(mpiProgramsDirFor(t), program), ...args,
  ];
  return execa(argv[0]!, argv.slice(1), { env, reject: false, all: true, timeout: o.timeoutMs ?? 5 * 60_000, forceKillAfterDelay: 5000 });
}

export async function checkOmpi(spec: string, o: { np?: number; log?: Log; cases?: CheckCase[] } = {}): Promise<CheckReport> {
  const log = o.log ?? (() => {});
  const np = o.np ?? 2;
  const clock = () => performance.now() / 1000;
  let t0 = clock();
  const t = await selectOmpi(spec, log);
  const seconds = { select: clock() - t0, component: 0, programs: 0, runs: 0 };
  log(`Open MPI ${t.version} (BTL API ${t.btlApi}) ${t.sysroot === '/' ? 'on the host' : `in ${t.sysroot}`}`);

  t0 = clock();
  log('building, installing and verifying btl dicom');
  const installed = await buildInstallVerify(t, undefined, () => {});
  seconds.component = clock() - t0;
  log(`btl dicom installed in ${installed.dir}`);

  t0 = clock();
  log('building tests/mpi with its mpicc');
  await buildMpiPrograms(t);
  // The host's dicomd serves both (the root shares the host's network namespace).
  await buildLibdicom(() => {});
  seconds.programs = clock() - t0;

  const daemon = `dicomd-check-${process.pid}`;
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'dicomd-check-'));
  const cases: CaseResult[] = [];
  t0 = clock();
  await startDaemon({ bin: dicomdBin, name: daemon, port: 18000 + (process.pid % 1000), nodeAddr: '127.0.0.1', dir: stateDir });
  try {
    for (const c of o.cases ?? checkCases) {
      const c0 = clock();
      const r = await mpirun(t, c.program, c.args, { np, daemon, componentDir: installed.dir, extra: c.mca?.[t.btlApi] });
      const result = String(r.stdout).split('\n').find((l) => l.startsWith('RESULT ')) ?? '';
      const ok = r.exitCode === 0 && result.startsWith('RESULT ok');
      const res: CaseResult = { title: c.title, program: c.program, ok, exitCode: r.exitCode, seconds: clock() - c0, result };
      if (!ok) res.output = String(r.all).slice(-3000) + (r.timedOut ? '\n(timed out)' : '');
      cases.push(res);
      log(`${ok ? 'ok  ' : 'FAIL'} ${c.program.padEnd(12)} ${res.seconds.toFixed(1).padStart(5)} s  ${result || `exit ${r.exitCode}`}`);
    }
  } finally {
    await stopDaemon({ name: daemon, dir: stateDir });
    await rm(stateDir, { recursive: true, force: true });
  }
  seconds.runs = clock() - t0;
  return {
    version: t.version,
    btlApi: t.btlApi,
    where: t.sysroot === '/' ? 'host' : t.sysroot,
    np,
    seconds,
    cases,
    ok: cases.every((c) => c.ok),
  };
}
