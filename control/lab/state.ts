// The lab's record of itself: stateDir/lab/state.json. Teardown does not depend on it (it
// enumerates namespaces), so a lost or stale state file never leaves anything behind.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { NodeCapacity } from './cgroup.js';
import { LabError, labDir, stateFile } from './config.js';

export interface LabNode {
  /** "n1" */
  name: string;
  /** "dicom-n1" */
  ns: string;
  /** "10.77.0.11" */
  addr: string;
  sshdPid: number;
  dicomdPid: number | null;
  /** hostname seen inside the node (sshd runs under unshare --uts), or null if shared with the host */
  hostname: string | null;
  dir: string;
  /** the node's cpuset and CPU quota when `lab up --cpus/--cpu-quota` capped it */
  capacity?: NodeCapacity;
}

export interface LabState {
  subnet: string;
  bridgeNs: string;
  nodes: LabNode[];
  /** `ssh -F` client config that only reaches lab addresses */
  sshConfig: string;
  hostfile: string;
  /** the lab's client private key */
  identity: string;
  dicomd: boolean;
  /** the dicomds' gossip settings (absent in a lab made before gossip) */
  gossip?: LabGossip;
  createdAt: string;
}

export interface LabGossip {
  periodMs: number;
  window: number;
  maxAgeMs: number;
}

export function readState(): LabState | null {
  try {
    return JSON.parse(readFileSync(stateFile(), 'utf8')) as LabState;
  } catch {
    return null;
  }
}

export function writeState(s: LabState): void {
  mkdirSync(labDir(), { recursive: true });
  const tmp = `${stateFile()}.tmp`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n');
  renameSync(tmp, stateFile());
}

/** The state that must exist for commands that use a running lab. */
export function requireState(): LabState {
  const s = readState();
  if (!s) throw new LabError('no lab is up (no state file); run: dicomctl lab up --nodes N');
  return s;
}

export function removeLabDir(): boolean {
  const had = existsSync(labDir());
  rmSync(labDir(), { recursive: true, force: true });
  return had;
}
