// dicomctl builds list|create|show|log: through the REST API.
import { type Command, int, str } from '../command.js';
import { CliError, note, printJson, printTable, step } from '../output.js';
import type { ApiClient } from '../../api/client.js';
import { call, client, clientOptions, positiveId } from './api-common.js';

interface Build {
  id: number;
  targetId: number;
  status: string;
  artifactPath: string | null;
  sha256: string | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

const secs = (b: Build) => (b.startedAt && b.finishedAt ? ((Date.parse(b.finishedAt) - Date.parse(b.startedAt)) / 1000).toFixed(1) + ' s' : '-');
const row = (b: Build) => ({ id: b.id, target: b.targetId, status: b.status, took: secs(b), created: b.createdAt, artifact: b.artifactPath ?? '-' });

/** Streams GET /builds/:id/log into `out` until the build ends. */
async function streamLog(api: ApiClient, id: number, out: NodeJS.WritableStream): Promise<void> {
  const res = await call(() => api.raw('GET', `/builds/${id}/log?follow=true`));
  if (!res.body) return;
  const dec = new TextDecoder();
  for await (const chunk of res.body) out.write(dec.decode(chunk as Uint8Array, { stream: true }));
}

function finish(b: Build, json: boolean): void {
  if (json) printJson(b);
  else if (b.status === 'succeeded') process.stdout.write(`build ${b.id} succeeded in ${secs(b)}: ${b.artifactPath} (sha256 ${b.sha256})\n`);
  else process.stdout.write(`build ${b.id} ${b.status}${b.error ? `: ${b.error}` : ''}\n`);
  if (b.status === 'failed') throw new CliError(`build ${b.id} failed`, 1);
}

const listCmd: Command = {
  name: 'builds list',
  summary: 'list builds, newest first',
  usage: 'builds list [--status S] [--target ID] [--limit N] [--json]',
  options: { ...clientOptions, status: { type: 'string' }, target: { type: 'string' }, limit: { type: 'string' } },
  async run(args) {
    const q = new URLSearchParams({ limit: String(int(args, 'limit', 50, 1, 1000)) });
    const status = str(args, 'status');
    if (status) q.set('status', status);
    const target = str(args, 'target');
    if (target) q.set('targetId', target);
    const bs = await call(() => client(args).json<Build[]>('GET', `/builds?${q}`));
    if (args.values.json) return printJson(bs);
    if (bs.length === 0) return void process.stdout.write('no builds\n');
    printTable(bs.map(row));
  },
};

const createCmd: Command = {
  name: 'builds create',
  summary: 'queue a build of btl_dicom for a target and follow its log (--detach to return at once)',
  usage: 'builds create --target ID [--detach] [--quiet] [--json]',
  options: { ...clientOptions, target: { type: 'string' }, detach: { type: 'boolean' }, quiet: { type: 'boolean' } },
  async run(args) {
    const targetId = int(args, 'target', 0, 1, 2147483647);
    if (!targetId) throw new CliError('builds create needs --target ID (see "dicomctl targets list")', 2);
    const api = client(args);
    const b = await call(() => api.json<Build>('POST', '/builds', { targetId }));
    step(`build ${b.id} queued for target ${targetId}`);
    if (args.values.detach) {
      if (args.values.json) printJson(b);
      else process.stdout.write(`${b.id}\n`);
      return;
    }
    const t0 = performance.now();
    if (args.values.quiet || args.values.json) {
      // progress without the log: one line per state change
      let last = '';
      for (;;) {
        const cur = await call(() => api.json<Build>('GET', `/builds/${b.id}`));
        if (cur.status !== last) note(`${cur.status} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        last = cur.status;
        if (cur.status === 'succeeded' || cur.status === 'failed') break;
        await new Promise((r) => setTimeout(r, 500));
      }
    } else {
      await streamLog(api, b.id, process.stderr);
    }
    finish(await call(() => api.json<Build>('GET', `/builds/${b.id}`)), Boolean(args.values.json));
  },
};

const showCmd: Command = {
  name: 'builds show',
  summary: 'one build',
  usage: 'builds show ID [--json]',
  options: { ...clientOptions },
  async run(args) {
    const id = positiveId(args, 'build');
    const b = await call(() => client(args).json<Build>('GET', `/builds/${id}`));
    if (args.values.json) return printJson(b);
    for (const [k, v] of Object.entries(b)) process.stdout.write(`${k.padEnd(13)} ${v ?? '-'}\n`);
  },
};

const logCmd: Command = {
  name: 'builds log',
  summary: "print a build's log, following it while it runs",
  usage: 'builds log ID [--no-follow]',
  options: { ...clientOptions, 'no-follow': { type: 'boolean' } },
  async run(args) {
    const id = positiveId(args, 'build');
    const api = client(args);
    if (args.values['no-follow']) {
      process.stdout.write(await (await call(() => api.raw('GET', `/builds/${id}/log?follow=false`))).text());
      return;
    }
    await streamLog(api, id, process.stdout);
  },
};

export const commands: Command[] = [listCmd, createCmd, showCmd, logCmd];
