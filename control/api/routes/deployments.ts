// /deployments: install a succeeded build's artifact on nodes and verify it
// there with ompi_info; a node that fails verification is rolled back.
// Nodes are "local" or lab nodes (n1..nK), which are reached over ssh.
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ApiDeps } from '../app.js';
import { badRequest, conflict, notFound } from '../errors.js';
import { SAFE_PATH, resolveNodes } from '../../jobs/nodes.js';
import { DateTime, IdParams, Nullable, Paging, errors } from '../schemas.js';

const DStatus = Type.Union(['pending', 'running', 'succeeded', 'failed', 'rolled_back'].map((s) => Type.Literal(s)));

export const Deployment = Type.Object(
  {
    id: Type.Integer(),
    buildId: Type.Integer(),
    targetId: Type.Integer(),
    status: DStatus,
    dest: Type.String(),
    error: Nullable(Type.String()),
    createdAt: DateTime,
    finishedAt: Nullable(DateTime),
    nodes: Type.Array(
      Type.Object({ nodeName: Type.String(), status: DStatus, error: Nullable(Type.String()), log: Type.String(), finishedAt: Nullable(DateTime) }),
    ),
  },
  { $id: 'Deployment' },
);

const include = { nodes: { orderBy: { id: 'asc' as const } } };

export const deploymentRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db, queue }) => {
  const { prisma } = db;

  app.get(
    '/deployments',
    { schema: { summary: 'list deployments, newest first', tags: ['deployments'], querystring: Paging, response: { 200: Type.Array(Type.Ref('Deployment')), ...errors(400, 401, 503) } } },
    async (req) => prisma.deployment.findMany({ include, orderBy: { id: 'desc' }, take: req.query.limit, skip: req.query.offset }),
  );

  app.get(
    '/deployments/:id',
    { schema: { summary: 'one deployment with its per-node status', tags: ['deployments'], params: IdParams, response: { 200: Type.Ref('Deployment'), ...errors(400, 401, 404, 503) } } },
    async (req) => (await prisma.deployment.findUnique({ where: { id: req.params.id }, include })) ?? Promise.reject(notFound('deployment', req.params.id)),
  );

  app.post(
    '/deployments',
    {
      schema: {
        summary: "install a build's artifact on nodes and verify it with ompi_info",
        tags: ['deployments'],
        body: Type.Object(
          {
            buildId: Type.Integer({ minimum: 1, maximum: 2147483647 }),
            dest: Type.String({ minLength: 2, maxLength: 1024, pattern: '^/', description: 'absolute install directory on each node' }),
            nodes: Type.Optional(
              Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 64, uniqueItems: true, default: ['local'], description: '"local" and/or lab nodes ("n1", "n2", ...), reached over ssh' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 202: Type.Ref('Deployment'), ...errors(400, 401, 404, 409, 413, 503) },
      },
    },
    async (req, reply) => {
      if (!queue) throw badRequest('this server runs without a job queue');
      const { buildId } = req.body;
      const nodes = req.body.nodes ?? ['local'];
      const dest = path.normalize(req.body.dest);
      if (req.body.dest.split('/').includes('..')) throw badRequest('dest must not contain ".." segments');
      const { remote } = await resolveNodes(nodes);
      if (remote.length && !SAFE_PATH.test(dest)) throw badRequest(`dest ${JSON.stringify(dest)}: a path for ssh nodes may hold only letters, digits and . _ + - /`);
      const d = await prisma.$transaction(async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(7002, hashtext(${dest}))`;
        const build = await tx.build.findUnique({ where: { id: buildId }, select: { id: true, status: true, targetId: true, target: { select: { sysroot: true } } } });
        if (!build) throw notFound('build', buildId);
        if (build.status !== 'succeeded') throw conflict(`build ${buildId} is ${build.status}; only a succeeded build can be deployed`);
        if (remote.length && build.target.sysroot !== '/') {
          throw badRequest(`build ${buildId} is for the Open MPI in ${build.target.sysroot}; lab nodes run the host's Open MPI, so deploy it to "local" only`);
        }
        const busy = await tx.deployment.findFirst({ where: { dest, status: { in: ['pending', 'running'] } }, select: { id: true } });
        if (busy) throw conflict(`deployment ${busy.id} into ${dest} is still in progress`);
        return tx.deployment.create({
          data: { buildId, targetId: build.targetId, dest, nodes: { create: nodes.map((nodeName) => ({ nodeName })) } },
          include,
        });
      });
      await queue.enqueueDeployment(d.id);
      return reply.code(202).header('location', `/deployments/${d.id}`).send(d);
    },
  );
};
