// GET /nodes: the control-plane host (its dicomd asked through libdicom via
// ffi-rs), the lab's nodes (read from the lab state, never entered), and the
// nodes registered in the job database.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { queryStatus } from '../../dicom/libdicom.js';
import { labStatus } from '../../lab/status.js';
import type { ApiDeps } from '../app.js';
import { DateTime, Nullable, errors } from '../schemas.js';

const NodeView = Type.Object({
  name: Type.String(),
  source: Type.Union([Type.Literal('local'), Type.Literal('lab'), Type.Literal('registered')]),
  address: Nullable(Type.String()),
  healthy: Nullable(Type.Boolean()),
  dicomd: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: "the daemon's status reply (libdicom dicom_query_status)" })),
  dicomdError: Nullable(Type.String()),
  lastSeen: Nullable(DateTime),
  gossip: Nullable(Type.Unknown()),
});

export const nodeRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db }) => {
  app.get(
    '/nodes',
    {
      schema: {
        summary: 'nodes: this host with its dicomd status, lab nodes, registered nodes',
        tags: ['nodes'],
        response: { 200: Type.Array(NodeView), ...errors(401, 503) },
      },
    },
    async () => {
      let dicomd: Record<string, unknown> | null = null;
      let dicomdError: string | null = null;
      try {
        dicomd = queryStatus('dicomd');
      } catch (e) {
        dicomdError = (e as Error).message;
      }
      const local = { name: 'local', source: 'local' as const, address: '127.0.0.1', healthy: dicomd !== null, dicomd, dicomdError, lastSeen: new Date().toISOString(), gossip: null };
      const lab = await labStatus().catch(() => null);
      const labNodes = (lab?.nodes ?? []).map((n) => ({
        name: n.name,
        source: 'lab' as const,
        address: n.addr,
        healthy: n.healthy,
        dicomd: n.dicomdPid ? { pid: n.dicomdPid, alive: n.dicomdAlive, listening: n.dicomdListening } : null,
        dicomdError: null,
        lastSeen: null,
        gossip: null,
      }));
      const registered = (await db.prisma.node.findMany({ orderBy: { id: 'asc' } })).map((n) => ({
        name: n.name,
        source: 'registered' as const,
        address: n.address,
        healthy: null,
        dicomd: null,
        dicomdError: null,
        lastSeen: n.lastSeen?.toISOString() ?? null,
        gossip: n.gossip,
      }));
      return [local, ...labNodes, ...registered];
    },
  );
};
