// How every failure becomes an HTTP answer: user mistakes are 4xx with a
// message, an unreachable database is 503, and only our own bugs are 500.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { NodeError } from '../jobs/nodes.js';

export class ApiError extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}
export const notFound = (what: string, id: number | string) => new ApiError(404, `${what} ${id} not found`);
export const conflict = (msg: string) => new ApiError(409, msg);
export const badRequest = (msg: string) => new ApiError(400, msg);

const CONN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006']);
const PRISMA_CONN = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);

/** True when `e` (or its cause chain) says the database cannot be reached. */
export function isDbUnavailable(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 6; depth++) {
    const o = cur as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown; kind?: unknown; originalCode?: unknown };
    if (typeof o.code === 'string' && (CONN_CODES.has(o.code) || PRISMA_CONN.has(o.code))) return true;
    if (typeof o.originalCode === 'string' && CONN_CODES.has(o.originalCode)) return true;
    if (o.name === 'PrismaClientInitializationError') return true;
    if (o.kind === 'DatabaseNotReachable' || o.kind === 'ConnectionClosed' || o.kind === 'SocketTimeout') return true;
    const msg = typeof o.message === 'string' ? o.message : '';
    if (/ECONNREFUSED|Connection terminated|connection timeout|Can't reach database|terminating connection|the database system is (starting up|shutting down)|Query read timeout|Timed out fetching a new connection|DatabaseNotReachable|ConnectionClosed/i.test(msg)) return true;
    cur = o.cause;
  }
  return false;
}

export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // NodeError: a node name that does not exist (400) or a lab that is down or unreachable (409)
  if (error instanceof ApiError || error instanceof NodeError) {
    const sc = error instanceof NodeError ? error.status : error.statusCode;
    void reply.code(sc).send({ statusCode: sc, error: statusText(sc), message: error.message });
    return;
  }
  if (error.validation) {
    void reply.code(400).send({ statusCode: 400, error: 'Bad Request', code: error.code, message: error.message });
    return;
  }
  if (isDbUnavailable(error)) {
    request.log.warn({ err: error.message }, 'database unavailable');
    void reply.code(503).header('retry-after', '2').send({ statusCode: 503, error: 'Service Unavailable', message: 'the job database is unreachable; retry shortly' });
    return;
  }
  const sc = error.statusCode;
  if (sc && sc >= 400 && sc < 500) {
    void reply.code(sc).send({ statusCode: sc, error: statusText(sc), code: error.code, message: error.message });
    return;
  }
  request.log.error({ err: error }, 'internal error');
  void reply.code(500).send({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the server log' });
}

function statusText(sc: number): string {
  return (
    { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 503: 'Service Unavailable' }[sc] ??
    'Error'
  );
}
