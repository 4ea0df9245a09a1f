// Running things in the lab: labExec (a command inside a node), labSsh (node to node, route
// checked first) and labMpirun (mpirun from inside n1, like a login node, ranks spread by node).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { isProgram, readCmdline, stopPids } from '../daemon/proc.js';
import { LabError, SLOTS_PER_NODE, nodeNs, parseSubnet } from './config.js';
import { joinNodeCgroups } from './cgroup.js';
import { nsPids } from './net.js';
import { assertLabRoute, assertLabRoutes } from './route.js';
import { run } from './sh.js';
import { type LabNode, type LabState, requireState } from './state.js';

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  argv: string[];
}

export interface LabExecOptions {
  timeoutMs?: number;
  /** extra environment for the command */
  env?: Record<string, string>;
  input?: string;
  /** grace between SIGTERM and SIGKILL of the process group on timeout */
  killGraceMs?: number;
}

function node(state: LabState, k: number): LabNode {
  const n = state.nodes[k - 1];
  if (!Number.isInteger(k) || !n) throw new LabError(`no lab node ${k}; the lab has nodes 1..${state.nodes.length}`);
  return n;
}

/**
 * argv prefix that enters node k: its cgroups when its capacity is capped, its netns, and its
 * hostname when the lab uses UTS namespaces.
 */
export function enterNode(n: LabNode): string[] {
  const ns = [...joinNodeCgroups(Number(n.name.slice(1))), 'ip', 'netns', 'exec', n.ns];
  return n.hostname ? [...ns, 'unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', n.hostname] : ns;
}

/**
 * Runs argv inside lab node k (1-based), in its own process group, bounded by timeoutMs (the whole
 * group gets SIGTERM, then SIGKILL). Never throws for a non-zero exit.
 */
export async function labExec(k: number, argv: string[], opts: LabExecOptions = {}): Promise<ExecResult> {
  const state = requireState();
  const full = [...enterNode(node(state, k)), ...argv];
  const t0 = performance.now();
  const sub = execa(full[0]!, full.slice(1), {
    reject: false,
    detached: true,
    env: { ...process.env, ...opts.env },
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    maxBuffer: 256 * 1024 * 1024,
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    const pgid = sub.pid;
    if (!pgid) return;
    const sig = (s: NodeJS.Signals) => {
      try {
        process.kill(-pgid, s);
      } catch {
        /* group gone */
      }
    };
    sig('SIGTERM');
    setTimeout(() => sig('SIGKILL'), opts.killGraceMs ?? 3000).unref();
  }, opts.timeoutMs ?? 60_000);
  const r = await sub;
  clearTimeout(timer);
  return {
    exitCode: r.exitCode ?? (r.signal ? 128 : -1),
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    durationMs: performance.now() - t0,
    timedOut,
    argv: full,
  };
}

/** ssh from node `from` to node `to` with the lab's client config, after the route check. */
export async function labSsh(from: number, to: number, argv: string[], opts: LabExecOptions = {}): Promise<ExecResult> {
  const state = requireState();
  const target = node(state, to);
  await assertLabRoute(node(state, from).ns, target.addr, parseSubnet(state.subnet));
  return labExec(from, ['ssh', '-F', state.sshConfig, target.addr, ...argv], opts);
}

let pkglibdir: string | undefined;
/** Open MPI's own component directory (`ompi_info --path pkglibdir`). */
export async function ompiPkglibdir(): Promise<string> {
  if (pkglibdir) return pkglibdir;
  const r = await run(['ompi_info', '--parsable', '--path', 'pkglibdir']);
  const m = /path:pkglibdir:(.+)/.exec(r.stdout);
  if (!m) throw new LabError(`cannot parse ompi_info --path pkglibdir: ${r.stdout.trim()}`);
  pkglibdir = m[1]!.trim();
  return pkglibdir;
}

