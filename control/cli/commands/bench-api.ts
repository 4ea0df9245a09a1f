// dicomctl bench api: the REST API's throughput (see control/bench/api.ts).
import { writeFile } from 'node:fs/promises';
import { type Command, int, str } from '../command.js';
import { note, printJson, printTable } from '../output.js';
import { benchApi } from '../../bench/api.js';

const apiCmd: Command = {
  name: 'bench api',
  summary: 'autocannon against GET /builds with N builds in a scratch database; req/s and p99',
  usage: 'bench api [--rows 1000] [--duration 10] [--connections 10] [--json FILE]',
  options: { rows: { type: 'string' }, duration: { type: 'string' }, connections: { type: 'string' }, json: { type: 'string' } },
  async run(args) {
    const r = await benchApi({
      rows: int(args, 'rows', 1000, 1, 100_000),
      durationS: int(args, 'duration', 10, 1, 120),
      connections: int(args, 'connections', 10, 1, 256),
      log: note,
    });
    const file = str(args, 'json');
    if (file) await writeFile(file, JSON.stringify(r, null, 2) + '\n');
    printTable([{ endpoint: r.endpoint, rows: r.rows, 'req/s': r.req_per_s, 'p50 ms': r.p50_ms, 'p99 ms': r.p99_ms, non2xx: r.non2xx, errors: r.errors }]);
    if (file) note(`wrote ${file}`);
    else if (args.values.json === true) printJson(r);
  },
};

export const commands: Command[] = [apiCmd];
