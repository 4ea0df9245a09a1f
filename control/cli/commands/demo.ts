// dicomctl demo: what `npm start` runs after provisioning. It starts the
// control plane (REST API + job queue on the embedded database unless
// DATABASE_URL is set) and drives everything through its API: detect Open MPI,
// build btl_dicom, bring up a lab, detect Open MPI on a node over ssh, deploy
// the build to every lab node over ssh, run MPI jobs across the nodes over
// dicom, show each node's dicomd; then it stops what it started.
//
// The demo is a list of steps sharing one context (DemoContext); a step that
// starts something registers its teardown with ctx.defer. A new step (a
// migration, say) is one more entry in `steps`.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ApiClient, ApiClientError } from '../../api/client.js';
import { createToken } from '../../api/auth.js';
import { type Server, serve } from '../../api/server.js';
import { releaseSignalHandlers } from '../../db/embedded.js';
import { labDown, labStatus, labUp } from '../../lab/index.js';
import { buildDir } from '../../paths.js';
import { ensureMpiPrograms } from '../../runner/prereq.js';
import type { Command } from '../command.js';
import { CliError, note, printTable, step } from '../output.js';
import { phaseLine } from './migrate.js';
import { startBalancer } from '../../balancer/balancer.js';
import { withDefaults } from '../../policy/index.js';

interface JobRow extends Record<string, string | number> {
  job: string;
  nodes: string;
  ranks: number;
  seconds: string;
  result: string;
}

interface Build {
  id: number;
  status: string;
  artifactPath: string | null;
  sha256: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}
interface Deployment {
  id: number;
  status: string;
  nodes: { nodeName: string; status: string; error: string | null }[];
}
interface Job {
  id: number;
  status: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}
interface NodeView {
  name: string;
  source: string;
  address: string | null;
  healthy: boolean | null;
  dicomd: { pid: number; uptime_s: number; endpoints: unknown[]; directory: unknown[]; cache: unknown[] } | null;
  dicomdError: string | null;
  /** the node's entry in the cluster's gossip view */
  gossip: { procs: unknown[] } | null;
}

interface MigrationRow {
  fromNode: string;
  toNode: string;
  outcome: string | null;
  downtimeMs: number | null;
  phases: Record<string, number>;
  failedAt: string | null;
  error: string | null;
}

export interface DemoContext {
  server: Server;
  api: ApiClient;
  /** lab node count and names ("n1".."nN") */
  labNodes: number;
  nodes: string[];
  /** ranks per job: two per node */
  np: number;
  targetId?: number;
  buildId?: number;
  /** where the deployment put mca_btl_dicom.so on every node */
  componentDir?: string;
  jobs: JobRow[];
  keepLab: boolean;
  /** teardown of something a step started; run in reverse order at the end */
  defer(what: string, fn: () => Promise<unknown>): void;
}

