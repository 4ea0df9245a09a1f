// dicomctl policy ...: migration policies through the REST API, and a dry run that shows what a
// policy would do with the cluster's gossip view now.
import { readFileSync } from 'node:fs';
import type { Decision } from '../../policy/index.js';
import { type Command, type ParsedArgs, str } from '../command.js';
import { CliError, printJson, printTable, step } from '../output.js';
import { call, client, clientOptions, positiveId } from './api-common.js';

interface Policy {
  id: number;
  name: string;
  kind: string;
  description: string;
  enabled: boolean;
  params: Record<string, unknown>;
  state: { overloaded: string[] };
}


/** flag -> parameter, for the numeric ones */
const NUMERIC = {
  threshold: 'threshold',
  hysteresis: 'hysteresis',
  cooldown: 'cooldownSec',
  'max-concurrent': 'maxConcurrent',
  'min-gain': 'minGain',
  'comm-cost': 'commCostPerGBps',
  'max-entry-age-ms': 'maxEntryAgeMs',
} as const;
const LISTS = { 'pin-job': 'pinnedJobs', 'pin-rank': 'pinnedRanks', pool: 'pools' } as const;

const paramOptions = {
  ...Object.fromEntries(Object.keys(NUMERIC).map((k) => [k, { type: 'string' as const }])),
  ...Object.fromEntries(Object.keys(LISTS).map((k) => [k, { type: 'string' as const, multiple: true }])),
  params: { type: 'string' as const },
  description: { type: 'string' as const },
  disabled: { type: 'boolean' as const },
  enabled: { type: 'boolean' as const },
};
const paramUsage = '[--threshold X] [--hysteresis X] [--cooldown S] [--max-concurrent N] [--min-gain X] [--comm-cost X] [--max-entry-age-ms MS] [--pin-job J]... [--pin-rank J:R]... [--pool P]... [--params JSON] [--description TEXT] [--enabled|--disabled]';

function hasParamFlags(args: ParsedArgs): boolean {
  return [...Object.keys(NUMERIC), ...Object.keys(LISTS), 'params'].some((k) => args.values[k] !== undefined);
}

/** --params JSON as the base, each flag on top; the server validates the values. */
function paramsFrom(args: ParsedArgs, base: Record<string, unknown> = {}): Record<string, unknown> {
  let params = { ...base };
  const raw = str(args, 'params');
  if (raw !== undefined) {
    try {
      const p = JSON.parse(raw) as unknown;
      if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new Error('not an object');
      params = { ...params, ...(p as Record<string, unknown>) };
    } catch (e) {
      throw new CliError(`--params must be a JSON object, like '{"threshold":1.5}': ${(e as Error).message}`, 2);
    }
  }
  for (const [flag, key] of Object.entries(NUMERIC)) {
    const v = str(args, flag);
    if (v === undefined) continue;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new CliError(`--${flag} must be a number, got "${v}"`, 2);
    params[key] = n;
  }
  for (const [flag, key] of Object.entries(LISTS)) {
    const v = args.values[flag] as unknown as string[] | undefined;
    if (v !== undefined) params[key] = v.flatMap((x) => x.split(',')).filter(Boolean);
  }
  return params;
}

function enabledFrom(args: ParsedArgs): boolean | undefined {
  if (args.values.enabled && args.values.disabled) throw new CliError('--enabled and --disabled exclude each other', 2);
  return args.values.disabled ? false : args.values.enabled ? true : undefined;
}