export interface LabMpirunOptions extends Omit<LabExecOptions, 'input'> {
  np: number;
  /** 1-based lab nodes to run on; default every node */
  nodes?: number[];
  program: string;
  args?: string[];
  /** e.g. 'self,dicom' or 'self,tcp' (default) */
  btl?: string;
  /** a directory holding mca_btl_dicom.so; Open MPI's own pkglibdir is appended */
  componentPath?: string;
  /** more --mca NAME VALUE pairs */
  mca?: Record<string, string | number>;
  /** env is also exported to every rank with -x */
  mapBy?: string;
  /** more mpirun options, placed before the program */
  mpirunArgs?: string[];
}

/** The mpirun argv (without the namespace prefix). Pure, so it can be inspected and tested. */
export function buildMpirunArgv(state: LabState, o: LabMpirunOptions, systemPkglibdir: string): string[] {
  if (!Number.isInteger(o.np) || o.np < 1) throw new LabError(`np must be a positive integer, got ${String(o.np)}`);
  const nodes = (o.nodes ?? state.nodes.map((_, i) => i + 1)).map((k) => node(state, k));
  const where =
    o.nodes === undefined
      ? ['--hostfile', state.hostfile]
      : ['--host', nodes.map((n) => `${n.addr}:${SLOTS_PER_NODE}`).join(',')];
  const mca = (k: string, v: string | number) => ['--mca', k, String(v)];
  const argv = [
    'mpirun',
    ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
    '--oversubscribe',
    ...where,
    '-np', String(o.np),
    '--map-by', o.mapBy ?? 'node',
    '--bind-to', 'none',
    ...mca('plm_rsh_agent', `ssh -F ${state.sshConfig}`),
    ...mca('oob_tcp_if_include', state.subnet),
    ...mca('btl_tcp_if_include', state.subnet),
    ...mca('btl', o.btl ?? 'self,tcp'),
    ...(o.componentPath ? mca('mca_base_component_path', `${o.componentPath}:${systemPkglibdir}`) : []),
    ...Object.entries(o.mca ?? {}).flatMap(([k, v]) => mca(k, v)),
    ...Object.keys(o.env ?? {}).flatMap((k) => ['-x', k]),
    ...(o.mpirunArgs ?? []),
    o.program,
    ...(o.args ?? []),
  ];
  return argv;
}

/** Kills what a timed-out job left in the nodes: orted/prted and the program, by their own PIDs. */
async function sweepJob(state: LabState, nodes: LabNode[], program: string): Promise<number[]> {
  const names = new Set(['orted', 'prted', path.basename(program)]);
  const keep = new Set(state.nodes.flatMap((n) => [n.sshdPid, n.dicomdPid ?? 0]));
  const victims: number[] = [];
  for (const n of nodes) {
    for (const pid of await nsPids(n.ns)) {
      if (keep.has(pid)) continue;
      const a0 = readCmdline(pid)?.[0];
      if (a0 && names.has(path.basename(a0.split(' ')[0]!)) && !isProgram(pid, 'sshd')) victims.push(pid);
    }
  }
  await stopPids(victims, 1000);
  return victims;
}

/**
 * mpirun inside node 1 across the lab. Every node's route is checked first; the run is bounded by
 * timeoutMs, and on timeout leftover orted/ranks in the nodes are stopped by PID.
 */
export async function labMpirun(o: LabMpirunOptions): Promise<ExecResult> {
  const state = requireState();
  const nodes = (o.nodes ?? state.nodes.map((_, i) => i + 1)).map((k) => node(state, k));
  await assertLabRoutes(nodeNs(1), [...new Set([state.nodes[0]!.addr, ...nodes.map((n) => n.addr)])], parseSubnet(state.subnet));
  if (o.componentPath && !existsSync(o.componentPath)) {
    // a missing directory in mca_base_component_path silently hides every plugin component
    throw new LabError(`component path ${o.componentPath} does not exist`);
  }
  const argv = buildMpirunArgv(state, o, o.componentPath ? await ompiPkglibdir() : '');
  const r = await labExec(1, argv, o);
  if (r.timedOut) await sweepJob(state, [state.nodes[0]!, ...nodes], o.program);
  return r;
}
