// libdicom through ffi-rs: the control plane asks dicomd through the C
// library, so the wire format has exactly one definition (dicom_wire.h).
import { existsSync } from 'node:fs';
import { DataType, load, open, restorePointer, wrapPointer } from 'ffi-rs';
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

/** Calls fn(outPtr, len) with a malloc'd buffer and returns the C string it wrote. */
function withOutBuffer(fn: (out: unknown) => number): { rc: number; text: string } {
  const out = load({ library: 'libc', funcName: 'malloc', retType: DataType.External, paramsType: [DataType.U64], paramsValue: [OUT_LEN] });
  try {
    const rc = fn(out);
    const [text] = restorePointer({ retType: [DataType.String], paramsValue: wrapPointer([out]) }) as string[];
    return { rc, text: text ?? '' };
  } finally {
    load({ library: 'libc', funcName: 'free', retType: DataType.Void, paramsType: [DataType.External], paramsValue: [out] });
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

/** Where (home node, home pid) runs now, as the home daemon says. addr is "a.b.c.d:pid". */
export function queryResolve(addr: string, daemonName = 'dicomd'): Record<string, unknown> {
  ensureOpen();
  const { rc, text } = withOutBuffer((out) =>
    load({ library: 'libdicom', funcName: 'dicom_query_resolve', retType: DataType.I32, paramsType: [DataType.String, DataType.String, DataType.External, DataType.U64], paramsValue: [daemonName, addr, out, OUT_LEN] }) as number,
  );
  return parse(rc, text, `resolve ${addr}`);
}