const paramText = (p: Record<string, unknown>) =>
  Object.entries(p)
    .filter(([, v]) => !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');

function printPolicy(p: Policy): void {
  process.stdout.write(`policy ${p.id} "${p.name}" (${p.kind}, ${p.enabled ? 'enabled' : 'disabled'})${p.description ? `: ${p.description}` : ''}\n  ${paramText(p.params)}\n`);
  if (p.state.overloaded.length) process.stdout.write(`  last seen overloaded: ${p.state.overloaded.join(', ')}\n`);
}

const rankText = (d: Decision) => (d.rank === null ? d.addr : `${d.job}:${d.rank}`);

export const commands: Command[] = [
  {
    name: 'policy list',
    summary: 'migration policies and their parameters',
    usage: 'policy list [--json]',
    options: { ...clientOptions },
    async run(args) {
      const ps = await call(() => client(args).json<Policy[]>('GET', '/policies'));
      if (args.values.json) return printJson(ps);
      if (ps.length === 0) return void process.stdout.write('no policies; create one with: dicomctl policy create NAME\n');
      printTable(ps.map((p) => ({ id: p.id, name: p.name, enabled: p.enabled ? 'yes' : 'no', params: paramText(p.params) })));
    },
  },
  {
    name: 'policy show',
    summary: 'one policy',
    usage: 'policy show ID [--json]',
    options: { ...clientOptions },
    async run(args) {
      const p = await call(() => client(args).json<Policy>('GET', `/policies/${positiveId(args, 'policy')}`));
      if (args.values.json) return printJson(p);
      printPolicy(p);
    },
  },
  {
    name: 'policy create',
    summary: 'create a load-balancing migration policy (unset parameters take their defaults)',
    usage: `policy create NAME ${paramUsage} [--json]`,
    options: { ...clientOptions, ...paramOptions },
    async run(args) {
      const name = args.positionals[0];
      if (!name) throw new CliError(`policy create needs a NAME\nusage: dicomctl policy create NAME ${paramUsage}`, 2);
      const body = { name, params: paramsFrom(args), description: str(args, 'description'), enabled: enabledFrom(args) };
      const p = await call(() => client(args).json<Policy>('POST', '/policies', body));
      if (args.values.json) return printJson(p);
      printPolicy(p);
    },
  },
  {
    name: 'policy update',
    summary: "change a policy: parameter flags change only those parameters, --enabled/--disabled, --description",
    usage: `policy update ID ${paramUsage} [--json]`,
    options: { ...clientOptions, ...paramOptions },
    async run(args) {
      const id = positiveId(args, 'policy');
      const c = client(args);
      const params = hasParamFlags(args) ? paramsFrom(args, (await call(() => c.json<Policy>('GET', `/policies/${id}`))).params) : undefined;
      const body = { params, description: str(args, 'description'), enabled: enabledFrom(args) };
      if (Object.values(body).every((v) => v === undefined)) throw new CliError('nothing to change: give parameter flags, --description, --enabled or --disabled', 2);
      const p = await call(() => c.json<Policy>('PATCH', `/policies/${id}`, body));
      if (args.values.json) return printJson(p);
      printPolicy(p);
    },
  },
  {
    name: 'policy delete',
    summary: 'delete a policy and its recorded decisions',
    usage: 'policy delete ID',
    options: { ...clientOptions },
    async run(args) {
      const id = positiveId(args, 'policy');
      await call(() => client(args).raw('DELETE', `/policies/${id}`));
      process.stdout.write(`policy ${id} deleted\n`);
    },
  },
  {
    name: 'policy dry-run',
    summary: 'what the policy would do now, rank by rank, with reasons (recorded; nothing moves)',
    usage: 'policy dry-run ID [--node n1|local] [--view FILE] [--json]',
    options: { ...clientOptions, node: { type: 'string' }, view: { type: 'string' } },
    async run(args) {
      const id = positiveId(args, 'policy');
      const body: Record<string, unknown> = {};
      const node = str(args, 'node');
      if (node) body.node = node;
      const file = str(args, 'view');
      if (file) {
        let v: unknown;
        try {
          v = JSON.parse(readFileSync(file, 'utf8'));
        } catch (e) {
          throw new CliError(`--view ${file}: ${(e as Error).message}`, 2);
        }
        // a whole `dicomctl daemon view --json`, or just its entries
        body.entries = Array.isArray(v) ? v : (v as { entries?: unknown }).entries;
        if (!Array.isArray(body.entries)) throw new CliError(`--view ${file}: expected a gossip view (dicomctl daemon view --json) or an array of its entries`, 2);
        body.entries = (body.entries as Record<string, unknown>[]).map(({ node: n, age_ms, load, cpus, procs, pairs }) => ({ node: n, age_ms, load, cpus, procs, pairs }));
      }
      step(`dry run of policy ${id}`);
      const r = await call(() => client(args).json<{ evaluation: string; source: string; nodes: { node: string; loadPerCpu: number; overloaded: boolean; pool: string | null }[]; decisions: Decision[] }>('POST', `/policies/${id}/dry-run`, body));
      if (args.values.json) return printJson(r);
      process.stdout.write(`view of ${r.source}; evaluation ${r.evaluation}\n`);
      printTable(r.nodes.map((n) => ({ node: n.node, pool: n.pool ?? '-', load_per_cpu: n.loadPerCpu.toFixed(2), overloaded: n.overloaded ? 'yes' : 'no' })));
      if (r.decisions.length === 0) return void process.stdout.write('no rank to consider: no node is overloaded\n');
      for (const d of r.decisions) process.stdout.write(`${d.action === 'migrate' ? 'MIGRATE' : 'skip   '} ${rankText(d)} ${d.fromNode}${d.toNode ? ` -> ${d.toNode}` : ''}: ${d.reason}\n`);
    },
  },
  {
    name: 'policy decisions',
    summary: "a policy's recorded decisions, newest first",
    usage: 'policy decisions ID [--evaluation UUID] [--json]',
    options: { ...clientOptions, evaluation: { type: 'string' } },
    async run(args) {
      const id = positiveId(args, 'policy');
      const ev = str(args, 'evaluation');
      const rows = await call(() => client(args).json<(Decision & { jobLabel: string | null; createdAt: string; dryRun: boolean })[]>('GET', `/policies/${id}/decisions${ev ? `?evaluation=${encodeURIComponent(ev)}` : ''}`));
      if (args.values.json) return printJson(rows);
      printTable(rows.map((d) => ({ at: d.createdAt, dry: d.dryRun ? 'yes' : 'no', action: d.action, rank: d.rank === null ? d.addr : `${d.jobLabel}:${d.rank}`, from: d.fromNode, to: d.toNode ?? '-', reason: d.reason })));
    },
  },
];
