// /matrix-runs: the CI matrix (ci/matrix.json) run as jobs. POST queues a
// run's cells, GET returns the grid, .../page shows it as a colour-coded
// table linking every cell's log. The cells' worker (control/jobs/matrix-job)
// runs inside this plugin's server when it has a job queue.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type MatrixWorker, startMatrixWorker } from '../../jobs/matrix-job.js';
import { loadMatrix, MatrixError, type MatrixDefinition } from '../../matrix/definition.js';
import { countStatuses, type RunRow, toGrid } from '../../matrix/grid.js';
import { renderPage } from '../../matrix/page.js';
import { createRun } from '../../matrix/store.js';
import type { ApiDeps } from '../app.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import { DateTime, IdParams, Nullable, Paging, StringEnum, errors } from '../schemas.js';

const Status = StringEnum(['queued', 'running', 'succeeded', 'failed'] as const);
const Counts = Type.Object({ queued: Type.Integer(), running: Type.Integer(), succeeded: Type.Integer(), failed: Type.Integer(), total: Type.Integer() });
const Selection = Type.Record(Type.String(), Type.Array(Type.String()));
const Cell = Type.Object({
  id: Type.Integer(),
  runId: Type.Integer(),
  testSet: Type.String(),
  kernelVersion: Type.String({ description: '"-" when the test set does not vary over kernels' }),
  ompiVersion: Type.String({ description: '"-" when the test set does not vary over Open MPI' }),
  command: Type.Array(Type.String()),
  status: Status,
  exitCode: Nullable(Type.Integer()),
  passed: Nullable(Type.Integer()),
  failed: Nullable(Type.Integer()),
  skipped: Nullable(Type.Integer()),
  error: Nullable(Type.String()),
  durationMs: Nullable(Type.Integer()),
  startedAt: Nullable(DateTime),
  finishedAt: Nullable(DateTime),
  logUrl: Type.String(),
});
const RunFields = {
  id: Type.Integer(),
  name: Type.String(),
  status: Status,
  selection: Selection,
  createdAt: DateTime,
  startedAt: Nullable(DateTime),
  finishedAt: Nullable(DateTime),
  counts: Counts,
};
const Grid = Type.Object({
  ...RunFields,
  columns: Type.Array(Type.Object({ value: Type.String(), label: Type.String() })),
  rows: Type.Array(
    Type.Object({ testSet: Type.String(), title: Type.String(), kernelVersion: Type.String(), kernelLabel: Type.String(), cells: Type.Array(Cell) }),
  ),
});
const RunSummary = Type.Object(RunFields);
const AxisValues = (what: string) => Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9.-]{1,32}$' }), { maxItems: 32, uniqueItems: true, description: what }));
const CellParams = Type.Object({ id: IdParams.properties.id, cellId: IdParams.properties.id });

async function definition(): Promise<MatrixDefinition> {
  try {
    return await loadMatrix();
  } catch (e) {
    if (e instanceof MatrixError) throw new ApiError(500, `the matrix definition is broken: ${e.message}`);
    throw e;
  }
}

export const matrixRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db, queue }) => {
  const { prisma } = db;
  let worker: MatrixWorker | undefined;
  if (queue) {
    worker = await startMatrixWorker(prisma, queue.boss, { log: (m) => app.log.info(m) });
    app.addHook('onClose', async () => worker?.stop());
  }

  const loadRun = async (id: number): Promise<RunRow> =>
    (await prisma.matrixRun.findUnique({ where: { id }, include: { cells: { orderBy: { id: 'asc' }, omit: { log: true } } } })) ??
    Promise.reject(notFound('matrix run', id));

  app.post(
    '/matrix-runs',
    {
      schema: {
        summary: 'run the CI matrix (or a subset) as jobs, one cell at a time',
        tags: ['matrix'],
        body: Type.Object(
          {
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            sets: AxisValues('test sets of ci/matrix.json (default: all)'),
            kernel: AxisValues('kernel versions (default: all); cells that do not vary over kernels are left out when given'),
            ompi: AxisValues('Open MPI versions, e.g. 4.1, 5.0 (default: all); cells that do not vary over Open MPI are left out when given'),
          },
          { additionalProperties: false },
        ),
        response: { 202: Grid, ...errors(400, 401, 413, 500, 503) },
      },
    },
    async (req, reply) => {
      if (!queue || !worker) throw badRequest('this server runs without a job queue');
      const def = await definition();
      const { name, ...sel } = req.body;
      let run;
      try {
        run = await createRun(prisma, def, sel, name);
      } catch (e) {
        if (e instanceof MatrixError) throw badRequest(e.message);
        throw e;
      }
      await worker.enqueue(run.cells.map((c) => c.id));
      return reply.code(202).header('location', `/matrix-runs/${run.id}`).send(toGrid(run, def));
    },
  );

  app.get(
    '/matrix-runs',
    { schema: { summary: 'matrix runs, newest first, with cell counts', tags: ['matrix'], querystring: Paging, response: { 200: Type.Array(RunSummary), ...errors(400, 401, 503) } } },
    async (req) => {
      const runs = await prisma.matrixRun.findMany({ orderBy: { id: 'desc' }, take: req.query.limit, skip: req.query.offset, include: { cells: { select: { status: true } } } });
      return runs.map(({ cells, ...r }) => ({
        ...r,
        selection: r.selection as Record<string, string[]>,
        createdAt: r.createdAt.toISOString(),
        startedAt: r.startedAt?.toISOString() ?? null,
        finishedAt: r.finishedAt?.toISOString() ?? null,
        counts: countStatuses(cells),
      }));
    },
  );

  app.get(
    '/matrix-runs/:id',
    { schema: { summary: 'one matrix run as a grid of cells', tags: ['matrix'], params: IdParams, response: { 200: Grid, ...errors(400, 401, 404, 500, 503) } } },
    async (req) => toGrid(await loadRun(req.params.id), await definition()),
  );

  app.get(
    '/matrix-runs/:id/page',
    {
      schema: {
        summary: 'the grid as an HTML table, colour-coded, linking each cell log',
        tags: ['matrix'],
        params: IdParams,
        produces: ['text/html'],
        response: { 200: Type.String(), ...errors(400, 401, 404, 500, 503) },
      },
    },
    async (req, reply) => reply.type('text/html; charset=utf-8').send(renderPage(toGrid(await loadRun(req.params.id), await definition()))),
  );

  app.get(
    '/matrix-runs/:id/cells/:cellId/log',
    {
      schema: {
        summary: "one cell's output (its command, then stdout and stderr as they came)",
        tags: ['matrix'],
        params: CellParams,
        produces: ['text/plain'],
        response: { 200: Type.String(), ...errors(400, 401, 404, 503) },
      },
    },
    async (req, reply) => {
      const cell = await prisma.matrixCell.findUnique({ where: { id: req.params.cellId }, select: { runId: true, log: true } });
      if (!cell || cell.runId !== req.params.id) throw notFound(`cell ${req.params.cellId} of matrix run`, req.params.id);
      return reply.type('text/plain; charset=utf-8').send(cell.log);
    },
  );
};
