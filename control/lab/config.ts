// Lab naming and addressing: which namespace, which address, which files belong to node k.
import path from 'node:path';
import * as paths from '../paths.js';

export const MAX_NODES = 16;
export const DEFAULT_SUBNET = '10.77.0.0/24';
export const BRIDGE_NS = 'dicom-lab-br';
export const BRIDGE_DEV = 'br0';
/** The node side of each node's veth pair. */
export const NODE_DEV = 'eth0';
export const DICOMD_PORT = 7470;
export const SLOTS_PER_NODE = 8;
/** Node k's address is the subnet's network address + HOST_OFFSET + k. */
export const HOST_OFFSET = 10;
/** The only namespaces the lab ever creates, inspects or deletes. */
export const LAB_NS_RE = /^dicom-(n[0-9]+|lab-br)$/;
export const NODE_NS_RE = /^dicom-n([0-9]+)$/;

export class LabError extends Error {
  override name = 'LabError';
}

export const labDir = () => path.join(paths.stateDir, 'lab');
export const stateFile = () => path.join(labDir(), 'state.json');
export const nodeDir = (k: number) => path.join(labDir(), `n${k}`);
export const keyDir = () => path.join(paths.cacheDir, 'lab-keys');

export const nodeName = (k: number) => `n${k}`;
export const nodeNs = (k: number) => `dicom-n${k}`;
/** The bridge-side name of node k's veth (lives only in BRIDGE_NS). */
export const bridgePort = (k: number) => `n${k}`;

export interface Subnet {
  /** e.g. "10.77.0.0/24" */
  cidr: string;
  network: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const o = ip.split('.');
  if (o.length !== 4 || o.some((x) => !/^[0-9]{1,3}$/.test(x) || Number(x) > 255)) throw new LabError(`not an IPv4 address: "${ip}"`);
  return o.reduce((acc, x) => acc * 256 + Number(x), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (Math.floor(n / 2 ** s) & 255).toString()).join('.');
}

const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** Any IPv4 prefix, e.g. a host address "192.0.2.2/24" or "10.1.2.3/32". */
export function parseCidr(cidr: string): Subnet {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(cidr.trim());
  const prefix = Number(m?.[2]);
  if (!m || prefix > 32) throw new LabError(`not an IPv4 prefix like 10.77.0.0/24: "${cidr}"`);
  const network = (ipToInt(m[1]!) & mask(prefix)) >>> 0;
  return { cidr: `${intToIp(network)}/${prefix}`, network, prefix };
}

/** A lab subnet: an IPv4 prefix with room for HOST_OFFSET + MAX_NODES hosts plus broadcast. */
export function parseSubnet(cidr: string): Subnet {
  const s = parseCidr(cidr);
  if (s.prefix < 8 || s.prefix > 27) throw new LabError(`lab subnet prefix must be between /8 and /27, got /${s.prefix}`);
  return s;
}

/** $DICOM_LAB_SUBNET or 10.77.0.0/24. */
export function labSubnet(): Subnet {
  return parseSubnet(process.env.DICOM_LAB_SUBNET ?? DEFAULT_SUBNET);
}

export function nodeAddr(k: number, subnet: Subnet = labSubnet()): string {
  return intToIp(subnet.network + HOST_OFFSET + k);
}

export function inSubnet(ip: string, subnet: Subnet): boolean {
  return ((ipToInt(ip) & mask(subnet.prefix)) >>> 0) === subnet.network;
}

/** Two prefixes overlap when either contains the other's network address. */
export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.network & mask(p)) >>> 0) === ((b.network & mask(p)) >>> 0);
}

export function validateNodeCount(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_NODES) {
    throw new LabError(`the lab has 1 to ${MAX_NODES} nodes; got ${String(n)}`);
  }
}
