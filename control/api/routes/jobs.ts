// /jobs: MPI jobs launched through the API over self,dicom, with their stdout
// and exit status: on this host ("local"), or across lab nodes, where mpirun
// starts in n1 and reaches the others over ssh. Programs are absolute paths or
// names in build/mpi.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { buildDir } from '../../paths.js';
import type { ApiDeps } from '../app.js';
import { DEFAULT_SOCKET } from '../../daemon/daemon.js';
import { LOCAL, resolveNodes } from '../../jobs/nodes.js';
import { badRequest, notFound } from '../errors.js';
import { DateTime, IdParams, Nullable, Paging, errors } from '../schemas.js';

const programsDir = path.join(buildDir, 'mpi');
const MCA_NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** What a job sets itself: a job runs over self,dicom with its own component and daemon. */
const JOB_OWN_MCA = new Map([
  ['pml', 'ob1'],
  ['btl', 'self,dicom'],
  ['btl_dicom_daemon', 'use "daemon"'],
  ['mca_base_component_path', 'use "componentDir"'],
]);
const JStatus = Type.Union(['queued', 'running', 'succeeded', 'failed'].map((s) => Type.Literal(s)));

export const MpiJob = Type.Object(
  {
    id: Type.Integer(),
    nodes: Type.Array(Type.String()),
    np: Type.Integer(),
    program: Type.String(),
    args: Type.Array(Type.String()),
    status: JStatus,
    componentDir: Nullable(Type.String()),
    daemon: Type.String(),
    timeoutSeconds: Type.Integer(),
    mca: Type.Record(Type.String(), Type.String()),
    exitCode: Nullable(Type.Integer()),
    stdout: Type.String(),
    stderr: Type.String(),
    error: Nullable(Type.String()),
    createdAt: DateTime,
    startedAt: Nullable(DateTime),
    finishedAt: Nullable(DateTime),
  },
  { $id: 'MpiJob' },
);

const ok = (p: string, mode: number) => access(p, mode).then(() => true, () => false);

export const jobRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db, queue }) => {
  const { prisma } = db;

  app.get(
    '/jobs',
    { schema: { summary: 'list MPI jobs, newest first', tags: ['jobs'], querystring: Paging, response: { 200: Type.Array(Type.Ref('MpiJob')), ...errors(400, 401, 503) } } },
    async (req) => prisma.mpiJob.findMany({ orderBy: { id: 'desc' }, take: req.query.limit, skip: req.query.offset }),
  );

  app.get(
    '/jobs/:id',
    { schema: { summary: 'one MPI job with its output and exit status', tags: ['jobs'], params: IdParams, response: { 200: Type.Ref('MpiJob'), ...errors(400, 401, 404, 503) } } },
    async (req) => (await prisma.mpiJob.findUnique({ where: { id: req.params.id } })) ?? Promise.reject(notFound('job', req.params.id)),
  );

  app.post(
    '/jobs',
    {
      schema: {
        summary: 'launch an MPI job over dicom',
        tags: ['jobs'],
        body: Type.Object(
          {
            program: Type.String({ minLength: 1, maxLength: 1024, description: 'absolute path, or a name in build/mpi' }),
            args: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 64 })),
            np: Type.Integer({ minimum: 1, maximum: 16 }),
            nodes: Type.Optional(
              Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 64, uniqueItems: true, description: '["local"] (default) or lab nodes ["n1", "n2", ...]; ranks are spread by node' }),
            ),
            componentDir: Type.Optional(Type.String({ minLength: 2, maxLength: 1024, pattern: '^/', description: "a deployment's dest" })),
            daemon: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'dicomd abstract socket name' })),
            timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
            mca: Type.Optional(
              Type.Record(Type.String(), Type.String({ minLength: 1, maxLength: 256 }), {
                maxProperties: 32,
                description: 'more MCA parameters for mpirun, e.g. {"mpi_yield_when_idle": "1"}; pml, btl, btl_dicom_daemon and mca_base_component_path are set by the job',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 202: Type.Ref('MpiJob'), ...errors(400, 401, 409, 413, 503) },
      },
    },
    async (req, reply) => {
      if (!queue) throw badRequest('this server runs without a job queue');
      const b = req.body;
      const nodes = b.nodes ?? [LOCAL];
      const where = await resolveNodes(nodes);
      if (where.remote.length) {
        if (where.local) throw badRequest('a job runs either on "local" or on lab nodes, not both');
        if (b.daemon !== undefined && b.daemon !== DEFAULT_SOCKET) throw badRequest(`lab nodes run their dicomd on @${DEFAULT_SOCKET}; leave "daemon" out`);
      }
      let program = b.program;
      if (!program.includes('/')) {
        if (!/^[A-Za-z0-9_.-]+$/.test(program) || program.startsWith('.')) throw badRequest(`program "${program}" is not a valid name`);
        program = path.join(programsDir, program);
      } else if (!path.isAbsolute(program)) throw badRequest('program must be an absolute path or a bare name in build/mpi');
      if (!(await ok(program, constants.X_OK))) throw badRequest(`program ${program} does not exist or is not executable`);
      const mca = b.mca ?? {};
      for (const [k, v] of Object.entries(mca)) {
        if (!MCA_NAME.test(k)) throw badRequest(`mca: "${k}" is not an MCA parameter name (lowercase letters, digits and _)`);
        if (JOB_OWN_MCA.has(k)) throw badRequest(`mca: ${k} is set by the job itself (${JOB_OWN_MCA.get(k)})`);
        if (!/^[\x21-\x7e]+$/.test(v)) throw badRequest(`mca: the value of ${k} must be printable ASCII without spaces`);
      }
      if (b.componentDir && !(await ok(path.join(b.componentDir, 'mca_btl_dicom.so'), constants.R_OK))) {
        throw badRequest(`componentDir ${b.componentDir} holds no mca_btl_dicom.so; deploy a build there first`);
      }
      const job = await prisma.mpiJob.create({
        data: { program, args: b.args ?? [], np: b.np, nodes, componentDir: b.componentDir ?? null, daemon: b.daemon ?? 'dicomd', timeoutSeconds: b.timeoutSeconds ?? 300, mca },
      });
      await queue.enqueueMpiJob(job.id);
      return reply.code(202).header('location', `/jobs/${job.id}`).send(job);
    },
  );
};
