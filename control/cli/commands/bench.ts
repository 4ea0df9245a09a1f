// dicomctl bench btl: the transport benchmark, reported as ratios against
// Open MPI's own transports measured in the same invocation.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { benchBtl, type Comparison, tuneBtl, writeReport } from '../../bench/btl.js';
import { buildDir } from '../../paths.js';
import { ensureComponent, ensureMpiPrograms, withLab } from '../../runner/prereq.js';
import { type Command, int, str } from '../command.js';
import { CliError, note, printTable, step } from '../output.js';

const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

export function ratioTable(c: Comparison): Record<string, string | number>[] {
  return c.rows.map((r) => ({
    size: r.size,
    'dicom us': fmt(r.dicom_lat_us),
    [`${c.baseline} us`]: fmt(r.base_lat_us),
    'lat ratio': fmt(r.lat_ratio),
    'dicom MB/s': fmt(r.dicom_bw_MBps, 0),
    [`${c.baseline} MB/s`]: fmt(r.base_bw_MBps, 0),
    'bw ratio': r.bw_ratio === null ? '-' : fmt(r.bw_ratio),
  }));
}

const benchBtlCmd: Command = {
  name: 'bench btl',
  summary: 'latency/bandwidth 0 B..16 MiB: dicom vs tcp across lab nodes, dicom vs vader on one node',
  usage: 'bench btl [--json FILE] [--svg FILE] [--rounds N] [--max-size BYTES] [--time-budget-ms N]',
  options: { json: { type: 'string' }, svg: { type: 'string' }, rounds: { type: 'string' }, 'max-size': { type: 'string' }, 'time-budget-ms': { type: 'string' } },
  async run(args) {
    if (process.getuid?.() !== 0) throw new CliError('bench btl needs root: it runs in the network-namespace lab');
    const rounds = int(args, 'rounds', 3, 1, 20);
    const maxSize = int(args, 'max-size', 16 << 20, 1, 64 << 20);
    const timeBudgetMs = int(args, 'time-budget-ms', 200, 10, 10_000);
    const json = str(args, 'json');
    const outDir = path.join(buildDir, 'bench');
    await mkdir(outDir, { recursive: true });
    const svg = str(args, 'svg') ?? path.join(outDir, 'btl.svg');
    const log = (m: string) => note(m);
    step('preparing: MPI programs, btl dicom component');
    await ensureMpiPrograms();
    await ensureComponent(log);
    const cs = await withLab(2, log, () => benchBtl({ rounds, maxSize, timeBudgetMs, log: (m) => step(m) }));
    await writeReport(cs, json, svg);
    for (const c of cs) {
      process.stdout.write(`\n${c.name} (${c.placement}; median of ${rounds} alternating rounds)\n`);
      printTable(ratioTable(c));
      process.stdout.write(`worst latency ratio ${fmt(c.worst_latency_ratio)}, worst bandwidth ratio ${fmt(c.worst_bandwidth_ratio)}\n`);
    }
    process.stdout.write(`\nplot: ${svg}${json ? `\njson: ${json}` : ''}\n`);
  },
};

const sizeList = (v: string | undefined, dflt: number[]): number[] => {
  if (v === undefined) return dflt;
  const xs = v.split(',').map((x) => Number(x.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x < 1024 || x > 64 << 20)) throw new CliError(`expected a comma-separated list of byte sizes (1024..64M), got "${v}"`, 2);
  return xs;
};

const tuneCmd: Command = {
  name: 'bench tune',
  summary: 'measure candidate btl_dicom eager/max-send sizes against tcp across two lab nodes',
  usage: 'bench tune [--eager 32768,65536,...] [--max-send 131072,...] [--rounds N] [--json FILE]',
  options: { eager: { type: 'string' }, 'max-send': { type: 'string' }, rounds: { type: 'string' }, json: { type: 'string' } },
  async run(args) {
    if (process.getuid?.() !== 0) throw new CliError('bench tune needs root: it runs in the network-namespace lab');
    const eagers = sizeList(str(args, 'eager'), [32768, 65536, 131072]);
    const maxSends = sizeList(str(args, 'max-send'), [131072, 262144, 1048576]);
    const rounds = int(args, 'rounds', 1, 1, 10);
    await ensureMpiPrograms();
    await ensureComponent((m) => note(m));
    const rows = await withLab(2, (m) => note(m), () => tuneBtl({ rounds, maxSize: 4 << 20, timeBudgetMs: 60, log: (m) => step(m) }, eagers, maxSends));
    const json = str(args, 'json');
    if (json) await writeFile(json, JSON.stringify(rows, null, 2) + '\n');
    process.stdout.write('scores: geometric mean over 1 KiB..4 MiB of dicom/tcp latency and tcp/dicom bandwidth (lower is better)\n');
    printTable(rows.map((r) => ({ eager_limit: r.eager_limit, max_send_size: r.max_send_size, latency: fmt(r.lat_score), bandwidth: fmt(r.bw_score) })));
    process.stdout.write(`best: --mca btl_dicom_eager_limit ${rows[0]!.eager_limit} --mca btl_dicom_max_send_size ${rows[0]!.max_send_size}\n`);
  },
};

export const commands: Command[] = [benchBtlCmd, tuneCmd];
