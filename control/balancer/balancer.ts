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
  /** every decision (with the id of the evaluation that made it); migrate decisions again with their outcome */
  record?: (d: Decision, outcome?: MigrationOutcome, evaluation?: string) => void | Promise<void>;
  /** how a decided move is carried out; default: migrateRank in this process, unrecorded */
  migrate?: (d: Decision & { toNode: string; job: string; rank: number }, from: string, to: string) => Promise<MigrationOutcome>;
  /** the engine's memory (hysteresis) to start from, and where to keep it */
  state?: PolicyState;
  onState?: (s: PolicyState) => void | Promise<void>;
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
  let policyState: PolicyState | undefined = o.state;
  let evaluations = 0;
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
    if (JSON.stringify(r.state) !== JSON.stringify(policyState)) await o.onState?.(r.state);
    policyState = r.state;
    const evaluation = `${Date.now().toString(36)}-${(++evaluations).toString(36)}`;
    for (const d of r.decisions) {
      await o.record?.(d, undefined, evaluation);
      if (d.action !== 'migrate' || o.dryRun || !d.toNode || d.job === null || d.rank === null) continue;
      const ref = { job: d.job, rank: d.rank };
      history.push({ ...ref, at: Date.now() });
      const move = { ...d, toNode: d.toNode, job: d.job, rank: d.rank };
      const done = (o.migrate ? o.migrate(move, nameOf(d.fromNode), nameOf(d.toNode)) : migrateRank({ addr: d.addr, from: nameOf(d.fromNode), to: nameOf(d.toNode) }))
        .then(async (outcome) => {
          moves.push({ at: Date.now(), decision: d, outcome });
          await o.record?.(d, outcome, evaluation);
        })
        .catch(async (e: unknown) => {
          const outcome: MigrationOutcome = {
            outcome: 'failed', addr: d.addr, pid: Number(d.addr.split(':')[1]), from: nameOf(d.fromNode), to: nameOf(d.toNode!),
            node: nameOf(d.fromNode), phases: {}, downtimeMs: null, imageBytes: 0, error: (e as Error).message, failedAt: 'check',
          };
          moves.push({ at: Date.now(), decision: d, outcome });
          await o.record?.(d, outcome, evaluation);
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
