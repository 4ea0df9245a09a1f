// Network namespaces and the bridge: node k is netns dicom-n<k> with eth0 (a veth) whose peer
// is enslaved to br0 in netns dicom-lab-br. lo is up everywhere. No default route anywhere.
import { BRIDGE_DEV, BRIDGE_NS, LAB_NS_RE, LabError, NODE_DEV, bridgePort, nodeAddr, nodeNs, overlaps, parseCidr, type Subnet } from './config.js';
import { ipJson, run } from './sh.js';

interface IpAddrLink {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** The host's IPv4 addresses with their prefixes, from `ip -4 -j addr` in this namespace. */
export async function hostAddrs(): Promise<{ ifname: string; cidr: string }[]> {
  const links = await ipJson<IpAddrLink>(['-4', 'addr']);
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => ({ ifname: l.ifname, cidr: `${a.local}/${a.prefixlen}` })));
}

/** Refuses a lab subnet that overlaps any address of the host. */
export async function assertNoOverlap(subnet: Subnet): Promise<void> {
  for (const a of await hostAddrs()) {
    if (a.cidr.startsWith('127.')) continue; // loopback never meets the lab: namespaces have their own lo
    if (overlaps(parseCidr(a.cidr), subnet)) {
      throw new LabError(
        `lab subnet ${subnet.cidr} overlaps host address ${a.cidr} on ${a.ifname}; choose another with DICOM_LAB_SUBNET=…`,
      );
    }
  }
}

/** Names of the lab's namespaces that exist now (only dicom-n<k> and dicom-lab-br). */
export async function listLabNamespaces(): Promise<string[]> {
  const list = await ipJson<{ name: string }>(['netns', 'list'], { allowFail: true });
  return list.map((n) => n.name).filter((n) => LAB_NS_RE.test(n));
}

/** PIDs whose network namespace is ns (`ip netns pids`). */
export async function nsPids(ns: string): Promise<number[]> {
  if (!LAB_NS_RE.test(ns)) throw new LabError(`refusing to touch namespace "${ns}": not a lab namespace`);
  const r = await run(['ip', 'netns', 'pids', ns], { allowFail: true });
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1);
}

export async function deleteNamespace(ns: string): Promise<void> {
  if (!LAB_NS_RE.test(ns)) throw new LabError(`refusing to delete namespace "${ns}": not a lab namespace`);
  await run(['ip', 'netns', 'delete', ns], { allowFail: true });
}

async function addNamespace(ns: string): Promise<void> {
  await run(['ip', 'netns', 'add', ns]);
  await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
}

export async function createBridge(): Promise<void> {
  await addNamespace(BRIDGE_NS);
  await run(['ip', '-n', BRIDGE_NS, 'link', 'add', BRIDGE_DEV, 'type', 'bridge']);
  await run(['ip', '-n', BRIDGE_NS, 'link', 'set', BRIDGE_DEV, 'up']);
}

/** Node k: namespace, veth pair straight between it and the bridge namespace, address, links up. */
export async function createNode(k: number, subnet: Subnet): Promise<string> {
  const ns = nodeNs(k);
  const addr = nodeAddr(k, subnet);
  await addNamespace(ns);
  // Created in the bridge namespace with its peer placed directly in the node: nothing ever
  // appears in the host namespace.
  await run(['ip', '-n', BRIDGE_NS, 'link', 'add', bridgePort(k), 'type', 'veth', 'peer', 'name', NODE_DEV, 'netns', ns]);
  await run(['ip', '-n', BRIDGE_NS, 'link', 'set', bridgePort(k), 'master', BRIDGE_DEV, 'up']);
  await run(['ip', '-n', ns, 'addr', 'add', `${addr}/${subnet.prefix}`, 'dev', NODE_DEV]);
  await run(['ip', '-n', ns, 'link', 'set', NODE_DEV, 'up']);
  const routes = await ipJson<{ dst: string }>(['-n', ns, 'route', 'show', 'default']);
  if (routes.length > 0) throw new LabError(`namespace ${ns} has a default route; refusing to continue`);
  return addr;
}
