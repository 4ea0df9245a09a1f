// One build job: the real generator (buildComponent), installed into the
// build's own directory (installComponent) and proven with ompi_info
// (verifyComponent). Log lines stream into Build.log as they come.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { PrismaClient } from '../db/index.js';
import { BuildError, buildComponent } from '../generator/build.js';
import { installComponent, verifyComponent } from '../generator/install.js';
import type { BtlApi, OmpiTarget } from '../generator/target.js';
import { buildDir } from '../paths.js';

export const defaultBuildsDir = (): string => process.env.DICOM_BUILDS_DIR ?? path.join(buildDir, 'builds');

export interface TargetRow {
  kind: string;
  version: string;
  btlApi: string | null;
  incdirs: string[];
  libdirs: string[];
  pkglibdir: string | null;
  bindir: string;
  sysroot: string;
  runPrefix: string[];
}

export function toOmpiTarget(t: TargetRow): OmpiTarget {
  if (t.kind !== 'ompi' || !t.btlApi || !t.pkglibdir) throw new Error(`target is not a complete Open MPI target`);
  return {
    version: t.version,
    btlApi: t.btlApi as BtlApi,
    incdirs: t.incdirs,
    libdirs: t.libdirs,
    pkglibdir: t.pkglibdir,
    runPrefix: t.runPrefix,
    bindir: t.bindir,
    sysroot: t.sysroot,
  };
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Appends log text in batches (every 200 ms), so a chatty build is not one UPDATE per line. */
class LogWriter {
  private buf: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  constructor(private prisma: PrismaClient, private buildId: number) {}
  line(l: string): void {
    this.buf.push(l + '\n');
    this.timer ??= setTimeout(() => void this.flush(), 200);
  }
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buf.length === 0) return this.chain;
    const text = this.buf.join('');
    this.buf = [];
    this.chain = this.chain
      .then(() => this.prisma.$executeRaw`UPDATE "Build" SET "log" = "log" || ${text} WHERE "id" = ${this.buildId}`)
      .then(
        () => {},
        () => {},
      );
    return this.chain;
  }
}

/** Runs build `id` if it is still queued (a duplicate or stale job is a no-op). */
export async function runBuild(prisma: PrismaClient, id: number, buildsDir = defaultBuildsDir()): Promise<void> {
  const claimed = await prisma.build.updateMany({ where: { id, status: 'queued' }, data: { status: 'running', startedAt: new Date() } });
  if (claimed.count === 0) return;
  const build = await prisma.build.findUniqueOrThrow({ where: { id }, include: { target: true } });
  const log = new LogWriter(prisma, id);
  const t0 = performance.now();
  try {
    const t = toOmpiTarget(build.target);
    log.line(`» building btl_dicom for Open MPI ${t.version} (BTL API ${t.btlApi})`);
    const r = await buildComponent(t, (l) => log.line(l));
    const dest = path.join(buildsDir, String(id));
    const dir = await installComponent(t, r.artifact, dest);
    const artifact = path.join(dir, 'mca_btl_dicom.so');
    log.line(`» installed ${artifact}`);
    log.line('» verifying with ompi_info --param btl dicom --level 9');
    const v = await verifyComponent(t, dir);
    for (const p of v.params) log.line(`  ${p.name}: ${p.help}`);
    const sha256 = await sha256File(artifact);
    log.line(`» succeeded in ${((performance.now() - t0) / 1000).toFixed(1)} s, sha256 ${sha256}`);
    await log.flush();
    await prisma.build.update({ where: { id }, data: { status: 'succeeded', artifactPath: artifact, sha256, finishedAt: new Date() } });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof BuildError) log.line(e.log);
    log.line(`» failed: ${msg}`);
    await log.flush();
    await prisma.build.update({ where: { id }, data: { status: 'failed', error: msg, finishedAt: new Date() } });
  }
}
