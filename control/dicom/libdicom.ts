// libdicom through ffi-rs: the control plane asks dicomd through the C
// library, so the wire format has exactly one definition (dicom_wire.h).
import { existsSync } from 'node:fs';
import { DataType, type JsExternal, load, open, restorePointer, wrapPointer } from 'ffi-rs';
import { libdicomSo } from '../paths.js';

export class LibdicomError extends Error {}

const OUT_LEN = 1 << 20; // STATUS_REPLY is bounded by 1 MiB on the wire
let opened = false;

function ensureOpen(): void {
  if (opened) return;
  if (!existsSync(libdicomSo)) throw new LibdicomError(`${libdicomSo} is missing; run: dicomctl btl build`);
  open({ library: 'libdicom', path: libdicomSo });
  open({ library: 'libc', path: '' });
  opened = true;
}

const mallocOut = (): unknown => load({ library: 'libc', funcName: 'malloc', retType: DataType.External, paramsType: [DataType.U64], paramsValue: [OUT_LEN] });
const readOut = (out: unknown): string => (restorePointer({ retType: [DataType.String], paramsValue: wrapPointer([out as JsExternal]) }) as string[])[0] ?? '';
const freeOut = (out: unknown): void => void load({ library: 'libc', funcName: 'free', retType: DataType.Void, paramsType: [DataType.External], paramsValue: [out] });

/** Calls fn(outPtr, len) with a malloc'd buffer and returns the C string it wrote. */
function withOutBuffer(fn: (out: unknown) => number): { rc: number; text: string } {
  const out = mallocOut();
  try {
    const rc = fn(out);
    return { rc, text: readOut(out) };
  } finally {
    freeOut(out);
  }
}

/** The same for a call ffi-rs runs on a thread of its own (runInNewThread), so the caller's event loop never waits on a daemon. */
async function withOutBufferAsync(fn: (out: unknown) => Promise<number>): Promise<{ rc: number; text: string }> {
  const out = mallocOut();
  try {
    const rc = await fn(out);
    return { rc, text: readOut(out) };
  } finally {
    freeOut(out);
  }
}

function parse(rc: number, text: string, what: string): Record<string, unknown> {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new LibdicomError(`${what}: libdicom returned ${rc} and unparsable text: ${text.slice(0, 200)}`);
  }
  if (rc < 0) throw new LibdicomError(`${what}: ${typeof obj.error === 'string' ? obj.error : `error ${rc}`}`);
  return obj;
}

/** The daemon's own view: node address, port, registered endpoints, cache. */
export function queryStatus(daemonName = 'dicomd'): Record<string, unknown> {
  ensureOpen();
  const { rc, text } = withOutBuffer((out) =>
    load({ library: 'libdicom', funcName: 'dicom_query_status', retType: DataType.I32, paramsType: [DataType.String, DataType.External, DataType.U64], paramsValue: [daemonName, out, OUT_LEN] }) as number,
  );
  return parse(rc, text, `status of @${daemonName}`);
}

/** A daemon query `funcName(daemon, out, len)` run by ffi-rs on a thread of its own, off the event loop. */
async function daemonQueryAsync(funcName: string, daemonName: string, what: string): Promise<Record<string, unknown>> {
  ensureOpen();
  const { rc, text } = await withOutBufferAsync(
    (out) =>
      load({
        library: 'libdicom',
        funcName,
        retType: DataType.I32,
        paramsType: [DataType.String, DataType.External, DataType.U64],
        paramsValue: [daemonName, out, OUT_LEN],
        runInNewThread: true,
      }) as Promise<number>,
  );
  return parse(rc, text, `${what} of ${daemonName.startsWith('netns:') ? daemonName : `@${daemonName}`}`);
}

/** queryStatus for servers: the query runs off the event loop. daemonName may be inNetns(ns) for a lab node. */
export function queryStatusAsync(daemonName = 'dicomd'): Promise<Record<string, unknown>> {
  return daemonQueryAsync('dicom_query_status', daemonName, 'status');
}

