// The gossip view as people read it: one row per node, then the ranks each node runs.
import type { GossipView } from '../dicom/libdicom.js';

const gib = (kib: number) => `${(kib / 1048576).toFixed(1)} GiB`;

/** Rows for printTable: every node the daemon has heard of, itself first. */
export function viewRows(v: GossipView): Record<string, string | number>[] {
  return v.entries.map((e) => ({
    node: e.self ? `${e.node} (self)` : e.node,
    age_ms: e.age_ms,
    runnable: e.runnable,
    load: e.load.toFixed(2),
    cpus: e.cpus.toFixed(2),
    mem_free: gib(e.mem_free_kib),
    procs: e.procs.length,
    pairs: e.pairs.length,
  }));
}

/** What each node runs and the heaviest traffic, for the lines under the table. */
export function viewDetails(v: GossipView, maxPairs = 5): string[] {
  const lines: string[] = [];
  for (const e of v.entries) {
    for (const p of e.procs) {
      const who = p.rank === null ? 'not an MPI rank' : `rank ${p.rank}${p.job ? ` of job ${p.job}` : ''}`;
      lines.push(`${e.node}: ${p.addr} (pid ${p.pid}) ${who}, cpu ${p.cpu.toFixed(2)}`);
    }
    for (const p of e.pairs.slice(0, maxPairs)) lines.push(`${e.node}: ${p.src} -> ${p.dst} ${p.bytes} bytes, ${(p.rate / 1e6).toFixed(2)} MB/s`);
  }
  for (const p of v.peers) if (p.failures > 0) lines.push(`peer ${p.node}: ${p.failures} failed attempts, retry in ${p.retry_in_ms} ms`);
  if (v.truncated) lines.push('(view truncated: more nodes than one reply holds)');
  return lines;
}
