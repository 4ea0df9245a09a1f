// dicomctl kernel test|render|fetch|list: the mailbox driver per kernel
// version (kernel-patches/, control/kernel/). `kernel test` is one cell of
// the kernel matrix: TAP on stdout (or --json), progress on stderr, exit 1
// when any check fails.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { type Command, type ParsedArgs, int, str } from '../command.js';
import { CliError, note, printJson, printTable, step } from '../output.js';
import { cellTap, runCell } from '../../kernel/cell.js';
import { kernelCacheDir, prepareKernel, resolvePackages } from '../../kernel/packages.js';
import { cellDir, renderKernel } from '../../kernel/render.js';
import { withDirLock } from '../../dirlock.js';
import { makeSeries } from '../../kernel/series.js';
import { KernelError, SERIES, findSeries } from '../../kernel/versions.js';

const supported = SERIES.map((s) => s.series).join('|');

function kernelArg(args: ParsedArgs): string {
  const k = str(args, 'kernel');
  if (!k) throw new CliError(`--kernel is required (${supported})`, 2);
  try {
    return findSeries(k).series;
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
}

async function cli<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof KernelError) throw new CliError(e.message);
    throw e;
  }
}

const progress = (line: string) => step(line);

export const commands: Command[] = [
  {
    name: 'kernel test',
    summary: 'one kernel cell: git apply --check, checkpatch --strict, DKMS build, qemu boot + selftest (TAP); --mpi adds an MPI job over the mailboxes in a bookworm guest; --relay carries messages between two guests through dicomd\'s relay',
    usage: `kernel test --kernel ${supported} [--no-boot] [--mpi] [--relay] [--timeout SECONDS] [--out DIR] [--json]`,
    options: {
      kernel: { type: 'string', short: 'k' },
      'no-boot': { type: 'boolean' },
      mpi: { type: 'boolean' },
      relay: { type: 'boolean' },
      timeout: { type: 'string' },
      out: { type: 'string' },
    },
    async run(args) {
      const series = kernelArg(args);
      const outDir = path.resolve(str(args, 'out') ?? cellDir(series));
      const r = await cli(() =>
        runCell({
          series,
          outDir,
          boot: !args.values['no-boot'],
          mpi: Boolean(args.values.mpi),
          relay: Boolean(args.values.relay),
          bootTimeoutSeconds: int(args, 'timeout', 300, 30, 3600),
          progress,
        }),
      );
      if (args.values.json) printJson(r);
      else process.stdout.write(cellTap(r));
      note(`kernel ${series}: ${r.ok ? 'pass' : 'FAIL'} in ${r.seconds.toFixed(1)} s; results in ${path.join(outDir, 'result.json')}`);
      if (!r.ok) process.exitCode = 1;
    },
  },
  {
    name: 'kernel render',
    summary: 'emit the git format-patch series and the DKMS module dir for a kernel version',
    usage: `kernel render --kernel ${supported} [--out DIR] [--json]`,
    options: { kernel: { type: 'string', short: 'k' }, out: { type: 'string' } },
    async run(args) {
      const series = kernelArg(args);
      const outDir = path.resolve(str(args, 'out') ?? cellDir(series));
      const out = await cli(() =>
        withDirLock(outDir, progress, async () => {
          const cache = await prepareKernel(findSeries(series), progress);
          const rendered = await renderKernel(series, outDir);
          const s = await makeSeries(rendered.tree, cache.sourceTree, outDir);
          return { kernel: series, release: cache.pkgs.release, version: cache.pkgs.version, series: s.patches, dkms: rendered.dkms };
        }),
      );
      if (args.values.json) return printJson(out);
      process.stdout.write(`${out.series.join('\n')}\n${out.dkms}\n`);
    },
  },
  {
    name: 'kernel fetch',
    summary: `download and unpack Debian's source, headers and image for a kernel version (cached in ${kernelCacheDir})`,
    usage: `kernel fetch --kernel ${supported}|all [--json]`,
    options: { kernel: { type: 'string', short: 'k' } },
    async run(args) {
      const names = str(args, 'kernel') === 'all' ? SERIES.map((s) => s.series) : [kernelArg(args)];
      const out = [];
      for (const n of names) {
        const t0 = performance.now();
        const c = await cli(() => prepareKernel(findSeries(n), progress));
        note(`${n}: ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        out.push({ kernel: n, ...c });
      }
      if (args.values.json) return printJson(out);
      printTable(out.map((c) => ({ kernel: c.kernel, release: c.pkgs.release, version: c.pkgs.version, vmlinuz: c.vmlinuz })));
    },
  },
  {
    name: 'kernel list',
    summary: 'the supported kernel versions, the Debian packages they resolve to, and whether they are cached',
    usage: 'kernel list [--json]',
    async run(args) {
      const rows = await cli(() =>
        Promise.all(
          SERIES.map(async (s) => {
            const p = await resolvePackages(s);
            return { kernel: s.series, release: p.release, version: p.version, cached: existsSync(path.join(kernelCacheDir, p.release, p.version, 'boot')) };
          }),
        ),
      );
      if (args.values.json) return printJson(rows);
      printTable(rows.map((r) => ({ ...r, cached: r.cached ? 'yes' : 'no' })));
    },
  },
];
