// dicomctl bench api: the REST API's throughput (see control/bench/api.ts).
import { writeFile } from 'node:fs/promises';
import { type Command, int, str } from '../command.js';
import { CliError, note, printTable } from '../output.js';
import { benchApi } from '../../bench/api.js';

const TARGET_REQ_PER_S = 2000;
const TARGET_P99_MS = 50;

const apiCmd: Command = {
  name: 'bench api',
  summary: 'autocannon against GET /builds with N builds in a scratch database: req/s and p99, as deployed and with the list cache off',
  usage: 'bench api [--rows 1000] [--duration 10] [--connections 10] [--no-uncached] [--json FILE]',
  options: { rows: { type: 'string' }, duration: { type: 'string' }, connections: { type: 'string' }, json: { type: 'string' }, 'no-uncached': { type: 'boolean' } },
  async run(args) {
    const file = str(args, 'json');
    if (args.values.json !== undefined && !file) throw new CliError('--json takes a FILE to write', 2);
    const r = await benchApi({
      rows: int(args, 'rows', 1000, 1, 100_000),
      durationS: int(args, 'duration', 10, 1, 120),
      connections: int(args, 'connections', 10, 1, 256),
      uncached: !args.values['no-uncached'],
      log: note,
    });
    if (file) await writeFile(file, JSON.stringify(r, null, 2) + '\n');
    const row = (mode: string, x: { req_per_s: number; p50_ms: number; p99_ms: number; non2xx: number; errors: number }) => ({
      endpoint: r.endpoint,
      mode,
      rows: r.rows,
      'req/s': x.req_per_s,
      'p50 ms': x.p50_ms,
      'p99 ms': x.p99_ms,
      non2xx: x.non2xx,
      errors: x.errors,
    });
    printTable([row('as deployed', r), ...(r.uncached ? [row('list cache off', r.uncached)] : [])]);
    const met = r.req_per_s >= TARGET_REQ_PER_S && r.p99_ms < TARGET_P99_MS;
    note(`target: >= ${TARGET_REQ_PER_S} req/s with p99 < ${TARGET_P99_MS} ms: ${met ? 'met' : 'NOT met'}${r.uncached ? `; the cache serves ${(r.req_per_s / Math.max(1, r.uncached.req_per_s)).toFixed(1)}x the uncached rate` : ''}`);
    if (file) note(`wrote ${file}`);
    if (r.non2xx || r.errors) throw new CliError(`${r.non2xx} non-2xx answers and ${r.errors} errors during the run`);
  },
};

export const commands: Command[] = [apiCmd];
