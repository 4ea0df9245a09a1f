// lab status: each node's namespace, sshd and dicomd, checked by PID identity and listeners.
import { isProgram } from '../daemon/proc.js';
import { tcpListening } from '../daemon/socket.js';
import { type NodeCapacity, readNodeCapacity } from './cgroup.js';
import { BRIDGE_NS } from './config.js';
import { nodeDicomdHealth } from './dicomd.js';
import { listLabNamespaces } from './net.js';
import { type LabState, readState } from './state.js';

export interface NodeStatus {
  name: string;
  ns: string;
  addr: string;
  nsPresent: boolean;
  sshdPid: number;
  sshdAlive: boolean;
  sshdListening: boolean;
  dicomdPid: number | null;
  dicomdAlive: boolean;
  dicomdListening: boolean;
  /** the node's cpuset / CPU quota as the kernel has them; null when not capped */
  capacity: NodeCapacity | null;
  healthy: boolean;
}

export interface LabStatus {
  up: boolean;
  healthy: boolean;
  subnet: string | null;
  createdAt: string | null;
  dicomd: boolean;
  bridgePresent: boolean;
  nodes: NodeStatus[];
  /** lab namespaces that exist but the state file does not mention (left by a crash) */
  strayNamespaces: string[];
  sshConfig: string | null;
  hostfile: string | null;
}

export async function labStatus(): Promise<LabStatus> {
  const present = new Set(await listLabNamespaces());
  const state: LabState | null = readState();
  const nodes: NodeStatus[] = (state?.nodes ?? []).map((n) => {
    const nsPresent = present.has(n.ns);
    const sshdAlive = isProgram(n.sshdPid, 'sshd');
    const sshdListening = sshdAlive && tcpListening(n.addr, 22, n.sshdPid);
    const d = nodeDicomdHealth(n.dicomdPid);
    const healthy = nsPresent && sshdAlive && sshdListening && (!state!.dicomd || (d.alive && d.listening));
    return { name: n.name, ns: n.ns, addr: n.addr, nsPresent, sshdPid: n.sshdPid, sshdAlive, sshdListening, dicomdPid: n.dicomdPid, dicomdAlive: d.alive, dicomdListening: d.listening, capacity: readNodeCapacity(Number(n.name.slice(1))), healthy };
  });
  const known = new Set([...(state?.nodes ?? []).map((n) => n.ns), ...(state ? [BRIDGE_NS] : [])]);
  const strayNamespaces = [...present].filter((ns) => !known.has(ns)).sort();
  const bridgePresent = present.has(BRIDGE_NS);
  return {
    up: state !== null,
    healthy: state !== null && bridgePresent && nodes.length > 0 && nodes.every((n) => n.healthy) && strayNamespaces.length === 0,
    subnet: state?.subnet ?? null,
    createdAt: state?.createdAt ?? null,
    dicomd: state?.dicomd ?? false,
    bridgePresent,
    nodes,
    strayNamespaces,
    sshConfig: state?.sshConfig ?? null,
    hostfile: state?.hostfile ?? null,
  };
}
