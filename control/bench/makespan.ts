// dicomctl bench makespan: does moving ranks while jobs run shorten them? Two 2-rank jobs that
// compute a fixed amount per round and exchange checked messages every round all start on node
// n1 of a lab whose nodes have one CPU each (cpusets). Alternating in one invocation:
//   (a) plain Open MPI, btl/tcp, static placement;
//   (b) btl dicom, every rank under dicom-run, with the balancer (policy engine) on.
// makespan = from the start of both jobs until the second one ends. Measured, never asserted.
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startBalancer } from '../balancer/balancer.js';
import { labDown, labMpirun, labStatus, labUp, type ExecResult } from '../lab/index.js';
import { dicomRunBin, defaultComponentDir } from '../paths.js';
import { withDefaults } from '../policy/index.js';
import { mpiProgramsDir } from '../runner/prereq.js';

export interface MakespanRun {
  mode: 'tcp-static' | 'dicom-policy';
  makespan_s: number;
  jobs_ok: boolean;
  moves: number;
}

export interface MakespanResult {
  runs: MakespanRun[];
  tcp_makespan_s: number;
  dicom_makespan_s: number;
  makespan_ratio: number;
  /** which node each rank ran on over time, for the plot */
  timeline: { job: string; rank: number; segments: { node: string; from_s: number; to_s: number }[] }[];
  svg?: string;
}

type Log = (line: string) => void;

const JOBS = ['A', 'B'];

function startJobs(mode: MakespanRun['mode'], rounds: number, work: number, tag: string): Promise<ExecResult>[] {
  return JOBS.map((j) => {
    const args = [path.join(mpiProgramsDir, 'migrate_ring'), '--rounds', String(rounds), '--work-mflop', String(work), '--report', String(rounds), '--size', '256K'];
    return labMpirun({
      np: 2,
      nodes: [1],
      program: mode === 'dicom-policy' ? dicomRunBin : args[0]!,
      args: mode === 'dicom-policy' ? args : args.slice(1),
      btl: mode === 'dicom-policy' ? 'self,dicom' : 'self,tcp',
      componentPath: defaultComponentDir,
      // Waiting ranks yield their CPU in both modes, as on any oversubscribed node.
      mca: { pml: 'ob1', mpi_yield_when_idle: 1 },
      env: { DICOM_JOB: `${tag}-${j}` },
      timeoutMs: 10 * 60_000,
    });
  });
}

