// The control plane runs its enabled load-balance policies: while a lab is up, one balancer per
// policy evaluates the gossip view every period. Moves go through orderMigration, so they are
// recorded in Migration with their policy; decisions go to PolicyDecision with their reason. A
// skip is recorded when it first happens for a rank or its reason changes, not every period.
import type { PrismaClient } from '../db/index.js';
import { sleep } from '../daemon/proc.js';
import { readState } from '../lab/state.js';
import { MigrationError, type MigrationOutcome } from '../migration/migrate.js';
import { orderMigration } from '../migration/service.js';
import { type PolicyParams, type PolicyState, type Pool, withDefaults } from '../policy/index.js';
import { type Balancer, startBalancer } from './balancer.js';

export interface PolicyRunner {
  stop(): Promise<void>;
}

interface Running {
  balancer: Balancer;
  version: number;
}

const digits = /[\d.]+/g;

export function startPolicyRunner(prisma: PrismaClient, opts: { checkMs?: number; periodMs?: number; log?: (l: string) => void } = {}): PolicyRunner {
  const running = new Map<number, Running>();
  let on = true;

  async function start(p: { id: number; params: unknown; state: unknown; updatedAt: Date }): Promise<void> {
    const params: PolicyParams = withDefaults(p.params as Partial<PolicyParams>);
    const pools: Pool[] = params.pools.length
      ? (await prisma.nodePool.findMany({ where: { name: { in: params.pools } } })).map((x) => ({ name: x.name, nodes: x.nodes }))
      : [];
    const lastSkip = new Map<string, string>();
    const balancer = startBalancer({
      params,
      pools,
      periodMs: opts.periodMs ?? 1000,
      state: (p.state as PolicyState | null)?.overloaded ? (p.state as PolicyState) : undefined,
      onState: async (s) => void (await prisma.migrationPolicy.update({ where: { id: p.id }, data: { state: s as object } }).catch(() => {})),
      migrate: async (d, _from, to) => {
        try {
          return (await orderMigration(prisma, { job: d.job, rank: d.rank, toNode: to, policyId: p.id })).outcome;
        } catch (e) {
          const outcome: MigrationOutcome = { outcome: 'failed', addr: d.addr, pid: 0, from: d.fromNode, to: d.toNode, node: d.fromNode, phases: {}, downtimeMs: null, imageBytes: 0, failedAt: 'check', error: e instanceof MigrationError ? e.message : String(e) };
          return outcome;
        }
      },
      record: async (d, outcome, evaluation) => {
        if (outcome) {
          opts.log?.(`policy ${p.id}: ${d.job}:${d.rank} ${outcome.from} -> ${outcome.to}: ${outcome.outcome}`);
          return;
        }
        if (d.action === 'skip') {
          const shape = d.reason.replace(digits, '#');
          if (lastSkip.get(d.addr) === shape) return;
          lastSkip.set(d.addr, shape);
        } else {
          lastSkip.delete(d.addr);
        }
        await prisma.policyDecision
          .create({ data: { policyId: p.id, evaluation: evaluation ?? '', dryRun: false, action: d.action, jobLabel: d.job, rank: d.rank, addr: d.addr, fromNode: d.fromNode, toNode: d.toNode, reason: d.reason } })
          .catch(() => {}); // the policy was deleted meanwhile, or the database is down: the next period decides again
      },
    });
    running.set(p.id, { balancer, version: p.updatedAt.getTime() });
  }

  const loop = (async () => {
    while (on) {
      try {
        const labUp = readState() !== null;
        const wanted = labUp ? await prisma.migrationPolicy.findMany({ where: { enabled: true, kind: 'load-balance' } }) : [];
        for (const [id, r] of running) {
          const w = wanted.find((p) => p.id === id);
          if (!w || w.updatedAt.getTime() !== r.version) {
            running.delete(id);
            await r.balancer.stop();
          }
        }
        for (const p of wanted) if (!running.has(p.id)) await start(p);
      } catch {
        /* database unreachable: keep what runs, look again later */
      }
      await sleep(opts.checkMs ?? 2000);
    }
  })();

  return {
    async stop() {
      on = false;
      await loop;
      await Promise.all([...running.values()].map((r) => r.balancer.stop()));
      running.clear();
    },
  };
}