export interface DemoStep {
  title: (ctx: DemoContext) => string;
  run(ctx: DemoContext): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (a: string | null, b: string | null) => (a && b ? ((Date.parse(b) - Date.parse(a)) / 1000).toFixed(2) : '-');

/** Prints the job's own progress lines ("» ...") of a build log while it runs. */
async function followBuildLog(api: ApiClient, id: number): Promise<void> {
  const res = await api.raw('GET', `/builds/${id}/log`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  let lines = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const parts = (rest + value).split('\n');
    rest = parts.pop() ?? '';
    for (const l of parts) {
      lines++;
      if (l.startsWith('»')) note(l);
    }
  }
  note(`(${lines} log lines; all of them: GET /builds/${id}/log)`);
}

async function runJob(ctx: DemoContext, job: string, program: string, args: string[] = []): Promise<Job> {
  step(`POST /jobs: ${job}: ${ctx.np} ranks of ${[path.basename(program), ...args].join(' ')} on ${ctx.nodes.join(',')} over self,dicom`);
  let j = await ctx.api.json<Job>('POST', '/jobs', { program, args, np: ctx.np, nodes: ctx.nodes, componentDir: ctx.componentDir, timeoutSeconds: 300 });
  while (j.status === 'queued' || j.status === 'running') {
    await sleep(200);
    j = await ctx.api.json<Job>('GET', `/jobs/${j.id}`);
  }
  const line = j.stdout.split('\n').find((l) => l.startsWith('RESULT')) ?? `exit ${j.exitCode ?? '-'}`;
  note(`job ${j.id} ${j.status}: ${line}`);
  if (j.status !== 'succeeded') note((j.error ?? '') + '\n' + (j.stderr + j.stdout).slice(-2000));
  ctx.jobs.push({ job, nodes: ctx.nodes.join(','), ranks: ctx.np, seconds: seconds(j.startedAt, j.finishedAt), result: j.status === 'succeeded' ? 'ok' : `FAILED (${j.exitCode ?? j.error})` });
  return j;
}

function dicomdTable(ns: NodeView[]): void {
  printTable(
    ns
      .filter((n) => n.source !== 'registered')
      .map((n) => ({
        node: n.name,
        address: n.address ?? '-',
        healthy: n.healthy ? 'yes' : 'no',
        dicomd: n.dicomd ? `pid ${n.dicomd.pid}, up ${n.dicomd.uptime_s.toFixed(1)} s` : `no answer (${(n.dicomdError ?? '').slice(0, 90)})`,
        'homed ranks': n.dicomd?.directory.length ?? '-',
        'cached lookups': n.dicomd?.cache.length ?? '-',
      })),
  );
}

export const steps: DemoStep[] = [
  {
    title: () => 'POST /targets {detect:"local"}: Open MPI of this host (ompi_info, mpicc, btl.h)',
    async run(ctx) {
      const t = await ctx.api.json<{ id: number; version: string; btlApi: string; pkglibdir: string }>('POST', '/targets', { detect: 'local' });
      ctx.targetId = t.id;
      note(`target ${t.id}: Open MPI ${t.version}, BTL API ${t.btlApi}, components in ${t.pkglibdir}`);
    },
  },
  {
    title: () => 'POST /builds: generate btl_dicom from mca-templates, compile (libdicom inside), verify with ompi_info',
    async run(ctx) {
      let id: number;
      try {
        id = (await ctx.api.json<Build>('POST', '/builds', { targetId: ctx.targetId })).id;
      } catch (e) {
        // a build of this target queued by an earlier, interrupted run: follow that one
        if (!(e instanceof ApiClientError) || e.status !== 409) throw e;
        const busy = (await ctx.api.json<Build[]>('GET', `/builds?targetId=${ctx.targetId}`)).find((b) => b.status === 'queued' || b.status === 'running');
        if (!busy) throw e;
        id = busy.id;
      }
      note(`build ${id} queued; following its log`);
      await followBuildLog(ctx.api, id);
      const b = await ctx.api.json<Build>('GET', `/builds/${id}`);
      if (b.status !== 'succeeded') throw new CliError(`build ${id} ${b.status}: ${b.error ?? ''} (GET /builds/${id}/log)`);
      ctx.buildId = id;
      note(`build ${id} succeeded in ${seconds(b.startedAt, b.finishedAt)} s: ${b.artifactPath} (sha256 ${b.sha256?.slice(0, 16)}...)`);
    },
  },
  {
    title: () => 'building the MPI test programs (tests/mpi)',
    async run() {
      await ensureMpiPrograms();
    },
  },
  {
    title: (ctx) => `lab up --nodes ${ctx.labNodes}: namespaces on a bridge, sshd + dicomd per node`,
    async run(ctx) {
      if ((await labStatus()).up) await labDown();
      await labUp({ nodes: ctx.labNodes, log: note });
      if (!ctx.keepLab) ctx.defer('lab down', () => labDown());
    },
  },
  {
    title: (ctx) => `POST /targets {detect:"ssh", node:"${ctx.nodes.at(-1)}"}: the same facts read on a lab node over ssh`,
    async run(ctx) {
      const node = ctx.nodes.at(-1)!;
      const t = await ctx.api.json<{ id: number; version: string; btlApi: string; node: { address: string } }>('POST', '/targets', { detect: 'ssh', node });
      note(`target ${t.id}: Open MPI ${t.version}, BTL API ${t.btlApi} on ${node} (${t.node.address})`);
    },
  },
  {
    title: (ctx) => `POST /deployments: build ${ctx.buildId} to ${ctx.nodes.join(', ')} over ssh (copy, sha256, ompi_info on each node)`,
    async run(ctx) {
      const dest = path.join(buildDir, 'demo', 'btl');
      let d = await ctx.api.json<Deployment>('POST', '/deployments', { buildId: ctx.buildId, dest, nodes: ctx.nodes });
      const seen = new Map<string, string>();
      for (;;) {
        for (const n of d.nodes) {
          if (seen.get(n.nodeName) !== n.status) note(`${n.nodeName}: ${n.status}${n.error ? ` (${n.error})` : ''}`);
          seen.set(n.nodeName, n.status);
        }
        if (d.status !== 'pending' && d.status !== 'running') break;
        await sleep(200);
        d = await ctx.api.json<Deployment>('GET', `/deployments/${d.id}`);
      }
      if (d.status !== 'succeeded') throw new CliError(`deployment ${d.id} ${d.status} (GET /deployments/${d.id} has each node's log)`);
      ctx.componentDir = dest;
      note(`deployment ${d.id} succeeded: ${dest}/mca_btl_dicom.so on every node`);
    },
  },
  {
    title: () => "GET /nodes: each node's dicomd, asked through libdicom",
    async run(ctx) {
      dicomdTable(await ctx.api.json<NodeView[]>('GET', '/nodes'));
    },
  },
  {
    title: () => 'MPI jobs across the lab through POST /jobs',
    async run(ctx) {
      const where = await runJob(ctx, 'placement', '/bin/hostname');
      const perNode = new Map<string, number>();
      for (const h of where.stdout.trim().split('\n')) perNode.set(h, (perNode.get(h) ?? 0) + 1);
      note(`placement: ${[...perNode].map(([h, n]) => `${h}=${n}`).join(' ')}`);
      await runJob(ctx, 'every MPI collective', 'collectives');
      await runJob(ctx, 'ping-pong 0 B..16 MiB', 'pingpong', ['--neighbors']);
      await runJob(ctx, 'checksummed stress, 256 MiB per pair', 'stress', ['--bytes', '256M']);
    },
  },
  {
    title: () => 'live migration: ranks of a running job move between nodes (POST /migrations)',
    async run(ctx) {
      const stop = path.join(buildDir, `demo-migration-${process.pid}.stop`);
      rmSync(stop, { force: true });
      ctx.defer('remove the stop file', async () => rmSync(stop, { force: true }));
      const args = ['--rounds', '100000', '--compute-ms', '20', '--report', '25', '--until-file', stop];
      step(`POST /jobs: ${ctx.np} ranks of migrate_ring (ring + all-to-all, every message checked) on ${ctx.nodes.join(',')}, each rank under its home stub dicom-run`);
      const job = await ctx.api.json<Job>('POST', '/jobs', { program: 'migrate_ring', args, np: ctx.np, nodes: ctx.nodes, componentDir: ctx.componentDir, timeoutSeconds: 300 });
      const t0 = performance.now();
      const moves: { rank: number; to: string }[] = [
        { rank: 1, to: ctx.nodes[2 % ctx.nodes.length]! },
        { rank: 0, to: ctx.nodes[1]! },
      ];
      for (const m of moves) {
        let row: MigrationRow | undefined;
        for (let tries = 0; !row; tries++) {
          try {
            row = await ctx.api.json<MigrationRow>('POST', '/migrations', { job: job.id, rank: m.rank, toNode: m.to });
          } catch (e) {
            // 404 until every rank has registered with its node's dicomd
            if (!(e instanceof ApiClientError) || e.status !== 404 || tries > 100) throw e;
            await sleep(200);
          }
        }
        note(`rank ${m.rank}: ${row.fromNode} -> ${row.toNode} ${row.outcome}, downtime ${row.downtimeMs?.toFixed(1) ?? '-'} ms`);
        note(`  ${phaseLine(row.phases)}`);
        if (row.outcome !== 'succeeded') note(`  ${row.failedAt ?? ''}: ${row.error ?? ''}`);
      }
      await sleep(1500);
      writeFileSync(stop, '');
      let j = job;
      while (j.status === 'queued' || j.status === 'running') {
        await sleep(200);
        j = await ctx.api.json<Job>('GET', `/jobs/${j.id}`);
      }
      const result = j.stdout.split('\n').find((l) => l.startsWith('RESULT')) ?? `exit ${j.exitCode ?? '-'}`;
      note(`job ${j.id} ${j.status} after its ranks moved: ${result}`);
      for (const m of moves) {
        const last = j.stdout.split('\n').filter((l) => l.startsWith(`rank ${m.rank} round`)).at(-1);
        if (last) note(`  its output still reaches mpirun: "${last}"`);
      }
      ctx.jobs.push({ job: 'migrate_ring, 2 live migrations', nodes: ctx.nodes.join(','), ranks: ctx.np, seconds: ((performance.now() - t0) / 1000).toFixed(1), result: j.status === 'succeeded' ? 'ok' : `FAILED (${j.exitCode ?? j.error})` });
    },
  },
  {
    title: () => 'load balancing: two jobs start crowded on n1; the policy (gossip view) spreads their ranks',
    async run(ctx) {
      // 2 ranks per job, all on n1: the policy sees n1 over 1.0 load per CPU and the others idle.
      const params = withDefaults({ threshold: 1.0, hysteresis: 0.25, cooldownSec: 60, maxConcurrent: 1, minGain: 0.2, commCostPerGBps: 20 });
      // The previous step's job has ended, but gossip still carries its ranks for a moment: the
      // policy must not see them, or it would try to move ranks that are gone.
      for (let i = 0; i < 50; i++) {
        const nodes = await ctx.api.json<NodeView[]>('GET', '/nodes');
        if (!nodes.some((n) => n.source === 'lab' && (n.gossip?.procs.length ?? 0) > 0)) break;
        await sleep(200);
      }
      step(`balancer on: threshold ${params.threshold} load per CPU, hysteresis ${params.hysteresis}, cooldown ${params.cooldownSec} s, communication-aware`);
      const balancer = startBalancer({
        params,
        periodMs: 1000,
        record: (d, outcome) => {
          if (d.action === 'migrate' && outcome) note(`  ${d.job}:${d.rank} ${outcome.from} -> ${outcome.to} ${outcome.outcome} (downtime ${outcome.downtimeMs?.toFixed(0) ?? '-'} ms): ${d.reason}`);
        },
      });
      const t0 = performance.now();
      const args = ['--rounds', '150', '--work-mflop', '20', '--report', '150', '--size', '256K'];
      // Both through the API, which runs two jobs at once (dicomctl serve --mpi-slots); ranks that
      // wait yield the CPU, so the crowded node's load is its ranks' computing.
      step('POST /jobs twice: jobs A and B, 2 ranks each, every rank on n1 under its home stub dicom-run');
      const submitted = await Promise.all(['A', 'B'].map(async (name) => {
        const j = await ctx.api.json<Job>('POST', '/jobs', {
          program: 'migrate_ring', args, np: 2, nodes: ['n1'], componentDir: ctx.componentDir, timeoutSeconds: 300, mca: { mpi_yield_when_idle: '1' },
        });
        note(`job ${name} is job ${j.id}`);
        return { name, j };
      }));
      const jobs = await Promise.all(submitted.map(async ({ name, j }) => {
        while (j.status === 'queued' || j.status === 'running') {
          await sleep(200);
          j = await ctx.api.json<Job>('GET', `/jobs/${j.id}`);
        }
        return { name, j };
      }));
      await balancer.stop();
      for (const { name, j } of jobs) {
        note(`job ${name} (${j.id}) ${j.status}: ${j.stdout.split('\n').find((l) => l.startsWith('RESULT')) ?? `exit ${j.exitCode ?? '-'}`}`);
        ctx.jobs.push({ job: `balanced job ${name}`, nodes: 'n1 at start', ranks: 2, seconds: seconds(j.startedAt, j.finishedAt), result: j.status === 'succeeded' ? 'ok' : `FAILED (${j.exitCode ?? j.error})` });
      }
      note(`${balancer.moves.filter((m) => m.outcome.outcome === 'succeeded').length} ranks moved by the policy in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    },
  },
  {
    title: () => "what each node's dicomd saw (GET /nodes)",
    async run(ctx) {
      dicomdTable(await ctx.api.json<NodeView[]>('GET', '/nodes'));
    },
  },
];

const demo: Command = {
  name: 'demo',
  summary: 'start the control plane and drive it through its API: detect, build, lab, deploy over ssh, MPI jobs over dicom, summary',
  usage: 'demo [--nodes N] [--keep]',
  options: { nodes: { type: 'string' }, keep: { type: 'boolean' } },
  async run(args) {
    if (process.getuid?.() !== 0) throw new CliError('the demo needs root: it builds a lab of network namespaces');
    const labNodes = Number(args.values.nodes ?? 3);
    if (!Number.isInteger(labNodes) || labNodes < 2 || labNodes > 8) throw new CliError('--nodes must be between 2 and 8', 2);
    const t0 = performance.now();

    step(process.env.DATABASE_URL ? 'starting the control plane on DATABASE_URL' : 'starting the control plane on the embedded database (no DATABASE_URL)');
    const server = await serve({ port: 0, log: note });
    // our own teardown below stops the API, the queue and Postgres in that order
    releaseSignalHandlers();
    const teardown: [string, () => Promise<unknown>][] = [];
    const { token } = await createToken(server.db.prisma, `demo-${process.pid}-${Date.now()}`);
    teardown.push(['removing the demo token', () => server.db.prisma.apiToken.deleteMany({ where: { name: { startsWith: `demo-${process.pid}-` } } })]);
    note(`control plane at ${server.url} (docs at ${server.url}/docs), database ${server.db.embedded ? `embedded in ${server.db.embedded.dir}` : 'from DATABASE_URL'}`);

    const ctx: DemoContext = {
      server,
      api: new ApiClient(server.url, token),
      labNodes,
      nodes: Array.from({ length: labNodes }, (_, i) => `n${i + 1}`),
      np: labNodes * 2,
      jobs: [],
      keepLab: Boolean(args.values.keep),
      defer: (what, fn) => void teardown.push([what, fn]),
    };
    let failure: unknown;
    const interrupted = new Promise<never>((_, reject) => {
      process.once('SIGINT', () => reject(new CliError('interrupted', 130)));
      process.once('SIGTERM', () => reject(new CliError('terminated', 143)));
    });
    interrupted.catch(() => {});
    try {
      for (const s of steps) {
        step(s.title(ctx));
        const ts = performance.now();
        await Promise.race([s.run(ctx), interrupted]);
        note(`done in ${((performance.now() - ts) / 1000).toFixed(1)} s`);
      }
    } catch (e) {
      failure = e instanceof ApiClientError ? new CliError(e.message) : e;
    } finally {
      for (const [what, fn] of teardown.reverse()) {
        step(what);
        await fn().catch((e: unknown) => note(`${what} failed: ${(e as Error).message}`));
      }
      step('stopping the control plane');
      await server.close();
      if (ctx.keepLab) note('lab kept (dicomctl lab down removes it)');
    }
    if (ctx.jobs.length) {
      process.stdout.write('\nsummary: MPI jobs over btl dicom across the lab, launched through the control plane\n');
      printTable(ctx.jobs);
    }
    process.stdout.write(`total ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    if (failure) throw failure;
    if (ctx.jobs.some((r) => r.result !== 'ok')) throw new CliError('a demo job failed');
  },
};

export const commands: Command[] = [demo];