export async function benchMakespan(o: { rounds?: number; work?: number; repeats?: number; json?: string; svg?: string; log?: Log } = {}): Promise<MakespanResult> {
  const log = o.log ?? (() => {});
  const rounds = o.rounds ?? 400;
  const work = o.work ?? 20;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'dicom-makespan-'));
  if ((await labStatus()).up) await labDown();
  await labUp({ nodes: 2, cpus: 'n1=0,n2=1', gossip: { periodMs: 250 }, log });
  const runs: MakespanRun[] = [];
  let timeline: MakespanResult['timeline'] = [];
  try {
    for (let rep = 0; rep < (o.repeats ?? 1); rep++) {
      for (const mode of ['tcp-static', 'dicom-policy'] as const) {
        log(`${mode}: two 2-rank jobs, ${rounds} rounds of ${work} Mflop each, all 4 ranks start on n1 (1 CPU), n2 (1 CPU) idle`);
        const tag = `ms${rep}-${mode === 'tcp-static' ? 'tcp' : 'dicom'}`;
        const t0 = Date.now();
        const seen = new Set<string>();
        const balancer = mode === 'dicom-policy'
          ? startBalancer({
              params: withDefaults({ threshold: 2.0, hysteresis: 0.5, cooldownSec: 15, maxConcurrent: 1, minGain: 0.2, commCostPerGBps: 20 }),
              periodMs: 1000,
              record: (d, outcome) => {
                const line = `${d.action} ${d.job}:${d.rank}: ${d.reason}`;
                if (!outcome && d.action === 'migrate') log(`    ${((Date.now() - t0) / 1000).toFixed(1)} s: decided: ${line}`);
                if (!outcome && d.action === 'skip' && !seen.has(d.reason.replace(/[\d.]+/g, '#'))) {
                  seen.add(d.reason.replace(/[\d.]+/g, '#'));
                  log(`    ${((Date.now() - t0) / 1000).toFixed(1)} s: ${line}`);
                }
              },
            })
          : null;
        const results = await Promise.all(startJobs(mode, rounds, work, tag));
        const makespan = (Date.now() - t0) / 1000;
        const jobEnd = results.map((r) => Math.min(makespan, r.durationMs / 1000));
        await balancer?.stop();
        const ok = results.every((r) => r.exitCode === 0 && /^RESULT ok/m.test(r.stdout));
        const moves = balancer?.moves.filter((m) => m.outcome.outcome === 'succeeded') ?? [];
        runs.push({ mode, makespan_s: makespan, jobs_ok: ok, moves: moves.length });
        log(`  makespan ${makespan.toFixed(1)} s, jobs ${ok ? 'ok' : 'FAILED'}${balancer ? `, ${moves.length} migrations` : ''}`);
        if (!ok) for (const r of results) log((r.stderr + r.stdout).slice(-800));
        for (const m of moves) log(`    ${((m.at - t0) / 1000).toFixed(1)} s: ${m.decision.job}:${m.decision.rank} ${m.outcome.from} -> ${m.outcome.to} (${m.decision.reason}); downtime ${m.outcome.downtimeMs} ms`);
        if (balancer) {
          timeline = JOBS.flatMap((j) => [0, 1].map((rank) => {
            const mine = moves.filter((m) => m.decision.job === `${tag}-${j}` && m.decision.rank === rank).sort((a, b) => a.at - b.at);
            const segments: { node: string; from_s: number; to_s: number }[] = [];
            let node = 'n1';
            let from = 0;
            for (const m of mine) {
              const at = (m.at - t0) / 1000;
              segments.push({ node, from_s: from, to_s: at });
              node = m.outcome.to;
              from = at;
            }
            segments.push({ node, from_s: from, to_s: jobEnd[JOBS.indexOf(j)]! });
            return { job: j, rank, segments };
          }));
        }
      }
    }
  } finally {
    await labDown();
    await rm(tmp, { recursive: true, force: true });
  }
  const mean = (m: MakespanRun['mode']) => {
    const xs = runs.filter((r) => r.mode === m).map((r) => r.makespan_s);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const res: MakespanResult = {
    runs,
    tcp_makespan_s: mean('tcp-static'),
    dicom_makespan_s: mean('dicom-policy'),
    makespan_ratio: Math.round((mean('dicom-policy') / mean('tcp-static')) * 1000) / 1000,
    timeline,
  };
  if (o.svg) {
    writeFileSync(o.svg, timelineSvg(res));
    res.svg = o.svg;
  }
  if (o.json) writeFileSync(o.json, JSON.stringify(res, null, 2) + '\n');
  return res;
}

/** One row per rank, coloured by the node it runs on, over the dicom run's makespan. */
function timelineSvg(r: MakespanResult): string {
  const W = 720, rowH = 28, left = 70, top = 40;
  const end = Math.max(r.dicom_makespan_s, 1);
  const x = (s: number) => left + ((W - left - 20) * s) / end;
  const colour: Record<string, string> = { n1: '#d9534f', n2: '#5cb85c', n3: '#5bc0de' };
  const rows = r.timeline.map((t, i) => {
    const y = top + i * rowH;
    const bars = t.segments.map((s) => `<rect x="${x(s.from_s).toFixed(1)}" y="${y}" width="${Math.max(1, x(s.to_s) - x(s.from_s)).toFixed(1)}" height="${rowH - 8}" fill="${colour[s.node] ?? '#999'}"><title>${s.node} ${s.from_s.toFixed(1)}-${s.to_s.toFixed(1)} s</title></rect>`).join('');
    return `<text x="8" y="${y + 15}" font-size="12">job ${t.job} r${t.rank}</text>${bars}`;
  });
  const h = top + r.timeline.length * rowH + 40;
  const ticks = Array.from({ length: 6 }, (_, i) => (end * i) / 5).map((s) => `<text x="${x(s).toFixed(1)}" y="${h - 22}" font-size="11" text-anchor="middle">${s.toFixed(0)} s</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" font-family="sans-serif">
<text x="8" y="20" font-size="14">Where each rank ran (dicom + policy; makespan ${r.dicom_makespan_s.toFixed(1)} s vs tcp static ${r.tcp_makespan_s.toFixed(1)} s, ratio ${r.makespan_ratio})</text>
${rows.join('\n')}
${ticks.join('')}
<rect x="${left}" y="${h - 14}" width="10" height="10" fill="${colour.n1}"/><text x="${left + 14}" y="${h - 5}" font-size="11">n1</text>
<rect x="${left + 50}" y="${h - 14}" width="10" height="10" fill="${colour.n2}"/><text x="${left + 64}" y="${h - 5}" font-size="11">n2</text>
</svg>
`;
}
