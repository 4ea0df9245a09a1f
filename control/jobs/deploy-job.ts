// One deployment: a succeeded build's artifact installed into `dest` on each
// node, verified there with ompi_info. A node whose verification fails is
// rolled back to the component it had before (or to none).
// Nodes: "local" (the control-plane host). Remote nodes over ssh are not
// implemented yet and are refused at the API.
import { createHash } from 'node:crypto';
import { copyFile, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { PrismaClient } from '../db/index.js';
import { installComponent, verifyComponent } from '../generator/install.js';
import { toOmpiTarget } from './build-job.js';

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

export async function runDeployment(prisma: PrismaClient, id: number): Promise<void> {
  const claimed = await prisma.deployment.updateMany({ where: { id, status: 'pending' }, data: { status: 'running' } });
  if (claimed.count === 0) return;
  const d = await prisma.deployment.findUniqueOrThrow({ where: { id }, include: { build: true, target: true, nodes: true } });
  let allOk = true;
  for (const node of d.nodes) {
    await prisma.deploymentNode.update({ where: { id: node.id }, data: { status: 'running' } });
    const log: string[] = [];
    const finish = (status: 'succeeded' | 'failed' | 'rolled_back', error?: string) =>
      prisma.deploymentNode.update({ where: { id: node.id }, data: { status, error: error ?? null, log: log.join('\n') + '\n', finishedAt: new Date() } });
    const artifact = d.build.artifactPath;
    try {
      if (!artifact || !d.build.sha256) throw new Error(`build ${d.buildId} has no artifact`);
      const actual = await sha256(artifact);
      if (actual !== d.build.sha256) throw new Error(`artifact ${artifact} changed since build ${d.buildId} (sha256 ${actual}, recorded ${d.build.sha256})`);
      log.push(`artifact ${artifact} sha256 ${actual} matches build ${d.buildId}`);
    } catch (e) {
      allOk = false;
      log.push(`failed before install: ${(e as Error).message}`);
      await finish('failed', (e as Error).message);
      continue;
    }
    const t = toOmpiTarget(d.target);
    const installed = path.join(d.dest, 'mca_btl_dicom.so');
    const backup = `${installed}.rollback-${id}`;
    const hadPrevious = await stat(installed).then(() => true, () => false);
    if (hadPrevious) {
      await copyFile(installed, backup);
      log.push(`kept the previous component as ${backup}`);
    }
    try {
      await installComponent(t, artifact, d.dest);
      log.push(`installed ${installed}`);
      const v = await verifyComponent(t, d.dest);
      log.push(`ompi_info lists btl dicom with ${v.params.length} parameters`);
      if (hadPrevious) await rm(backup, { force: true });
      await finish('succeeded');
    } catch (e) {
      allOk = false;
      const msg = (e as Error).message;
      log.push(`verification failed: ${msg}`);
      if (hadPrevious) {
        await rename(backup, installed);
        log.push('rolled back to the previous component');
      } else {
        await rm(installed, { force: true });
        log.push('rolled back: removed the new component');
      }
      await finish('rolled_back', msg);
    }
  }
  await prisma.deployment.update({
    where: { id },
    data: { status: allOk ? 'succeeded' : 'failed', error: allOk ? null : 'one or more nodes failed; see nodes[].error', finishedAt: new Date() },
  });
}
