// The nodes the control plane acts on: "local" (its own host) and lab nodes
// ("n1".."nK" while a lab is up), reached over ssh like real hosts. The
// control plane's own namespace has no route into the lab, so ssh starts in
// n1, the lab's login node, with the lab's own client config (whose guard
// keeps ssh inside the lab) after the route check of control/lab/route.ts.
import { execa } from 'execa';
import { parseSubnet } from '../lab/config.js';
import { assertLabRoute } from '../lab/route.js';
import { type LabNode, type LabState, readState } from '../lab/state.js';
import { labStatus } from '../lab/status.js';

export const LOCAL = 'local';

/** A request named nodes that cannot be used: `status` says whether the name (400) or the lab's state (409) is at fault. */
export class NodeError extends Error {
  constructor(readonly status: 400 | 409, message: string) {
    super(message);
  }
}

export interface SshNode {
  name: string;
  addr: string;
  /** 1-based index in the lab */
  k: number;
  /** argv that runs a remote command line on the node: append one shell command string */
  ssh: string[];
  /** argv prefix for scp from the login node (ends before the source and destination) */
  scp: string[];
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Single-quotes a word for the remote shell (ssh hands the command line to it). */
export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Paths that go into remote command lines: plain absolute paths only. */
export const SAFE_PATH = /^\/[A-Za-z0-9._+\/-]*$/;

function sshNode(state: LabState, n: LabNode, k: number): SshNode {
  const login = state.nodes[0]!;
  const ns = ['ip', 'netns', 'exec', login.ns];
  return { name: n.name, addr: n.addr, k, ssh: [...ns, 'ssh', '-F', state.sshConfig, n.addr], scp: [...ns, 'scp', '-O', '-q', '-F', state.sshConfig] };
}

/**
 * Resolves node names for a deployment or a job: "local", or lab node names
 * of the running lab. Unknown names are 400; lab names while the lab is down
 * or unhealthy are 409.
 */
export async function resolveNodes(names: string[]): Promise<{ local: boolean; remote: SshNode[] }> {
  const remoteNames = names.filter((n) => n !== LOCAL);
  if (remoteNames.length === 0) return { local: true, remote: [] };
  const bad = remoteNames.filter((n) => !/^n[0-9]{1,2}$/.test(n));
  if (bad.length) throw new NodeError(400, `unknown node ${bad.map((b) => JSON.stringify(b)).join(', ')}: nodes are "local" or lab nodes "n1".."nK" (dicomctl lab up --nodes K)`);
  const state = readState();
  if (!state) throw new NodeError(409, `nodes ${remoteNames.join(', ')} are lab nodes, but no lab is up (dicomctl lab up --nodes N)`);
  const st = await labStatus();
  const remote: SshNode[] = [];
  for (const name of remoteNames) {
    const k = state.nodes.findIndex((n) => n.name === name);
    if (k < 0) throw new NodeError(400, `no lab node ${name}: the lab has ${state.nodes.map((n) => n.name).join(', ')}`);
    const s = st.nodes[k];
    if (!s?.healthy) throw new NodeError(409, `lab node ${name} is not healthy (namespace ${s?.nsPresent ? 'present' : 'missing'}, sshd ${s?.sshdListening ? 'listening' : 'down'}, dicomd ${s?.dicomdListening ? 'listening' : 'down'}); see dicomctl lab status`);
    remote.push(sshNode(state, state.nodes[k]!, k + 1));
  }
  return { local: names.includes(LOCAL), remote };
}

/** Runs one shell command line on the node over ssh, after the lab route check. Never throws for a non-zero exit. */
export async function sshRun(node: SshNode, command: string, timeoutMs = 60_000): Promise<RunResult> {
  await checkRoute(node);
  const [cmd, ...args] = [...node.ssh, command];
  const r = await execa(cmd!, args, { reject: false, timeout: timeoutMs, forceKillAfterDelay: 2000, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? (r.timedOut ? 124 : 255), stdout: String(r.stdout), stderr: String(r.stderr), timedOut: Boolean(r.timedOut) };
}

/** Copies a local file to `remotePath` on the node with scp (the file travels over the node's ssh). */
export async function scpTo(node: SshNode, localFile: string, remotePath: string, timeoutMs = 120_000): Promise<RunResult> {
  await checkRoute(node);
  const [cmd, ...args] = [...node.scp, localFile, `${node.addr}:${remotePath}`];
  const r = await execa(cmd!, args, { reject: false, timeout: timeoutMs, forceKillAfterDelay: 2000, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? (r.timedOut ? 124 : 255), stdout: String(r.stdout), stderr: String(r.stderr), timedOut: Boolean(r.timedOut) };
}

/** The lab may have gone since the node was resolved: that is the lab's state (409), never a crash. */
async function checkRoute(node: SshNode): Promise<void> {
  const state = readState();
  if (!state) throw new NodeError(409, `no lab is up any more: cannot reach ${node.name}`);
  try {
    await assertLabRoute(state.nodes[0]!.ns, node.addr, parseSubnet(state.subnet));
  } catch (e) {
    throw new NodeError(409, (e as Error).message);
  }
}

/** "ssh n2 (10.77.0.12) failed: ..." with ssh's own words, for logs and errors. */
export function describeFailure(node: SshNode, what: string, r: RunResult): string {
  const why = r.timedOut ? 'timed out' : r.exitCode === 255 ? 'ssh failed' : `exit ${r.exitCode}`;
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join(' | ');
  return `${what} on ${node.name} (${node.addr}): ${why}${text ? `: ${text}` : ''}`;
}
