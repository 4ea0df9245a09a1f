// GET /healthz: liveness plus whether the job database answers (no auth).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ApiDeps } from '../app.js';

export const healthRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db }) => {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        summary: 'liveness and database reachability',
        tags: ['health'],
        security: [],
        response: {
          200: Type.Object({ status: Type.Literal('ok'), database: Type.Literal('up'), embedded: Type.Boolean() }),
          503: Type.Object({ status: Type.Literal('degraded'), database: Type.Literal('down'), embedded: Type.Boolean(), message: Type.String() }),
        },
      },
    },
    async (_req, reply) => {
      try {
        await db.pool.query("SELECT 1");
        return { status: 'ok' as const, database: 'up' as const, embedded: Boolean(db.embedded) };
      } catch (e) {
        return reply.code(503).send({ status: 'degraded' as const, database: 'down' as const, embedded: Boolean(db.embedded), message: (e as Error).message.split('\n')[0] ?? '' });
      }
    },
  );
};
