// The generator's whole path for one target: render + compile, install,
// verify. Commands, the demo and the job workers all go through here.
import { type BuildResult, buildComponent, type LogSink } from './build.js';
import { defaultComponentDirFor, installComponent, type VerifyResult, verifyComponent } from './install.js';
import type { OmpiTarget } from './target.js';

export interface InstalledComponent {
  build: BuildResult;
  dir: string;
  verified: VerifyResult;
}

export async function buildInstallVerify(t: OmpiTarget, dest: string | 'system' = defaultComponentDirFor(t), onLine?: LogSink): Promise<InstalledComponent> {
  const build = await buildComponent(t, onLine);
  const dir = await installComponent(t, build.artifact, dest);
  const verified = await verifyComponent(t, dir);
  return { build, dir, verified };
}
