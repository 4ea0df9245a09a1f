// The safety rule: traffic to a lab address may only ever go out through the lab veth of a lab
// node. assertLabRoute asks the kernel (`ip route get`, which sends nothing) and refuses otherwise.
import { LabError, NODE_DEV, NODE_NS_RE, inSubnet, ipToInt, labSubnet, type Subnet } from './config.js';
import { ipJson, run } from './sh.js';

interface RouteGet {
  type?: string;
  dst: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
}

export interface LabRoute {
  fromNs: string;
  addr: string;
  dev: string;
  /** true when addr is fromNs's own address (delivered on lo, never leaves the namespace) */
  local: boolean;
}

/**
 * Throws unless, seen from the lab node namespace fromNs, addr is inside the lab subnet and is
 * routed directly (no gateway) out of that namespace's lab veth (or is the namespace's own
 * address). Run it before any traffic is sent to a lab address.
 */
export async function assertLabRoute(fromNs: string, addr: string, subnet: Subnet = labSubnet()): Promise<LabRoute> {
  const refuse = (why: string): never => {
    throw new LabError(`refusing to send traffic to ${addr} from ${fromNs || 'the host namespace'}: ${why}`);
  };
  if (!NODE_NS_RE.test(fromNs)) refuse('only lab node namespaces (dicom-n<k>) may talk to lab addresses');
  try {
    ipToInt(addr);
  } catch {
    refuse('not an IPv4 address');
  }
  if (!inSubnet(addr, subnet)) refuse(`address is outside the lab subnet ${subnet.cidr}`);
  const r = await run(['ip', '-j', '-n', fromNs, 'route', 'get', addr], { allowFail: true });
  if (r.exitCode !== 0) refuse(`no route (${r.stderr.trim() || `ip exit ${r.exitCode}`})`);
  const route = (JSON.parse(r.stdout || '[]') as RouteGet[])[0];
  if (!route) refuse('`ip route get` returned nothing');
  const rt = route!;
  if (rt.gateway) refuse(`route goes through gateway ${rt.gateway} on ${rt.dev ?? '?'}`);
  if (rt.type === 'local') {
    if (rt.dev !== 'lo') refuse(`local route on unexpected device ${rt.dev ?? '?'}`);
    return { fromNs, addr, dev: 'lo', local: true };
  }
  if (rt.type !== undefined && rt.type !== 'unicast') refuse(`route type is ${rt.type}`);
  if (rt.dev !== NODE_DEV) refuse(`route leaves through ${rt.dev ?? '?'}, not the lab veth ${NODE_DEV}`);
  const links = await ipJson<{ ifname: string; linkinfo?: { info_kind?: string } }>(['-n', fromNs, '-d', 'link', 'show', 'dev', NODE_DEV], {
    allowFail: true,
  });
  const kind = links[0]?.linkinfo?.info_kind;
  if (kind !== 'veth') refuse(`${NODE_DEV} in ${fromNs} is ${kind ?? 'missing'}, not the lab veth`);
  return { fromNs, addr, dev: NODE_DEV, local: false };
}

/** assertLabRoute for every address, in parallel. */
export async function assertLabRoutes(fromNs: string, addrs: string[], subnet?: Subnet): Promise<LabRoute[]> {
  return Promise.all(addrs.map((a) => assertLabRoute(fromNs, a, subnet)));
}
