// The balancer: every period it reads the cluster's gossip view (through libdicom, from a lab
// node's dicomd), asks the policy engine (control/policy) what to do, and orders the moves it
// decides through the migration mechanism. Every decision, taken or skipped, goes to `record`
// with its reason; a dry run only reports.
import { inNetns, queryView } from '../dicom/libdicom.js';
import { sleep } from '../daemon/proc.js';
import { requireState } from '../lab/state.js';
import { migrateRank, type MigrationOutcome } from '../migration/migrate.js';
import { type Decision, type PolicyState, type Pool, type RankRef, evaluate } from '../policy/index.js';
import type { PolicyParams } from '../policy/index.js';

export interface BalancerOptions {
  params: PolicyParams;
  pools?: Pool[];
  periodMs?: number;
  dryRun?: boolean;
  /** every decision; migrate decisions again with their outcome once the move is over */
  record?: (d: Decision, outcome?: MigrationOutcome) => void | Promise<void>;
}

export interface Balancer {
  /** stops evaluating and waits for moves in flight */
  stop(): Promise<void>;
  readonly moves: { at: number; decision: Decision; outcome: MigrationOutcome }[];
}

export function startBalancer(o: BalancerOptions): Balancer {
  const state = requireState();
  const nameOf = (addr: string) => state.nodes.find((n) => n.addr === addr)?.name ?? addr;
  const moves: Balancer['moves'] = [];
  const history: (RankRef & { at: number })[] = [];
  const inFlight = new Map<string, { ref: RankRef; done: Promise<void> }>();
  let policyState: PolicyState | undefined;
  let running = true;

  async function round(): Promise<void> {
    let entries;
    try {
      entries = queryView(inNetns(state.nodes[0]!.ns)).entries;
    } catch {
      return; // no view this period (dicomd restarting): nothing to decide on
    }
    const r = evaluate({
      entries, params: o.params, pools: o.pools, state: policyState, history,
      inFlight: [...inFlight.values()].map((x) => x.ref), now: Date.now(), dryRun: o.dryRun,
    });
    policyState = r.state;
    for (const d of r.decisions) {
      await o.record?.(d);
      if (d.action !== 'migrate' || o.dryRun || !d.toNode || d.job === null || d.rank === null) continue;
      const ref = { job: d.job, rank: d.rank };
      history.push({ ...ref, at: Date.now() });
      const done = migrateRank({ addr: d.addr, from: nameOf(d.fromNode), to: nameOf(d.toNode) })
        .then(async (outcome) => {
          moves.push({ at: Date.now(), decision: d, outcome });
          await o.record?.(d, outcome);
        })
        .catch(async (e: unknown) => {
          const outcome: MigrationOutcome = {
            outcome: 'failed', addr: d.addr, pid: Number(d.addr.split(':')[1]), from: nameOf(d.fromNode), to: nameOf(d.toNode!),
            node: nameOf(d.fromNode), phases: {}, downtimeMs: null, imageBytes: 0, error: (e as Error).message, failedAt: 'check',
          };
          moves.push({ at: Date.now(), decision: d, outcome });
          await o.record?.(d, outcome);
        })
        .finally(() => inFlight.delete(d.addr));
      inFlight.set(d.addr, { ref, done });
    }
  }

  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      await round();
      await sleep(Math.max(0, (o.periodMs ?? 1000) - (Date.now() - t0)));
    }
  })();

  return {
    moves,
    async stop() {
      running = false;
      await loop;
      await Promise.all([...inFlight.values()].map((x) => x.done));
    },
  };
}
