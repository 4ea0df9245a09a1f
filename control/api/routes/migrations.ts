// /migrations: move a live rank of a running lab job to another node (DESIGN.md §4). The request
// returns when the migration is over, with its phase timings and outcome, also kept in the database.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MigrationError } from '../../migration/migrate.js';
import { orderMigration } from '../../migration/service.js';
import type { ApiDeps } from '../app.js';
import { ApiError, notFound } from '../errors.js';
import { DateTime, IdParams, Nullable, Paging, StringEnum, errors } from '../schemas.js';

const Phases = Type.Object(
  {
    detach: Type.Optional(Type.Number()),
    dump: Type.Optional(Type.Number()),
    transfer: Type.Optional(Type.Number()),
    restore: Type.Optional(Type.Number()),
    reattach: Type.Optional(Type.Number()),
    first_message: Type.Optional(Type.Number({ description: 'ms from the reattach to the first message received' })),
  },
  { description: 'milliseconds per phase that ran' },
);

export const Migration = Type.Object(
  {
    id: Type.Integer(),
    jobId: Nullable(Type.Integer()),
    jobLabel: Nullable(Type.String()),
    rank: Nullable(Type.Integer()),
    homeNode: Type.String(),
    homePid: Type.Integer(),
    fromNode: Type.String(),
    toNode: Type.String(),
    phases: Phases,
    downtimeMs: Nullable(Type.Number()),
    imageBytes: Nullable(Type.Integer()),
    outcome: Nullable(StringEnum(['running', 'succeeded', 'rolled-back', 'failed'] as const)),
    failedAt: Nullable(Type.String()),
    error: Nullable(Type.String()),
    createdAt: DateTime,
  },
  { $id: 'Migration' },
);

interface Row {
  imageBytes: bigint | null;
  [k: string]: unknown;
}
const out = <T extends Row>(r: T) => ({ ...r, imageBytes: r.imageBytes === null ? null : Number(r.imageBytes) });

export const migrationRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db }) => {
  const { prisma } = db;

  app.get(
    '/migrations',
    { schema: { summary: 'migrations, newest first', tags: ['migrations'], querystring: Paging, response: { 200: Type.Array(Type.Ref('Migration')), ...errors(400, 401, 503) } } },
    async (req) => (await prisma.migration.findMany({ orderBy: { id: 'desc' }, take: req.query.limit, skip: req.query.offset })).map(out),
  );

  app.get(
    '/migrations/:id',
    { schema: { summary: 'one migration with its phase timings', tags: ['migrations'], params: IdParams, response: { 200: Type.Ref('Migration'), ...errors(400, 401, 404, 503) } } },
    async (req) => {
      const r = await prisma.migration.findUnique({ where: { id: req.params.id } });
      if (!r) throw notFound('migration', req.params.id);
      return out(r);
    },
  );

  app.post(
    '/migrations',
    {
      schema: {
        summary: 'migrate a live rank of a running job to another lab node',
        tags: ['migrations'],
        body: Type.Object(
          {
            job: Type.Union([Type.Integer({ minimum: 1, maximum: 2147483647 }), Type.String({ pattern: '^[A-Za-z0-9_.:@-]{1,128}$' })], {
              description: 'MPI job id, or the label its ranks carry (DICOM_JOB or the PMIx namespace)',
            }),
            rank: Type.Integer({ minimum: 0, maximum: 65535 }),
            toNode: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'lab node name (n2) or address' }),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Ref('Migration'), ...errors(400, 401, 404, 409, 503) },
      },
    },
    async (req, reply) => {
      try {
        const { id } = await orderMigration(prisma, req.body);
        const r = await prisma.migration.findUniqueOrThrow({ where: { id: id! } });
        return reply.code(201).send(out(r));
      } catch (e) {
        if (e instanceof MigrationError) throw new ApiError(e.status, e.message);
        throw e;
      }
    },
  );
};
