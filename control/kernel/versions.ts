// The kernel series the mailbox driver targets and what differs between them.
// Templates under kernel-patches/ branch on these features, never on a copy
// of a file per version; a new series needs a row here, nothing else.

export class KernelError extends Error {
  override name = 'KernelError';
}

export interface KernelSeries {
  /** "6.1": what `--kernel` takes */
  series: string;
  /** Debian's source package of that series */
  sourcePackage: string;
  /** matches the release of the series' amd64 image, e.g. 6.1.0-57-amd64 or 6.12.118+deb12-amd64 */
  releasePattern: RegExp;
}

export const SERIES: readonly KernelSeries[] = [
  { series: '6.1', sourcePackage: 'linux-source-6.1', releasePattern: /^6\.1\.0-\d+-amd64$/ },
  { series: '6.12', sourcePackage: 'linux-source-6.12', releasePattern: /^6\.12\.\d+\+deb\d+-amd64$/ },
];

export function findSeries(name: string): KernelSeries {
  const s = SERIES.find((k) => k.series === name);
  if (!s) {
    throw new KernelError(`unknown kernel "${name}"; supported: ${SERIES.map((k) => k.series).join(', ')}`);
  }
  return s;
}

/** Kernel API changes the driver meets, each with the release that made it. */
export interface KernelFeatures {
  /** 6.2: class devnode() takes a const struct device */
  constDevnode: boolean;
  /** 6.4: class_create() lost its owner argument; classes can be static const and class_register()ed */
  constClass: boolean;
  /** 6.6: __counted_by() annotates flexible arrays for FORTIFY_SOURCE/UBSAN bounds */
  countedBy: boolean;
}

export function parseVersion(v: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(v);
  if (!m) throw new KernelError(`not a kernel version: "${v}"`);
  return [Number(m[1]), Number(m[2])];
}

function atLeast(v: string, want: string): boolean {
  const [a, b] = parseVersion(v);
  const [x, y] = parseVersion(want);
  return a > x || (a === x && b >= y);
}

export function featuresOf(series: string): KernelFeatures {
  return {
    constDevnode: atLeast(series, '6.2'),
    constClass: atLeast(series, '6.4'),
    countedBy: atLeast(series, '6.6'),
  };
}
