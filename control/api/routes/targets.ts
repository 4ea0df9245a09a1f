// /targets: Open MPI installs (and kernel versions) the generator builds for.
// POST {detect:"local"} reads the facts from the local ompi_info/mpicc;
// POST {detect:"ssh", node:"n2"} runs the same tools on a lab node over ssh
// (and reads its btl.h there); POST with explicit fields registers a target
// as given.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DetectError, type DetectOptions, detectOmpi } from '../../generator/detect.js';
import type { ApiDeps } from '../app.js';
import { ApiError, badRequest, conflict, notFound } from '../errors.js';
import { resolveNodes, SAFE_PATH, type SshNode, shq, sshRun, describeFailure } from '../../jobs/nodes.js';
import { DateTime, IdParams, Nullable, Paging, StringEnum, errors } from '../schemas.js';

const Str = (max = 4096) => Type.String({ minLength: 1, maxLength: max });

export const Target = Type.Object(
  {
    id: Type.Integer(),
    kind: Type.Union([Type.Literal('ompi'), Type.Literal('kernel')]),
    version: Type.String(),
    btlApi: Nullable(Type.String()),
    prefix: Nullable(Type.String()),
    pkglibdir: Nullable(Type.String()),
    incdirs: Type.Array(Type.String()),
    libdirs: Type.Array(Type.String()),
    bindir: Type.String(),
    sysroot: Type.String(),
    nodeId: Nullable(Type.Integer()),
    node: Nullable(Type.Object({ name: Type.String(), address: Type.String() }, { description: 'where the installation lives; null = the control-plane host' })),
    createdAt: DateTime,
  },
  { $id: 'Target' },
);

const CreateTarget = Type.Object(
  {
    detect: Type.Optional(StringEnum(['local', 'ssh'] as const, { description: 'run ompi_info and mpicc on the control-plane host, or on `node` over ssh' })),
    node: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'with detect:"ssh": a lab node ("n1", "n2", ...)' })),
    prefix: Type.Optional(Str(1024)),
    kind: Type.Optional(Type.Union([Type.Literal('ompi'), Type.Literal('kernel')])),
    version: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Za-z][0-9A-Za-z._+~-]*$' })),
    btlApi: Type.Optional(Type.Union([Type.Literal('3.1'), Type.Literal('3.3')])),
    pkglibdir: Type.Optional(Str(1024)),
    incdirs: Type.Optional(Type.Array(Str(1024), { maxItems: 64 })),
    libdirs: Type.Optional(Type.Array(Str(1024), { maxItems: 64 })),
    bindir: Type.Optional(Type.String({ maxLength: 1024 })),
    sysroot: Type.Optional(Str(1024)),
  },
  { additionalProperties: false, description: 'either {detect:"local", prefix?}, {detect:"ssh", node, prefix?} or explicit fields (kind, version, ...)' },
);

const include = { node: { select: { name: true, address: true } } } as const;