/** Where (home node, home pid) runs now, as the home daemon says. addr is "a.b.c.d:pid". */
export function queryResolve(addr: string, daemonName = 'dicomd'): Record<string, unknown> {
  ensureOpen();
  const { rc, text } = withOutBuffer((out) =>
    load({ library: 'libdicom', funcName: 'dicom_query_resolve', retType: DataType.I32, paramsType: [DataType.String, DataType.String, DataType.External, DataType.U64], paramsValue: [daemonName, addr, out, OUT_LEN] }) as number,
  );
  return parse(rc, text, `resolve ${addr}`);
}

/** One node in a gossip view (dicom_query_view): its load vector and how old it is. */
export interface GossipEntry {
  node: string;
  /** this daemon's own, freshly sampled entry */
  self: boolean;
  age_ms: number;
  /** when the origin sampled it, by the origin's clock (ms since the epoch) */
  sampled_at_ms: number;
  /** tasks in state R on the node when sampled */
  runnable: number;
  /** runnable tasks, averaged over a few seconds */
  load: number;
  /** CPU capacity: the node's cpuset size, less under a CPU quota */
  cpus: number;
  mem_free_kib: number;
  mem_total_kib: number;
  /** DiCOM endpoints running on the node; rank null when not an MPI rank */
  procs: { addr: string; pid: number; rank: number | null; job: string; cpu: number }[];
  /** traffic from an endpoint on this node: bytes since it opened, recent bytes/s */
  pairs: { src: string; dst: string; bytes: number; rate: number }[];
}

export interface GossipView {
  node: string;
  period_ms: number;
  window: number;
  max_age_ms: number;
  stats: Record<string, number>;
  peers: { node: string; failures: number; retry_in_ms: number }[];
  entries: GossipEntry[];
  truncated: boolean;
}

/** The daemon's gossip view: its own load vector and every node's it has heard of, with ages. */
export function queryView(daemonName = 'dicomd'): GossipView {
  ensureOpen();
  const { rc, text } = withOutBuffer((out) =>
    load({ library: 'libdicom', funcName: 'dicom_query_view', retType: DataType.I32, paramsType: [DataType.String, DataType.External, DataType.U64], paramsValue: [daemonName, out, OUT_LEN] }) as number,
  );
  return parse(rc, text, `gossip view of @${daemonName}`) as unknown as GossipView;
}

/** queryView for servers: the query runs off the event loop. daemonName may be inNetns(ns) for a lab node. */
export async function queryViewAsync(daemonName = 'dicomd'): Promise<GossipView> {
  return (await daemonQueryAsync('dicom_query_view', daemonName, 'gossip view')) as unknown as GossipView;
}

/** Relays a PING to the endpoint addr through the dicomd daemonName; its stats and migration fields. */
export function queryPing(addr: string, daemonName = 'dicomd'): Record<string, unknown> {
  ensureOpen();
  const { rc, text } = withOutBuffer((out) =>
    load({ library: 'libdicom', funcName: 'dicom_query_ping', retType: DataType.I32, paramsType: [DataType.String, DataType.String, DataType.External, DataType.U64], paramsValue: [daemonName, addr, out, OUT_LEN] }) as number,
  );
  return parse(rc, text, `ping ${addr}`);
}

/**
 * Asks the endpoint addr (registered with daemonName) to detach before a dump: its tunnel home
 * drains and every external socket closes. It reattaches by itself once restored, or after holdMs.
 */
export function queryDetach(addr: string, holdMs: number, daemonName = 'dicomd'): Record<string, unknown> {
  ensureOpen();
  const { rc, text } = withOutBuffer((out) =>
    load({ library: 'libdicom', funcName: 'dicom_query_detach', retType: DataType.I32, paramsType: [DataType.String, DataType.String, DataType.I32, DataType.External, DataType.U64], paramsValue: [daemonName, addr, holdMs, out, OUT_LEN] }) as number,
  );
  return parse(rc, text, `detach ${addr}`);
}

/** The daemon name that reaches dicomd `name` inside network namespace `ns` (a lab node). */
export const inNetns = (ns: string, name = 'dicomd') => `netns:${ns}:${name}`;
