// GET /nodes: the control-plane host and the lab's nodes, each with its
// dicomd's own status asked through libdicom (ffi-rs) off the event loop — a
// lab node's through a `netns:` daemon name, which libdicom reaches from a
// thread inside that namespace — and the nodes registered in the job
// database (by detection over ssh, for example).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DEFAULT_SOCKET } from '../../daemon/daemon.js';
import { type GossipView, inNetns, queryStatusAsync, queryViewAsync } from '../../dicom/libdicom.js';
import { labStatus } from '../../lab/status.js';
import type { ApiDeps } from '../app.js';
import { DateTime, Nullable, StringEnum, errors } from '../schemas.js';

const NodeView = Type.Object({
  name: Type.String(),
  source: StringEnum(['local', 'lab', 'registered'] as const),
  address: Nullable(Type.String()),
  healthy: Nullable(Type.Boolean({ description: 'dicomd answered (and, for a lab node, its namespace and sshd are up)' })),
  dicomd: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: "the daemon's status reply (libdicom dicom_query_status)" })),
  dicomdError: Nullable(Type.String()),
  sshd: Nullable(Type.Boolean({ description: 'lab nodes: sshd alive and listening' })),
  registered: Type.Boolean({ description: 'the job database knows this node (e.g. a target was detected on it)' }),
  lastSeen: Nullable(DateTime),
  gossip: Nullable(Type.Unknown()),
});

export const nodeRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db }) => {
  app.get(
    '/nodes',
    {
      schema: {
        summary: "nodes: this host and the lab's nodes with their dicomd status (through libdicom), and registered nodes",
        tags: ['nodes'],
        response: { 200: Type.Array(NodeView), ...errors(401, 503) },
      },
    },
    async () => {
      const registered = await db.prisma.node.findMany({ orderBy: { id: 'asc' } });
      const lab = await labStatus().catch(() => null);
      const labNodes = lab?.up ? lab.nodes : [];
      const inLab = labNodes.filter((n) => n.nsPresent);
      type Answer = { status: Record<string, unknown>; error: null } | { status: null; error: string };
      const ask = (daemon: string): Promise<Answer> =>
        queryStatusAsync(daemon).then(
          (status) => ({ status, error: null }),
          (e: Error) => ({ status: null, error: e.message }),
        );
      const [local, ...answers] = await Promise.all([ask(DEFAULT_SOCKET), ...inLab.map((n) => ask(inNetns(n.ns, DEFAULT_SOCKET)))]);
      const reg = (name: string) => registered.find((r) => r.name === name);
      // The gossip view (dicomd's load vectors, MOSIX infod style): a lab node's entry as the
      // cluster sees it, from the first lab dicomd that answers; this host's from its own dicomd.
      const view = async (daemon: string) => queryViewAsync(daemon).catch(() => null);
      let labView: GossipView | null = null;
      for (const n of inLab) if ((labView = await view(inNetns(n.ns, DEFAULT_SOCKET)))) break;
      const localView = await view(DEFAULT_SOCKET);
      const entryOf = (v: GossipView | null, node: string) => v?.entries.find((e) => e.node === node) ?? null;
      return [
        { name: 'local', source: 'local' as const, address: '127.0.0.1', healthy: local!.status !== null, dicomd: local!.status, dicomdError: local!.error, sshd: null, registered: false, lastSeen: new Date().toISOString(), gossip: localView?.entries.find((e) => e.self) ?? null },
        ...labNodes.map((n) => {
          const a = answers[inLab.indexOf(n)] ?? { status: null, error: `namespace ${n.ns} is gone` };
          const r = reg(n.name);
          return {
            name: n.name,
            source: 'lab' as const,
            address: n.addr,
            healthy: n.healthy && a.status !== null,
            dicomd: a.status,
            dicomdError: a.error,
            sshd: n.sshdAlive && n.sshdListening,
            registered: r !== undefined,
            lastSeen: r?.lastSeen?.toISOString() ?? null,
            gossip: entryOf(labView, n.addr) ?? r?.gossip ?? null,
          };
        }),
        ...registered
          .filter((r) => !labNodes.some((n) => n.name === r.name))
          .map((n) => ({ name: n.name, source: 'registered' as const, address: n.address, healthy: null, dicomd: null, dicomdError: null, sshd: null, registered: true, lastSeen: n.lastSeen?.toISOString() ?? null, gossip: n.gossip })),
      ];
    },
  );
};