export const targetRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, { db }) => {
  const { prisma } = db;

  app.get(
    '/targets',
    { schema: { summary: 'list targets', tags: ['targets'], querystring: Paging, response: { 200: Type.Array(Type.Ref('Target')), ...errors(400, 401, 503) } } },
    async (req) => prisma.target.findMany({ orderBy: { id: 'asc' }, take: req.query.limit, skip: req.query.offset, include }),
  );

  app.get(
    '/targets/:id',
    { schema: { summary: 'one target', tags: ['targets'], params: IdParams, response: { 200: Type.Ref('Target'), ...errors(400, 401, 404, 503) } } },
    async (req) => (await prisma.target.findUnique({ where: { id: req.params.id }, include })) ?? Promise.reject(notFound('target', req.params.id)),
  );

  app.post(
    '/targets',
    {
      schema: {
        summary: 'register a target, or detect the Open MPI of this host or of a node over ssh',
        tags: ['targets'],
        body: CreateTarget,
        response: { 200: Type.Ref('Target'), 201: Type.Ref('Target'), ...errors(400, 401, 409, 413, 503) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (b.node !== undefined && b.detect !== 'ssh') throw badRequest('"node" goes with detect:"ssh"');
      if (b.detect) {
        const explicit = (['kind', 'version', 'btlApi', 'pkglibdir', 'incdirs', 'libdirs', 'bindir', 'sysroot'] as const).filter((k) => b[k] !== undefined);
        if (explicit.length) throw badRequest(`detect:"${b.detect}" takes only "prefix"${b.detect === 'ssh' ? ' and "node"' : ''}; remove ${explicit.join(', ')}`);
        let where: { node: SshNode; nodeId: number } | undefined;
        const opts: DetectOptions = {};
        if (b.detect === 'ssh') {
          if (!b.node) throw badRequest('detect:"ssh" needs "node", e.g. {"detect":"ssh","node":"n2"}');
          if (b.prefix !== undefined && !SAFE_PATH.test(b.prefix)) throw badRequest(`prefix ${JSON.stringify(b.prefix)}: a path for ssh nodes may hold only letters, digits and . _ + - /`);
          const node = (await resolveNodes([b.node])).remote[0];
          if (!node) throw badRequest('detect:"ssh" needs a remote node, not "local"; use detect:"local"');
          const hello = await sshRun(node, 'hostname');
          if (hello.exitCode !== 0) throw new ApiError(409, describeFailure(node, 'ssh', hello));
          const row = await prisma.node.upsert({
            where: { name: node.name },
            create: { name: node.name, address: node.addr, sshTarget: node.addr, lastSeen: new Date() },
            update: { address: node.addr, sshTarget: node.addr, lastSeen: new Date() },
          });
          where = { node, nodeId: row.id };
          opts.runPrefix = node.ssh;
          opts.readText = async (file) => {
            const r = await sshRun(node, `cat ${shq(file)}`);
            return r.exitCode === 0 ? r.stdout : undefined;
          };
        }
        let t;
        try {
          t = await detectOmpi(b.prefix ?? 'auto', opts);
        } catch (e) {
          if (e instanceof DetectError) throw badRequest(`detection failed${where ? ` on ${where.node.name} (over ssh)` : ''}: ${e.message}`);
          throw e;
        }
        const nodeId = where?.nodeId ?? null;
        const existing = await prisma.target.findFirst({ where: { kind: 'ompi', version: t.version, sysroot: t.sysroot, bindir: t.bindir, nodeId } });
        // the ssh prefix is not stored: it names the lab's current login node and config
        const data = { btlApi: t.btlApi, prefix: b.prefix ?? 'auto', pkglibdir: t.pkglibdir, incdirs: t.incdirs, libdirs: t.libdirs, runPrefix: where ? [] : t.runPrefix };
        if (existing) return reply.code(200).send(await prisma.target.update({ where: { id: existing.id }, data, include }));
        return reply.code(201).send(await prisma.target.create({ data: { kind: 'ompi', version: t.version, bindir: t.bindir, sysroot: t.sysroot, nodeId, ...data }, include }));
      }
      if (!b.kind || !b.version) throw badRequest('body needs either detect:"local" or both "kind" and "version"');
      if (b.kind === 'ompi' && (!b.btlApi || !b.pkglibdir || !b.incdirs?.length)) {
        throw badRequest('an ompi target needs btlApi ("3.1" or "3.3"), pkglibdir and incdirs (or use detect:"local")');
      }
      const sysroot = b.sysroot ?? '/';
      const bindir = b.bindir ?? '';
      const dup = await prisma.target.findFirst({ where: { kind: b.kind, version: b.version, sysroot, bindir, nodeId: null } });
      if (dup) throw conflict(`target ${dup.id} already registers ${b.kind} ${b.version} (sysroot ${sysroot}, bindir "${bindir}")`);
      const row = await prisma.target.create({
        include,
        data: {
          kind: b.kind,
          version: b.version,
          btlApi: b.btlApi ?? null,
          prefix: b.prefix ?? null,
          pkglibdir: b.pkglibdir ?? null,
          incdirs: b.incdirs ?? [],
          libdirs: b.libdirs ?? [],
          bindir,
          sysroot,
        },
      });
      return reply.code(201).send(row);
    },
  );
};
