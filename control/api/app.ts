// The REST API (DESIGN.md §8): Fastify 5, TypeBox-validated routes, OpenAPI
// 3.1 at /docs, bearer-token auth on everything but /healthz and /docs.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Db } from '../db/index.js';
import type { JobQueue } from '../jobs/queue.js';
import { TokenVerifier } from './auth.js';
import { errorHandler } from './errors.js';
import { buildRoutes, Build } from './routes/builds.js';
import { Deployment, deploymentRoutes } from './routes/deployments.js';
import { healthRoutes } from './routes/health.js';
import { nodeRoutes } from './routes/nodes.js';
import { jobRoutes, MpiJob } from './routes/jobs.js';
import { matrixRoutes } from './routes/matrix.js';
import { Migration, migrationRoutes } from './routes/migrations.js';
import { policyRoutes } from './routes/policies.js';
import { poolRoutes } from './routes/pools.js';
import { HttpCounters, metricsRoutes } from './routes/metrics.js';
import { Target, targetRoutes } from './routes/targets.js';
import { ErrorBody } from './schemas.js';

export interface ApiDeps {
  db: Db;
  /** absent: the API serves reads but cannot queue builds */
  queue?: JobQueue;
  counters: HttpCounters;
}

export interface AppOptions {
  db: Db;
  queue?: JobQueue;
  logger?: FastifyServerOptions['logger'];
  /** request body limit in bytes (default 64 KiB); larger bodies get 413 */
  bodyLimit?: number;
  /** skip auth (never in production; the tests of auth itself keep it on) */
  noAuth?: boolean;
}

export const API_VERSION = '0.1.0';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
function newAjv(o: { coerceTypes: boolean | 'array' }): Ajv {
  const ajv = new Ajv({ ...o, removeAdditional: false, useDefaults: true, allErrors: false, strict: false });
  addFormats(ajv);
  return ajv;
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 64 * 1024,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Bodies are validated strictly (415 is not "415"); querystrings and path
  // params are text on the wire, so they are coerced to the schema's types.
  const strict = newAjv({ coerceTypes: false });
  const coercing = newAjv({ coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema));

  const counters = new HttpCounters();
  const verifier = new TokenVerifier(opts.db.prisma);

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });
  app.addSchema(ErrorBody);
  app.addSchema(Target);
  app.addSchema(Build);
  app.addSchema(Deployment);
  app.addSchema(MpiJob);
  // Added here, not in the plugin: a schema added inside a plugin gives it a schema controller
  // without the strict body validator above.
  app.addSchema(Migration);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'DiCOM for Open MPI control plane', version: API_VERSION, description: 'Targets, builds of btl_dicom, and the job database.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.addHook('onRequest', async (req) => {
    const url = req.url;
    if (opts.noAuth || url === '/healthz' || url === '/docs' || url.startsWith('/docs/') || url.startsWith('/docs?')) return;
    await verifier.verify(req.headers.authorization);
  });
  app.addHook('onResponse', async (req, reply) => {
    counters.add(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  const deps: ApiDeps = { db: opts.db, queue: opts.queue, counters };
  await app.register(healthRoutes, deps);
  await app.register(metricsRoutes, deps);
  await app.register(targetRoutes, deps);
  await app.register(buildRoutes, deps);
  await app.register(deploymentRoutes, deps);
  await app.register(nodeRoutes, deps);
  await app.register(jobRoutes, deps);
  await app.register(matrixRoutes, deps);
  await app.register(migrationRoutes, deps);
  await app.register(policyRoutes, deps);
  await app.register(poolRoutes, deps);
  return app;
}
