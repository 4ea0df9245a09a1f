// dicomctl bench migration: downtime per phase by resident size, latency before/after a move,
// and the same move tried on a btl/tcp job (see control/bench/migration.ts).
import { benchMigration } from '../../bench/migration.js';
import { type Command, str } from '../command.js';
import { CliError, note, printTable } from '../output.js';

const migrationCmd: Command = {
  name: 'bench migration',
  summary: 'live-migrate rank 1 of a running 4-rank lab job (16/64/256 MiB resident): downtime per phase, latency after/before, and btl/tcp under the same move',
  usage: 'bench migration [--sizes 16,64,256] [--json FILE]',
  options: { sizes: { type: 'string' }, json: { type: 'string' } },
  async run(args) {
    const file = str(args, 'json');
    if (args.values.json !== undefined && !file) throw new CliError('--json takes a FILE to write', 2);
    const sizesText = str(args, 'sizes') ?? '16,64,256';
    const sizes = sizesText.split(',').map(Number);
    if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 4096)) throw new CliError(`--sizes takes MiB values 1..4096, got "${sizesText}"`, 2);
    const r = await benchMigration({ sizesMiB: sizes, json: file, log: note });
    printTable(sizes.map((mib) => {
      const p = r.phases_ms[`${mib}MiB`] ?? {};
      return { resident: `${mib} MiB`, downtime_ms: r.downtime_ms[`${mib}MiB`] ?? 'failed', detach: p.detach ?? '-', dump: p.dump ?? '-', transfer: p.transfer ?? '-', restore: p.restore ?? '-', reattach: p.reattach ?? '-', first_msg: p.first_message ?? '-', image_MiB: ((r.image_bytes[`${mib}MiB`] ?? 0) / 2 ** 20).toFixed(1) };
    }));
    process.stdout.write(`ping-pong latency after/before the move: ${r.after_before_latency_ratio ?? 'n/a'} (${r.latency_before_us} us -> ${r.latency_after_us} us; target <= 1.05)\n`);
    process.stdout.write(`btl/tcp under the same move: ${r.tcp.outcome} at ${r.tcp.failed_at ?? '-'}: ${r.tcp.error ?? ''}\n  the tcp job ran on where it was and exited ${r.tcp.job_exit} (${r.tcp.job_result})\n`);
    if (file) note(`wrote ${file}`);
  },
};

export const commands: Command[] = [migrationCmd];
