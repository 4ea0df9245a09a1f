// What the generator needs to know about one Open MPI installation.
export type BtlApi = '3.1' | '3.3';

export interface OmpiTarget {
  /** "4.1.4" */
  version: string;
  btlApi: BtlApi;
  /** Include dirs from `mpicc --showme:incdirs`, as seen from the host. */
  incdirs: string[];
  libdirs: string[];
  /** Where system components live (`ompi_info --path pkglibdir`). */
  pkglibdir: string;
  /** How to run this installation's tools: argv prefix (e.g. a chroot) + bin dir. */
  runPrefix: string[];
  bindir: string;
  /** Filesystem root the installation lives under ("/" for the host). */
  sysroot: string;
}

/** Stable name for build folders: one build per Open MPI version. */
export function targetId(t: OmpiTarget): string {
  return `ompi-${t.version}`;
}
