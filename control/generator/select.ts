// Which Open MPI a command means: `--ompi auto|4.1|5.0|PREFIX`.
//   auto, 4.1 -> the host's installation (Debian bookworm: 4.1.4, BTL API 3.1)
//   5.0       -> the trixie root (Debian trixie: 5.0.7, BTL API 3.3), created on first use
//   PREFIX    -> an installation prefix on the host holding bin/ompi_info
import { ensureTrixieRoot, inRootArgv, trixieRootDir } from '../trixie/root.js';
import { DetectError, detectOmpi } from './detect.js';
import type { OmpiTarget } from './target.js';

export type Progress = (line: string) => void;

/** "5.0" / "5" / "trixie" select the root; "4.1" / "4" / "auto" / "host" the host. */
export function isRootSpec(spec: string): boolean {
  return /^(5(\.0)?|trixie)$/.test(spec);
}

export async function selectOmpi(spec = 'auto', onProgress: Progress = () => {}): Promise<OmpiTarget> {
  if (isRootSpec(spec)) {
    const r = await ensureTrixieRoot(onProgress);
    const t = await detectOmpi('auto', { runPrefix: inRootArgv([], { dir: r.dir }), sysroot: r.dir });
    if (!t.version.startsWith('5.0')) throw new DetectError(`--ompi ${spec}: the trixie root at ${trixieRootDir} holds Open MPI ${t.version}, not 5.0`);
    return t;
  }
  if (/^(auto|host|4(\.1)?)$/.test(spec)) {
    const t = await detectOmpi('auto');
    if (spec.startsWith('4') && !t.version.startsWith(spec)) {
      throw new DetectError(`--ompi ${spec}: this host has Open MPI ${t.version} (use --ompi auto, or --ompi 5.0 for the trixie root)`);
    }
    return t;
  }
  if (!spec.startsWith('/')) throw new DetectError(`--ompi ${spec}: expected auto, 4.1, 5.0 or an absolute installation prefix`);
  return detectOmpi(spec);
}

/** The CI matrix's Open MPI axis: each value is a `--ompi` spec for selectOmpi/checkOmpi. */
export const ompiAxis = [
  { spec: '4.1', version: '4.1.4', btlApi: '3.1', where: 'host (Debian bookworm)' },
  { spec: '5.0', version: '5.0.7', btlApi: '3.3', where: 'trixie root via chroot (ci/trixie-root.sh)' },
] as const;
