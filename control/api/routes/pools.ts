// /pools: sets of nodes (by the IPv4 address gossip names them with) that a migration policy
// moves ranks within. A pool a policy uses cannot be deleted.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { POOL_NAME } from '../../policy/params.js';
import type { ApiDeps } from '../app.js';
import { conflict, notFound } from '../errors.js';
import { DateTime, IdParams, errors } from '../schemas.js';
import { namingFormatter } from './policy-errors.js';

const IPV4 = '^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$';
const Nodes = Type.Array(Type.String({ pattern: IPV4, description: "a node's IPv4 address, as its dicomd gossips it" }), { minItems: 1, maxItems: 4096, uniqueItems: true });

export const NodePool = Type.Object(
  { id: Type.Integer(), name: Type.String(), nodes: Type.Array(Type.String()), createdAt: DateTime },
);

const out = (p: { id: number; name: string; nodes: string[]; createdAt: Date }) => ({ id: p.id, name: p.name, nodes: p.nodes, createdAt: p.createdAt.toISOString() });

export const poolRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db }) => {
  const { prisma } = db;
  const find = async (id: number) => {
    const pool = await prisma.nodePool.findUnique({ where: { id } });
    if (!pool) throw notFound('pool', id);
    return pool;
  };

  app.get(
    '/pools',
    { schema: { summary: 'node pools', tags: ['policies'], response: { 200: Type.Array(NodePool), ...errors(401, 503) } } },
    async () => (await prisma.nodePool.findMany({ orderBy: { id: 'asc' } })).map(out),
  );

  app.get(
    '/pools/:id',
    { schema: { summary: 'one node pool', tags: ['policies'], params: IdParams, response: { 200: NodePool, ...errors(400, 401, 404, 503) } } },
    async (req) => out(await find(req.params.id)),
  );

  app.post(
    '/pools',
    {
      schemaErrorFormatter: namingFormatter,
      schema: {
        summary: 'define a node pool',
        tags: ['policies'],
        body: Type.Object({ name: Type.String({ pattern: POOL_NAME }), nodes: Nodes }, { additionalProperties: false }),
        response: { 201: NodePool, ...errors(400, 401, 409, 503) },
      },
    },
    async (req, reply) => {
      if (await prisma.nodePool.findUnique({ where: { name: req.body.name } })) throw conflict(`pool "${req.body.name}" exists already`);
      return reply.code(201).send(out(await prisma.nodePool.create({ data: req.body })));
    },
  );

  app.patch(
    '/pools/:id',
    {
      schemaErrorFormatter: namingFormatter,
      schema: {
        summary: "replace a pool's nodes",
        tags: ['policies'],
        params: IdParams,
        body: Type.Object({ nodes: Nodes }, { additionalProperties: false }),
        response: { 200: NodePool, ...errors(400, 401, 404, 503) },
      },
    },
    async (req) => {
      await find(req.params.id);
      return out(await prisma.nodePool.update({ where: { id: req.params.id }, data: { nodes: req.body.nodes } }));
    },
  );

  app.delete(
    '/pools/:id',
    { schema: { summary: 'delete a pool no policy uses', tags: ['policies'], params: IdParams, response: { 204: Type.Null(), ...errors(400, 401, 404, 409, 503) } } },
    async (req, reply) => {
      const pool = await find(req.params.id);
      const users = (await prisma.migrationPolicy.findMany({ select: { name: true, params: true } })).filter((p) =>
        ((p.params as { pools?: string[] }).pools ?? []).includes(pool.name),
      );
      if (users.length) throw conflict(`pool "${pool.name}" is used by polic${users.length === 1 ? 'y' : 'ies'} ${users.map((u) => u.name).join(', ')}`);
      await prisma.nodePool.delete({ where: { id: pool.id } });
      return reply.code(204).send(null);
    },
  );
};
