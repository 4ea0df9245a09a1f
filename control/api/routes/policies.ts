// /policies: migration policies in the job database (create, read, update, delete), and a dry run
// that evaluates one on a gossip view (a lab node's or this host's dicomd, through libdicom, or a
// view given in the request) and records every decision, taken or skipped, with its reason.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type GossipEntry, LibdicomError, inNetns, queryViewAsync } from '../../dicom/libdicom.js';
import { readState } from '../../lab/state.js';
import { type PolicyParams, PolicyParamsSchema, crossCheck, evaluate, withDefaults } from '../../policy/index.js';
import type { ApiDeps } from '../app.js';
import { ApiError, badRequest, conflict, notFound } from '../errors.js';
import { DateTime, IdParams, Nullable, Paging, StringEnum, errors } from '../schemas.js';
import { namingFormatter } from './policy-errors.js';

export const Policy = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    kind: Type.String(),
    description: Type.String(),
    enabled: Type.Boolean(),
    params: PolicyParamsSchema,
    state: Type.Object({ overloaded: Type.Array(Type.String()) }, { description: 'nodes the last real evaluation saw overloaded (hysteresis)' }),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
);

const Decision = Type.Object({
  action: StringEnum(['migrate', 'skip'] as const),
  job: Nullable(Type.String()),
  rank: Nullable(Type.Integer()),
  addr: Type.String(),
  fromNode: Type.String(),
  toNode: Nullable(Type.String()),
  reason: Type.String(),
  gain: Type.Optional(Type.Number()),
  remoteDelta: Type.Optional(Type.Number()),
  dryRun: Type.Boolean(),
});

const StoredDecision = Type.Object({
  id: Type.Integer(),
  evaluation: Type.String(),
  dryRun: Type.Boolean(),
  action: Type.String(),
  jobLabel: Nullable(Type.String()),
  rank: Nullable(Type.Integer()),
  addr: Type.String(),
  fromNode: Type.String(),
  toNode: Nullable(Type.String()),
  reason: Type.String(),
  createdAt: DateTime,
});

const ADDR = '^[0-9.]{7,15}:[0-9]{1,10}$';
const GossipEntrySchema = Type.Object(
  {
    node: Type.String({ minLength: 1, maxLength: 64 }),
    self: Type.Optional(Type.Boolean()),
    age_ms: Type.Number({ minimum: 0 }),
    sampled_at_ms: Type.Optional(Type.Number()),
    runnable: Type.Optional(Type.Integer({ minimum: 0 })),
    load: Type.Number({ minimum: 0 }),
    cpus: Type.Number({ minimum: 0 }),
    mem_free_kib: Type.Optional(Type.Number({ minimum: 0 })),
    mem_total_kib: Type.Optional(Type.Number({ minimum: 0 })),
    procs: Type.Array(
      Type.Object(
        { addr: Type.String({ pattern: ADDR }), pid: Type.Integer({ minimum: 0 }), rank: Nullable(Type.Integer({ minimum: 0 })), job: Type.String({ maxLength: 32 }), cpu: Type.Number({ minimum: 0 }) },
        { additionalProperties: false },
      ),
      { maxItems: 4096 },
    ),
    pairs: Type.Array(
      Type.Object(
        { src: Type.String({ pattern: ADDR }), dst: Type.String({ pattern: ADDR }), bytes: Type.Number({ minimum: 0 }), rate: Type.Number({ minimum: 0 }) },
        { additionalProperties: false },
      ),
      { maxItems: 65536 },
    ),
  },
  { additionalProperties: false },
);

const NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const Description = Type.String({ maxLength: 1000 });
const CreatePolicy = Type.Object(
  {
    name: Type.String({ pattern: NAME }),
    kind: Type.Optional(StringEnum(['load-balance'] as const, { description: 'what the policy does (only load balancing for now)' })),
    description: Type.Optional(Description),
    enabled: Type.Optional(Type.Boolean()),
    params: Type.Optional(PolicyParamsSchema),
  },
  { additionalProperties: false },
);
const UpdatePolicy = Type.Object(
  {
    description: Type.Optional(Description),
    enabled: Type.Optional(Type.Boolean()),
    /** replaces the policy's parameters; unset ones take their defaults */
    params: Type.Optional(PolicyParamsSchema),
  },
  { additionalProperties: false },
);
const DryRun = Type.Object(
  {
    node: Type.Optional(Type.String({ pattern: '^(local|n[0-9]{1,2})$', description: 'whose gossip view: "local" (this host\'s dicomd) or a lab node ("n1"); default n1 of a running lab, else local' })),
    entries: Type.Optional(Type.Array(GossipEntrySchema, { maxItems: 4096, description: 'a gossip view to evaluate instead (what-if)' })),
  },
  { additionalProperties: false },
);

