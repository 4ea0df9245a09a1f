// dicomd on this host (a real node, or a developer's machine): start it detached with a pidfile,
// stop it by that PID after checking /proc/PID/cmdline, report whether @dicomd answers.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as paths from '../paths.js';
import { abstractListening } from './socket.js';
import { isProgram, pidAlive, spawnDetached, stopPids, tail, waitFor } from './proc.js';

export const DEFAULT_PORT = 7470;
export const DEFAULT_SOCKET = 'dicomd';
export const DICOMD_MISSING = 'dicomd not built; run: dicomctl btl build';

export class DaemonError extends Error {
  override name = 'DaemonError';
}

export interface DaemonOptions {
  /** dicomd binary; default paths.dicomdBin */
  bin?: string;
  /** this node's address (MOSIX names nodes by IP); default $DICOM_NODE_ADDR or the first global IPv4 */
  nodeAddr?: string;
  port?: number;
  /** abstract socket name without '@'; default "dicomd" */
  name?: string;
  /** directory for dicomd.pid, dicomd.log, dicomd.out; default paths.stateDir */
  dir?: string;
  startTimeoutMs?: number;
  stopGraceMs?: number;
}

export interface DaemonStatus {
  running: boolean;
  pid: number | null;
  /** a pidfile whose PID is dead or is not dicomd */
  stalePidfile: boolean;
  listening: boolean;
  socket: string;
  pidFile: string;
  logFile: string;
  outFile: string;
  bin: string;
}

function files(o: DaemonOptions) {
  const dir = o.dir ?? paths.stateDir;
  return {
    dir,
    pidFile: path.join(dir, 'dicomd.pid'),
    /** how the running dicomd was started (socket name, address, port, binary) */
    infoFile: path.join(dir, 'dicomd.json'),
    logFile: path.join(dir, 'dicomd.log'),
    outFile: path.join(dir, 'dicomd.out'),
  };
}

function readPid(pidFile: string): number | null {
  try {
    const n = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : null;
  } catch {
    return null;
  }
}

/** Throws DaemonError unless bin is an executable file (missing means: not built yet). */
export function assertExecutable(bin: string): void {
  if (!existsSync(bin)) throw new DaemonError(`${DICOMD_MISSING} (${bin} is missing)`);
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new DaemonError(`${bin} is not executable`);
  }
}

/** The first global-scope IPv4 address of this host, from `ip -4 -j addr`. */
/**
 * Without --node-addr a host daemon serves this machine only (loopback), so a
 * single-machine job never puts traffic on a real interface. Real nodes set
 * DICOM_NODE_ADDR (see dicomd.service) or pass --node-addr.
 */
export async function defaultNodeAddr(): Promise<string> {
  return process.env.DICOM_NODE_ADDR ?? '127.0.0.1';
}

interface StartInfo {
  pid: number;
  bin: string;
  nodeAddr: string;
  port: number;
  name: string;
  startedAt: string;
}

function readInfo(infoFile: string, pid: number | null): StartInfo | null {
  try {
    const i = JSON.parse(readFileSync(infoFile, 'utf8')) as StartInfo;
    return i.pid === pid ? i : null;
  } catch {
    return null;
  }
}

export function daemonStatus(o: DaemonOptions = {}): DaemonStatus & { nodeAddr: string | null; port: number | null; startedAt: string | null } {
  const f = files(o);
  const pid = readPid(f.pidFile);
  const info = readInfo(f.infoFile, pid);
  const name = o.name ?? info?.name ?? DEFAULT_SOCKET;
  const running = isProgram(pid, 'dicomd');
  return {
    running,
    pid: running ? pid : null,
    stalePidfile: pid !== null && !running,
    listening: running && pid !== null && abstractListening(name, pid),
    socket: `@${name}`,
    pidFile: f.pidFile,
    logFile: f.logFile,
    outFile: f.outFile,
    bin: info?.bin ?? o.bin ?? paths.dicomdBin,
    nodeAddr: running ? (info?.nodeAddr ?? null) : null,
    port: running ? (info?.port ?? null) : null,
    startedAt: running ? (info?.startedAt ?? null) : null,
  };
}

/** Starts dicomd unless it already runs; resolves once @name is listening. */
export async function startDaemon(o: DaemonOptions = {}): Promise<ReturnType<typeof daemonStatus> & { alreadyRunning: boolean }> {
  const f = files(o);
  const bin = path.resolve(o.bin ?? paths.dicomdBin);
  const name = o.name ?? DEFAULT_SOCKET;
  const before = daemonStatus(o);
  if (before.running) return { ...before, alreadyRunning: true };
  assertExecutable(bin);
  if (before.stalePidfile) rmSync(f.pidFile, { force: true });
  rmSync(f.infoFile, { force: true });
  mkdirSync(f.dir, { recursive: true });
  const nodeAddr = o.nodeAddr ?? (await defaultNodeAddr());
  const port = o.port ?? DEFAULT_PORT;
  const argv = [bin, '--node-addr', nodeAddr, '--port', String(port), '--name', name, '--log', f.logFile];
  const pid = spawnDetached(argv, { outFile: f.outFile });
  writeFileSync(f.pidFile, `${pid}\n`);
  const info: StartInfo = { pid, bin, nodeAddr, port, name, startedAt: new Date().toISOString() };
  writeFileSync(f.infoFile, JSON.stringify(info, null, 2) + '\n');
  const ok = await waitFor(() => !pidAlive(pid) || abstractListening(name, pid), o.startTimeoutMs ?? 5000, 10);
  if (!ok || !pidAlive(pid)) {
    if (pidAlive(pid)) await stopPids([pid], 500);
    rmSync(f.pidFile, { force: true });
    rmSync(f.infoFile, { force: true });
    const why = ok ? 'exited during startup' : `did not listen on @${name} within ${o.startTimeoutMs ?? 5000} ms`;
    throw new DaemonError(`dicomd ${why}\n--- ${f.outFile}\n${tail(f.outFile)}\n--- ${f.logFile}\n${tail(f.logFile)}`);
  }
  return { ...daemonStatus(o), alreadyRunning: false };
}

/** Stops the dicomd named by the pidfile. Never signals a PID whose cmdline is not dicomd. */
export async function stopDaemon(o: DaemonOptions = {}): Promise<{ stopped: boolean; pid: number | null; killed: boolean }> {
  const f = files(o);
  const pid = readPid(f.pidFile);
  if (pid === null) return { stopped: false, pid: null, killed: false };
  if (!isProgram(pid, 'dicomd')) {
    rmSync(f.pidFile, { force: true });
    rmSync(f.infoFile, { force: true });
    return { stopped: false, pid, killed: false };
  }
  const r = await stopPids([pid], o.stopGraceMs ?? 3000);
  rmSync(f.pidFile, { force: true });
  rmSync(f.infoFile, { force: true });
  return { stopped: true, pid, killed: r.killed.length > 0 };
}
