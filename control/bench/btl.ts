// dicomctl bench btl: NetPIPE-style sweeps of dicom against Open MPI's own
// transports, run alternately in one invocation so machine noise hits both:
//   across lab nodes: dicom vs btl/tcp      on one node: dicom vs vader
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { labMpirun } from '../lab/index.js';
import { buildDir, defaultComponentDir } from '../paths.js';
import { renderSvg, type Series } from './svg-plot.js';

export interface SweepPoint {
  size: number;
  lat_us: number;
  bw_MBps: number;
}

export interface ComparisonRow {
  size: number;
  dicom_lat_us: number;
  base_lat_us: number;
  lat_ratio: number;
  dicom_bw_MBps: number;
  base_bw_MBps: number;
  bw_ratio: number | null;
}

export interface Comparison {
  name: string;
  baseline: string;
  placement: string;
  rows: ComparisonRow[];
  worst_latency_ratio: number;
  worst_bandwidth_ratio: number;
}

export interface BenchOptions {
  rounds: number;
  maxSize: number;
  timeBudgetMs: number;
  log: (msg: string) => void;
}

export const benchProgram = path.join(buildDir, 'mpi/bench');

export function parseSweep(stdout: string): SweepPoint[] {
  const points: SweepPoint[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const p = JSON.parse(line) as SweepPoint;
    if (typeof p.size === 'number' && typeof p.lat_us === 'number' && typeof p.bw_MBps === 'number') points.push(p);
  }
  if (!/^RESULT ok/m.test(stdout) || points.length === 0) throw new Error(`bench did not finish cleanly:\n${stdout.slice(-2000)}`);
  return points;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Per size: median latency and median bandwidth over the rounds. */
export function combine(runs: SweepPoint[][]): SweepPoint[] {
  const sizes = runs[0]!.map((p) => p.size);
  return sizes.map((size) => {
    const at = runs.map((r) => r.find((p) => p.size === size)).filter((p): p is SweepPoint => p !== undefined);
    return { size, lat_us: median(at.map((p) => p.lat_us)), bw_MBps: median(at.map((p) => p.bw_MBps)) };
  });
}

export function compare(name: string, baseline: string, placement: string, dicom: SweepPoint[], base: SweepPoint[]): Comparison {
  const rows: ComparisonRow[] = dicom.map((d) => {
    const b = base.find((p) => p.size === d.size)!;
    return {
      size: d.size,
      dicom_lat_us: d.lat_us,
      base_lat_us: b.lat_us,
      lat_ratio: d.lat_us / b.lat_us,
      dicom_bw_MBps: d.bw_MBps,
      base_bw_MBps: b.bw_MBps,
      // a zero-byte message carries no bandwidth
      bw_ratio: d.size > 0 && b.bw_MBps > 0 ? d.bw_MBps / b.bw_MBps : null,
    };
  });
  const bw = rows.map((r) => r.bw_ratio).filter((r): r is number => r !== null);
  return {
    name,
    baseline,
    placement,
    rows,
    worst_latency_ratio: Math.max(...rows.map((r) => r.lat_ratio)),
    worst_bandwidth_ratio: Math.min(...bw),
  };
}

interface Case {
  btl: string;
  nodes: number[];
  /** extra MCA parameters, e.g. a candidate btl_dicom_eager_limit */
  mca?: Record<string, string | number>;
}

async function sweep(c: Case, o: BenchOptions): Promise<SweepPoint[]> {
  const r = await labMpirun({
    np: 2,
    nodes: c.nodes,
    program: benchProgram,
    args: ['--max-size', String(o.maxSize), '--time-budget-ms', String(o.timeBudgetMs)],
    btl: c.btl,
    componentPath: defaultComponentDir,
    mca: { pml: 'ob1', ...c.mca },
    timeoutMs: 10 * 60_000,
  });
  if (r.exitCode !== 0) throw new Error(`bench over ${c.btl} on nodes ${c.nodes.join(',')} failed (exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}):\n${(r.stderr + r.stdout).slice(-3000)}`);
  return parseSweep(r.stdout);
}

/** Runs dicom and its baseline alternately, `rounds` times each. */
async function pair(label: string, dicom: Case, base: Case, o: BenchOptions): Promise<[SweepPoint[], SweepPoint[]]> {
  const d: SweepPoint[][] = [];
  const b: SweepPoint[][] = [];
  for (let i = 1; i <= o.rounds; i++) {
    for (const [c, into] of [[dicom, d], [base, b]] as const) {
      o.log(`${label}: round ${i}/${o.rounds} over ${c.btl}`);
      const t0 = performance.now();
      into.push(await sweep(c, o));
      o.log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
  return [combine(d), combine(b)];
}

export async function benchBtl(o: BenchOptions): Promise<Comparison[]> {
  const [dx, tcp] = await pair('across nodes', { btl: 'self,dicom', nodes: [1, 2] }, { btl: 'self,tcp', nodes: [1, 2] }, o);
  const [dl, vader] = await pair('same node', { btl: 'self,dicom', nodes: [1] }, { btl: 'self,vader', nodes: [1] }, o);
  return [compare('dicom vs tcp', 'tcp', 'ranks on lab nodes n1 and n2', dx, tcp), compare('dicom vs vader', 'vader', 'both ranks on lab node n1', dl, vader)];
}

export function plotSvg(cs: Comparison[]): string {
  const colors = ['#1f77b4', '#d62728'];
  const ratio = (key: 'lat_ratio' | 'bw_ratio'): Series[] =>
    cs.map((c, i) => ({
      name: c.name,
      color: colors[i % colors.length]!,
      points: c.rows.filter((r) => r[key] !== null).map((r) => ({ x: r.size, y: r[key] as number })),
    }));
  return renderSvg([
    { title: 'latency ratio dicom/baseline (lower is better)', yLabel: 'ratio', series: ratio('lat_ratio'), refY: 1 },
    { title: 'bandwidth ratio dicom/baseline (higher is better)', yLabel: 'ratio', series: ratio('bw_ratio'), refY: 1 },
    {
      title: 'bandwidth (MB/s)',
      yLabel: 'MB/s',
      yLog: true,
      series: cs.flatMap((c, i) => [
        { name: `dicom (${c.baseline} run)`, color: colors[i % colors.length]!, points: c.rows.map((r) => ({ x: r.size, y: r.dicom_bw_MBps })) },
        { name: c.baseline, color: i ? '#ff9896' : '#aec7e8', points: c.rows.map((r) => ({ x: r.size, y: r.base_bw_MBps })) },
      ]),
    },
  ]);
}

export async function writeReport(cs: Comparison[], jsonFile: string | undefined, svgFile: string): Promise<void> {
  await writeFile(svgFile, plotSvg(cs));
  if (jsonFile) {
    const out = Object.fromEntries(cs.map((c) => [c.baseline, c]));
    await writeFile(jsonFile, JSON.stringify({ generatedAt: new Date().toISOString(), svg: svgFile, comparisons: out }, null, 2) + '\n');
  }
}

export interface TuneRow {
  eager_limit: number;
  max_send_size: number;
  /** geometric mean over sizes of dicom/tcp latency, and of tcp/dicom bandwidth (lower is better for both) */
  lat_score: number;
  bw_score: number;
}

const geomean = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

/**
 * Measures candidate eager/max-send sizes across two lab nodes, each run
 * right after a tcp baseline run, and scores them against that baseline.
 */
export async function tuneBtl(o: BenchOptions, eagers: number[], maxSends: number[]): Promise<TuneRow[]> {
  const rows: TuneRow[] = [];
  for (const eager of eagers) {
    for (const maxSend of maxSends) {
      if (maxSend < eager) continue;
      const mca = { btl_dicom_eager_limit: eager, btl_dicom_rndv_eager_limit: eager, btl_dicom_max_send_size: maxSend };
      const [d, b] = await pair(`eager ${eager}, max-send ${maxSend}`, { btl: 'self,dicom', nodes: [1, 2], mca }, { btl: 'self,tcp', nodes: [1, 2] }, o);
      const c = compare('tune', 'tcp', 'n1-n2', d, b);
      const big = c.rows.filter((r) => r.size >= 1024);
      rows.push({
        eager_limit: eager,
        max_send_size: maxSend,
        lat_score: geomean(big.map((r) => r.lat_ratio)),
        bw_score: geomean(big.filter((r) => r.bw_ratio !== null).map((r) => 1 / (r.bw_ratio as number))),
      });
    }
  }
  return rows.sort((a, b) => a.lat_score + a.bw_score - (b.lat_score + b.bw_score));
}
