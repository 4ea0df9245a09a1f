// A migration policy's parameters: one TypeBox schema, used by the REST API to validate input
// (unknown fields and out-of-range values are 400s) and by the engine, with its defaults.
import { type Static, Type } from 'typebox';

export const POLICY_DEFAULTS = {
  threshold: 1.0,
  hysteresis: 0.25,
  cooldownSec: 30,
  maxConcurrent: 1,
  minGain: 0.1,
  commCostPerGBps: 1.0,
  maxEntryAgeMs: 5000,
  pinnedJobs: [] as string[],
  pinnedRanks: [] as string[],
  pools: [] as string[],
};

/** job labels as libdicom reports them (printable ASCII, no quote or backslash, at most 32) */
const JOB = '^[!#-\\[\\]-~]{1,32}$';
const NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';

export const PolicyParamsSchema = Type.Object(
  {
    threshold: Type.Number({ minimum: 0, maximum: 1000, default: POLICY_DEFAULTS.threshold, description: 'a node is overloaded when its load per CPU of capacity is above this' }),
    hysteresis: Type.Number({ minimum: 0, maximum: 1000, default: POLICY_DEFAULTS.hysteresis, description: 'an overloaded node stays overloaded until its load per CPU drops below threshold - hysteresis' }),
    cooldownSec: Type.Number({ minimum: 0, maximum: 86400, default: POLICY_DEFAULTS.cooldownSec, description: 'a rank that moved is not moved again for this long' }),
    maxConcurrent: Type.Integer({ minimum: 1, maximum: 1000, default: POLICY_DEFAULTS.maxConcurrent, description: 'migrations in flight at once' }),
    minGain: Type.Number({ minimum: 0, maximum: 1000, default: POLICY_DEFAULTS.minGain, description: 'a move must lower the busier of its two nodes by at least this much load per CPU, after the communication penalty' }),
    commCostPerGBps: Type.Number({ minimum: 0, maximum: 1e6, default: POLICY_DEFAULTS.commCostPerGBps, description: 'load per CPU that 1 GB/s of traffic between ranks costs when a move makes it cross nodes (and saves when a move makes it local)' }),
    maxEntryAgeMs: Type.Integer({ minimum: 0, maximum: 86_400_000, default: POLICY_DEFAULTS.maxEntryAgeMs, description: 'gossip entries older than this are ignored' }),
    pinnedJobs: Type.Array(Type.String({ pattern: JOB }), { maxItems: 1000, default: [], description: 'jobs whose ranks never move' }),
    pinnedRanks: Type.Array(Type.String({ pattern: '^[!#-\\[\\]-~]{1,32}:[0-9]{1,9}$' }), { maxItems: 10000, default: [], description: 'ranks that never move, as "job:rank"' }),
    pools: Type.Array(Type.String({ pattern: NAME }), { maxItems: 100, default: [], description: 'node pools the policy governs; ranks move only within a pool. Empty: every node, as one pool' }),
  },
  { additionalProperties: false },
);

export type PolicyParams = Static<typeof PolicyParamsSchema>;
export const POOL_NAME = NAME;

/** Parameters with every default filled in. */
export function withDefaults(p: Partial<PolicyParams> = {}): PolicyParams {
  return { ...POLICY_DEFAULTS, ...p, pinnedJobs: [...(p.pinnedJobs ?? [])], pinnedRanks: [...(p.pinnedRanks ?? [])], pools: [...(p.pools ?? [])] };
}

/** What the schema cannot say: a problem in words, or null. */
export function crossCheck(p: PolicyParams): string | null {
  if (p.hysteresis > p.threshold) return `hysteresis (${p.hysteresis}) must not exceed threshold (${p.threshold})`;
  const dup = p.pools.find((x, i) => p.pools.indexOf(x) !== i);
  if (dup) return `pool "${dup}" is listed twice`;
  return null;
}
