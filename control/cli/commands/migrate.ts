// dicomctl migrate: move a live rank of a running lab job to another node, through the REST API
// (recorded in the job database), or with --direct in this process (no server needed).
import { MigrationError, type MigrationOutcome } from '../../migration/migrate.js';
import { orderMigration } from '../../migration/service.js';
import { type Command, int, str } from '../command.js';
import { CliError, printJson, printTable, step } from '../output.js';
import { call, client, clientOptions, exitCodeFor } from './api-common.js';

interface MigrationRow {
  id: number;
  jobLabel: string | null;
  rank: number | null;
  homeNode: string;
  homePid: number;
  fromNode: string;
  toNode: string;
  phases: Record<string, number>;
  downtimeMs: number | null;
  outcome: string | null;
  failedAt: string | null;
  error: string | null;
}

const PHASES = ['detach', 'dump', 'transfer', 'restore', 'reattach', 'first_message'];
export const phaseLine = (p: Record<string, number | undefined>) =>
  PHASES.filter((k) => p[k] !== undefined).map((k) => `${k} ${p[k]!.toFixed(1)} ms`).join(', ');

function report(m: { outcome: string | null; fromNode: string; toNode: string; phases: Record<string, number>; downtimeMs: number | null; error: string | null; failedAt: string | null }, what: string): void {
  if (m.outcome === 'succeeded') {
    step(`${what} moved ${m.fromNode} -> ${m.toNode}: downtime ${m.downtimeMs?.toFixed(1)} ms`);
    process.stdout.write(`  ${phaseLine(m.phases)}\n`);
    return;
  }
  throw new CliError(`${what} ${m.outcome === 'rolled-back' ? `was rolled back to ${m.fromNode}` : 'did not move'}: ${m.failedAt ? `${m.failedAt} failed: ` : ''}${m.error ?? 'unknown error'}`, 1);
}

const migrateCmd: Command = {
  name: 'migrate',
  summary: 'move a live rank of a running lab job to another node (CRIU, lossless), and print its phase timings',
  usage: 'migrate --job J --rank R --to NODE [--direct] [--json]',
  options: { ...clientOptions, job: { type: 'string' }, rank: { type: 'string' }, to: { type: 'string' }, direct: { type: 'boolean' } },
  async run(args) {
    const jobText = str(args, 'job');
    const to = str(args, 'to');
    if (!jobText || str(args, 'rank') === undefined || !to) throw new CliError('migrate needs --job J --rank R --to NODE', 2);
    const rank = int(args, 'rank', 0, 0, 65535);
    const job = /^\d+$/.test(jobText) ? Number(jobText) : jobText;
    const what = `rank ${rank} of job ${jobText}`;
    if (args.values.direct) {
      let outcome: MigrationOutcome;
      try {
        ({ outcome } = await orderMigration(null, { job, rank, toNode: to }, { onPhase: (p, ms) => step(`${p}: ${ms.toFixed(1)} ms`) }));
      } catch (e) {
        if (e instanceof MigrationError) throw new CliError(e.message, exitCodeFor(e.status));
        throw e;
      }
      if (args.values.json) printJson(outcome);
      report({ ...outcome, fromNode: outcome.from, toNode: outcome.to, error: outcome.error ?? null, failedAt: outcome.failedAt ?? null, phases: outcome.phases as Record<string, number> }, what);
      return;
    }
    step(`migrating ${what} to ${to}`);
    const m = await call(() => client(args).json<MigrationRow>('POST', '/migrations', { job, rank, toNode: to }));
    if (args.values.json) printJson(m);
    report(m, `${what} (migration ${m.id})`);
  },
};

const listCmd: Command = {
  name: 'migrations list',
  summary: 'recorded migrations with their outcome and downtime',
  usage: 'migrations list [--json]',
  options: { ...clientOptions },
  async run(args) {
    const rows = await call(() => client(args).json<MigrationRow[]>('GET', '/migrations'));
    if (args.values.json) return printJson(rows);
    printTable(rows.map((m) => ({ id: m.id, job: m.jobLabel ?? '-', rank: m.rank ?? '-', from: m.fromNode, to: m.toNode, outcome: m.outcome ?? '-', downtime_ms: m.downtimeMs?.toFixed(1) ?? '-', phases: phaseLine(m.phases) })));
  },
};

export const commands: Command[] = [migrateCmd, listCmd];