interface PolicyRow {
  id: number;
  name: string;
  kind: string;
  description: string;
  enabled: boolean;
  params: unknown;
  state: unknown;
  createdAt: Date;
  updatedAt: Date;
}
const out = (p: PolicyRow) => ({
  id: p.id,
  name: p.name,
  kind: p.kind,
  description: p.description,
  enabled: p.enabled,
  params: withDefaults(p.params as Partial<PolicyParams>),
  state: { overloaded: ((p.state as { overloaded?: string[] }).overloaded ?? []).slice() },
  createdAt: p.createdAt.toISOString(),
  updatedAt: p.updatedAt.toISOString(),
});

export const policyRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db }) => {
  const { prisma } = db;

  const find = async (id: number) => {
    const p = await prisma.migrationPolicy.findUnique({ where: { id } });
    if (!p) throw notFound('policy', id);
    return p;
  };

  /** 400 unless the parameters are consistent and every pool they name exists. */
  const checkParams = async (params: PolicyParams) => {
    const why = crossCheck(params);
    if (why) throw badRequest(`params: ${why}`);
    if (params.pools.length === 0) return;
    const known = new Set((await prisma.nodePool.findMany({ select: { name: true } })).map((p) => p.name));
    const unknown = params.pools.filter((p) => !known.has(p));
    if (unknown.length) {
      throw badRequest(`params.pools: unknown pool${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `"${u}"`).join(', ')}; defined pools: ${[...known].join(', ') || 'none (create one with POST /pools)'}`);
    }
  };

  app.get(
    '/policies',
    { schema: { summary: 'migration policies', tags: ['policies'], response: { 200: Type.Array(Policy), ...errors(401, 503) } } },
    async () => (await prisma.migrationPolicy.findMany({ orderBy: { id: 'asc' } })).map(out),
  );

  app.get(
    '/policies/:id',
    { schema: { summary: 'one migration policy', tags: ['policies'], params: IdParams, response: { 200: Policy, ...errors(400, 401, 404, 503) } } },
    async (req) => out(await find(req.params.id)),
  );

  app.post(
    '/policies',
    {
      schemaErrorFormatter: namingFormatter,
      schema: { summary: 'create a migration policy', tags: ['policies'], body: CreatePolicy, response: { 201: Policy, ...errors(400, 401, 409, 503) } },
    },
    async (req, reply) => {
      const params = withDefaults(req.body.params);
      await checkParams(params);
      if (await prisma.migrationPolicy.findUnique({ where: { name: req.body.name } })) throw conflict(`policy "${req.body.name}" exists already`);
      const p = await prisma.migrationPolicy.create({
        data: { name: req.body.name, kind: req.body.kind ?? 'load-balance', description: req.body.description ?? '', enabled: req.body.enabled ?? true, params },
      });
      return reply.code(201).send(out(p));
    },
  );

  app.patch(
    '/policies/:id',
    {
      schemaErrorFormatter: namingFormatter,
      schema: { summary: "change a policy's description, enabled flag or parameters", tags: ['policies'], params: IdParams, body: UpdatePolicy, response: { 200: Policy, ...errors(400, 401, 404, 503) } },
    },
    async (req) => {
      await find(req.params.id);
      const params = req.body.params ? withDefaults(req.body.params) : undefined;
      if (params) await checkParams(params);
      const p = await prisma.migrationPolicy.update({
        where: { id: req.params.id },
        data: { description: req.body.description, enabled: req.body.enabled, ...(params ? { params, state: {} } : {}) },
      });
      return out(p);
    },
  );

  app.delete(
    '/policies/:id',
    { schema: { summary: 'delete a policy (its decisions go with it; its migrations stay, unlinked)', tags: ['policies'], params: IdParams, response: { 204: Type.Null(), ...errors(400, 401, 404, 503) } } },
    async (req, reply) => {
      await find(req.params.id);
      await prisma.migrationPolicy.delete({ where: { id: req.params.id } });
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/policies/:id/dry-run',
    {
      schemaErrorFormatter: namingFormatter,
      schema: {
        summary: 'what the policy would do now: every rank it considers, moved or not, with the reason (recorded, nothing moves)',
        tags: ['policies'],
        params: IdParams,
        body: DryRun,
        response: {
          200: Type.Object({
            evaluation: Type.String(),
            policy: Type.Object({ id: Type.Integer(), name: Type.String() }),
            source: Type.String(),
            dryRun: Type.Boolean(),
            nodes: Type.Array(Type.Object({ node: Type.String(), pool: Nullable(Type.String()), loadPerCpu: Type.Number(), overloaded: Type.Boolean() })),
            decisions: Type.Array(Decision),
          }),
          ...errors(400, 401, 404, 409, 503),
        },
      },
    },
    async (req) => {
      const policy = await find(req.params.id);
      const params = withDefaults(policy.params as Partial<PolicyParams>);
      if (req.body.entries && req.body.node) throw badRequest('give either node or entries, not both');
      const { source, entries } = req.body.entries ? { source: 'the request', entries: req.body.entries.map(asEntry) } : await gossipView(req.body.node);
      const pools = await prisma.nodePool.findMany({ where: { name: { in: params.pools } } });
      const missing = params.pools.filter((n) => !pools.some((p) => p.name === n));
      if (missing.length) throw new ApiError(409, `the policy names pool${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which no longer exist${missing.length > 1 ? '' : 's'}`);
      const now = Date.now();
      const since = new Date(now - params.cooldownSec * 1000);
      const recent = await prisma.migration.findMany({ where: { OR: [{ createdAt: { gte: since } }, { outcome: 'running' }] } });
      const ref = (m: (typeof recent)[number]) => ({ job: m.jobLabel, rank: m.rank, addr: `${m.homeNode}:${m.homePid}` });
      const result = evaluate({
        entries,
        params,
        pools,
        state: { overloaded: ((policy.state as { overloaded?: string[] }).overloaded ?? []).slice() },
        history: recent.filter((m) => m.outcome !== 'running').map((m) => ({ ...ref(m), at: m.createdAt.getTime() })),
        inFlight: recent.filter((m) => m.outcome === 'running').map(ref),
        now,
        dryRun: true,
      });
      const evaluation = randomUUID();
      await prisma.policyDecision.createMany({
        data: result.decisions.map((d) => ({ policyId: policy.id, evaluation, dryRun: true, action: d.action, jobLabel: d.job, rank: d.rank, addr: d.addr, fromNode: d.fromNode, toNode: d.toNode, reason: d.reason })),
      });
      return { evaluation, policy: { id: policy.id, name: policy.name }, source, dryRun: true, nodes: result.nodes, decisions: result.decisions };
    },
  );

  app.get(
    '/policies/:id/decisions',
    {
      schema: {
        summary: "a policy's recorded decisions, newest first",
        tags: ['policies'],
        params: IdParams,
        querystring: Type.Object({ ...Paging.properties, evaluation: Type.Optional(Type.String({ format: 'uuid', description: 'only the decisions of this evaluation' })) }),
        response: { 200: Type.Array(StoredDecision), ...errors(400, 401, 404, 503) },
      },
    },
    async (req) => {
      await find(req.params.id);
      const rows = await prisma.policyDecision.findMany({
        where: { policyId: req.params.id, ...(req.query.evaluation ? { evaluation: req.query.evaluation } : {}) },
        orderBy: { id: 'desc' },
        take: req.query.limit,
        skip: req.query.offset,
      });
      return rows.map((d) => ({ ...d, createdAt: d.createdAt.toISOString() }));
    },
  );
};

/** A view entry given in a request, with what the engine does not need filled in. */
function asEntry(e: { node: string; age_ms: number; load: number; cpus: number; procs: GossipEntry['procs']; pairs: GossipEntry['pairs'] } & Partial<GossipEntry>): GossipEntry {
  return { self: false, sampled_at_ms: 0, runnable: Math.round(e.load), mem_free_kib: 0, mem_total_kib: 0, ...e };
}

/** The gossip view of a lab node's dicomd (from inside its namespace) or of this host's. */
async function gossipView(node: string | undefined): Promise<{ source: string; entries: GossipEntry[] }> {
  const lab = readState();
  const which = node ?? (lab ? 'n1' : 'local');
  // $DICOM_DAEMON names this host's dicomd when it is not the default @dicomd (as for endpoints)
  let daemon = process.env.DICOM_DAEMON || 'dicomd';
  if (which !== 'local') {
    const n = lab?.nodes.find((x) => x.name === which);
    if (!lab) throw new ApiError(409, `no lab is up, so there is no node ${which}; use node "local" or start one with: dicomctl lab up`);
    if (!n) throw badRequest(`no lab node ${which}; the lab has ${lab.nodes.map((x) => x.name).join(', ')}`);
    daemon = inNetns(n.ns);
  }
  const source = which === 'local' ? "this host's dicomd" : `lab node ${which}'s dicomd`;
  try {
    return { source, entries: (await queryViewAsync(daemon)).entries };
  } catch (e) {
    if (e instanceof LibdicomError) throw new ApiError(409, `cannot read the gossip view of ${source}: ${e.message}`);
    throw e;
  }
}
