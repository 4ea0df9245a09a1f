// One deployment: a succeeded build's artifact installed into `dest` on each
// node, verified there with ompi_info. A node whose install or verification
// fails is rolled back to the component it had before (or to none).
// Nodes: "local" (the control-plane host, plain file operations) and lab
// nodes, where every step goes over ssh: the copy (scp), its sha256, the
// atomic rename, ompi_info, and the rollback. Nodes are done one after the
// other, so on a shared filesystem each node's backup is what that node had
// just before its own step.
import { createHash } from 'node:crypto';
import { copyFile, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { PrismaClient } from '../db/index.js';
import { componentPath, installComponent, verifyComponent } from '../generator/install.js';
import type { OmpiTarget } from '../generator/target.js';
import { toOmpiTarget } from './build-job.js';
import { LOCAL, type SshNode, describeFailure, resolveNodes, scpTo, shq, sshRun } from './nodes.js';

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
const SO = 'mca_btl_dicom.so';

/** The steps of installing on one node; the flow around them (backup, verify, rollback) is shared. */
interface Site {
  /** keeps the installed component aside; true when there was one */
  backup(): Promise<boolean>;
  install(): Promise<void>;
  verify(): Promise<number>;
  restore(hadPrevious: boolean): Promise<void>;
  dropBackup(): Promise<void>;
}

function localSite(t: OmpiTarget, artifact: string, dest: string, id: number, log: (l: string) => void): Site {
  const installed = path.join(dest, SO);
  const backup = `${installed}.rollback-${id}`;
  return {
    async backup() {
      if (!(await stat(installed).then(() => true, () => false))) return false;
      await copyFile(installed, backup);
      log(`kept the previous component as ${backup}`);
      return true;
    },
    async install() {
      await installComponent(t, artifact, dest);
      log(`installed ${installed}`);
    },
    async verify() {
      return (await verifyComponent(t, dest)).params.length;
    },
    async restore(hadPrevious) {
      if (hadPrevious) await rename(backup, installed);
      else await rm(installed, { force: true });
    },
    async dropBackup() {
      await rm(backup, { force: true });
    },
  };
}

function sshSite(node: SshNode, t: OmpiTarget, artifact: string, sha: string, dest: string, id: number, log: (l: string) => void): Site {
  const installed = path.join(dest, SO);
  const backup = path.join(dest, `.${SO}.rollback-${id}`);
  const incoming = path.join(dest, `.${SO}.incoming-${id}`);
  const run = async (what: string, command: string) => {
    const r = await sshRun(node, command);
    if (r.exitCode !== 0) throw new Error(describeFailure(node, what, r));
    return r.stdout;
  };
  return {
    async backup() {
      const out = await run(
        'preparing',
        `hostname; mkdir -p ${shq(dest)} && if [ -e ${shq(installed)} ]; then cp -p ${shq(installed)} ${shq(backup)} && echo had-previous; fi`,
      );
      const [host, flag] = out.trim().split('\n');
      log(`ssh ${node.name} (${node.addr}): hostname ${host}`);
      if (flag === 'had-previous') log(`kept the previous component as ${backup} on ${node.name}`);
      return flag === 'had-previous';
    },
    async install() {
      const r = await scpTo(node, artifact, incoming);
      if (r.exitCode !== 0) throw new Error(describeFailure(node, `scp ${artifact}`, r));
      const got = (await run('checking the copy', `sha256sum ${shq(incoming)}`)).split(/\s+/)[0];
      if (got !== sha) throw new Error(`the copy on ${node.name} has sha256 ${got}, expected ${sha}`);
      log(`copied over ssh to ${node.name}:${incoming}, sha256 matches`);
      // rename within one directory: a job starting now maps either the old or the new file
      const env = `export OMPI_MCA_mca_base_component_path=${componentPath(t, dest)}\n`;
      await run('installing', `chmod 0755 ${shq(incoming)} && mv -f ${shq(incoming)} ${shq(installed)} && printf %s ${shq(env)} > ${shq(path.join(dest, 'env.sh'))}`);
      log(`installed ${installed} on ${node.name}`);
    },
    async verify() {
      // ompi_info runs on the node; ssh does not carry the environment, so env(1) sets the loader path there
      const remote: OmpiTarget = { ...t, runPrefix: [...node.ssh, 'env', `OMPI_MCA_mca_base_component_path=${componentPath(t, dest)}`] };
      const n = (await verifyComponent(remote, dest)).params.length;
      log(`ompi_info on ${node.name} (over ssh) lists btl dicom`);
      return n;
    },
    async restore(hadPrevious) {
      await run('rolling back', hadPrevious ? `rm -f ${shq(incoming)} && mv -f ${shq(backup)} ${shq(installed)}` : `rm -f ${shq(incoming)} ${shq(installed)}`);
    },
    async dropBackup() {
      await run('removing the backup', `rm -f ${shq(backup)}`);
    },
  };
}

export async function runDeployment(prisma: PrismaClient, id: number): Promise<void> {
  const claimed = await prisma.deployment.updateMany({ where: { id, status: 'pending' }, data: { status: 'running' } });
  if (claimed.count === 0) return;
  const d = await prisma.deployment.findUniqueOrThrow({ where: { id }, include: { build: true, target: true, nodes: { orderBy: { id: 'asc' } } } });
  let allOk = true;
  for (const node of d.nodes) {
    await prisma.deploymentNode.update({ where: { id: node.id }, data: { status: 'running' } });
    const log: string[] = [];
    const finish = (status: 'succeeded' | 'failed' | 'rolled_back', error?: string) =>
      prisma.deploymentNode.update({ where: { id: node.id }, data: { status, error: error ?? null, log: log.join('\n') + '\n', finishedAt: new Date() } });
    const artifact = d.build.artifactPath;
    let site: Site;
    try {
      if (!artifact || !d.build.sha256) throw new Error(`build ${d.buildId} has no artifact`);
      const actual = await sha256(artifact);
      if (actual !== d.build.sha256) throw new Error(`artifact ${artifact} changed since build ${d.buildId} (sha256 ${actual}, recorded ${d.build.sha256})`);
      log.push(`artifact ${artifact} sha256 ${actual} matches build ${d.buildId}`);
      const t = toOmpiTarget(d.target);
      // each node on its own: one that went away since the request fails alone
      const ssh = node.nodeName === LOCAL ? undefined : (await resolveNodes([node.nodeName])).remote[0];
      site = ssh ? sshSite(ssh, t, artifact, actual, d.dest, id, (l) => log.push(l)) : localSite(t, artifact, d.dest, id, (l) => log.push(l));
    } catch (e) {
      allOk = false;
      log.push(`failed before install: ${(e as Error).message}`);
      await finish('failed', (e as Error).message);
      continue;
    }
    let hadPrevious: boolean;
    try {
      hadPrevious = await site.backup();
    } catch (e) {
      allOk = false;
      log.push(`failed before install: ${(e as Error).message}`);
      await finish('failed', (e as Error).message);
      continue;
    }
    try {
      await site.install();
      const params = await site.verify();
      log.push(`ompi_info lists btl dicom with ${params} parameters`);
      if (hadPrevious) await site.dropBackup();
      await finish('succeeded');
    } catch (e) {
      allOk = false;
      const msg = (e as Error).message;
      log.push(`install or verification failed: ${msg}`);
      try {
        await site.restore(hadPrevious);
        log.push(hadPrevious ? 'rolled back to the previous component' : 'rolled back: removed the new component');
        await finish('rolled_back', msg);
      } catch (re) {
        log.push(`rollback failed too: ${(re as Error).message}`);
        await finish('failed', `${msg}; rollback failed: ${(re as Error).message}`);
      }
    }
  }
  await prisma.deployment.update({
    where: { id },
    data: { status: allOk ? 'succeeded' : 'failed', error: allOk ? null : 'one or more nodes failed; see nodes[].error', finishedAt: new Date() },
  });
}
