// The relay check of a kernel cell (`dicomctl kernel test --relay`): two qemu
// TCG guests of Debian's kernel are two nodes. Each loads the dicom_mbox
// module and runs a dicomd that holds /dev/dicom/relay; a process on each
// sends the other messages of 0 B .. 1 MiB with libdicom's kernel backend
// required, so every message leaves one mailbox, crosses both dicomds' relays
// and lands in the other mailbox (btl-dicom/tests/relay_peer.c,
// kernel-patches/guest/relay-init). Then node 0 runs a two-rank MPI job over
// self,dicom with one rank on each node, launched over ssh (a key made for the
// run), whose messages must all have crossed the relay too.
//
// The guests boot the MPI guest's cached bookworm root with an overlay of
// what the host built (the module, the image's e1000 driver, dicomd and
// relay_peer under ASan+UBSan). Their only network is a qemu socket link:
// one qemu listens on 127.0.0.1 and the other connects there, so the guests'
// frames never leave this machine's loopback, and /init refuses to send if
// the guest has any route beyond that link.
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { BUSYBOX, type BootResult, bootGuest } from './guest.js';
import { BUILD_LOCK, buildHostParts, ensureGuestRoot, type HostParts, rootArchive, sanitizerLibs, streamed, writeOverlay } from './mpiguest.js';
import { type Progress } from './packages.js';
import { patchesDir } from './render.js';
import { KernelError } from './versions.js';
import { cBuildDir, root } from '../paths.js';

const GUEST_MEMORY_MB = 2048;
/** The guests' own link; it exists only inside them (the host's lab uses 10.77.0.0/24). */
const NODES = ['10.79.0.1', '10.79.0.2'] as const;
/** qemu's socket netdev listens here: loopback, checked before the second guest connects. */
const LINK_HOST = '127.0.0.1';

export interface RelayFigures {
  /** relay_peer's exchange, seconds, per guest */
  exchangeSeconds: number[];
  /** refusal of a pid without a mailbox until the stream left it, ms (guest 0) */
  refusedMs?: number;
  /** each dicomd's relay counters, parsed from "# dicomd relay: ..." */
  relay: Record<string, number>[];
}

export interface RelayGuestsResult extends BootResult {
  guests: BootResult[];
  figures: RelayFigures;
  buildSeconds: number;
}

interface RelayParts {
  dicomd: string;
  relayPeer: string;
  sanitizerLibs: string[];
  /** the MPI guest's: mca_btl_dicom.so and pingpong */
  mpi: HostParts;
}

async function buildParts(progress: Progress): Promise<RelayParts> {
  const mpi = await buildHostParts(progress);
  const asanDir = path.join(cBuildDir, 'asan');
  const dicomd = path.join(asanDir, 'dicomd');
  const relayPeer = path.join(asanDir, 'tests', 'relay_peer');
  progress('  building dicomd and relay_peer under ASan+UBSan');
  await streamed(
    'flock',
    ['-w', '1800', BUILD_LOCK, 'nice', '-n', '10', 'make', '-C', path.join(root, 'btl-dicom'), '-j2', `BUILD=${asanDir}`, 'SAN=1', dicomd, relayPeer],
    progress,
    'building the relay guests’ programs',
  );
  return { dicomd, relayPeer, sanitizerLibs: await sanitizerLibs(relayPeer), mpi };
}

/** A key for root, made for this run: node 0's mpirun starts the rank on node 1 over ssh. */
async function sshKey(outDir: string): Promise<string> {
  const key = path.join(outDir, 'relay-ssh-key');
  await rm(key, { force: true });
  await rm(`${key}.pub`, { force: true });
  const r = await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'dicom relay guests', '-f', key], { reject: false });
  if (r.exitCode !== 0) throw new KernelError(`ssh-keygen failed: ${r.stderr.trim()}`);
  await writeFile(path.join(outDir, 'relay-ssh-config'), 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n');
  return key;
}

async function overlay(outDir: string, ko: string, nic: string, parts: RelayParts): Promise<string> {
  const dir = path.join(outDir, 'relay-overlay');
  await rm(dir, { recursive: true, force: true });
  const opt = path.join(dir, 'opt/dicom');
  const key = await sshKey(outDir);
  const ssh = path.join(dir, 'root/.ssh');
  const copies: [string, string][] = [
    [BUSYBOX, path.join(opt, 'busybox')],
    [ko, path.join(opt, 'dicom_mbox.ko')],
    [nic, path.join(opt, 'e1000.ko')],
    [parts.dicomd, path.join(opt, 'dicomd')],
    [parts.relayPeer, path.join(opt, 'relay_peer')],
    [parts.mpi.btl, path.join(opt, 'btl', 'mca_btl_dicom.so')],
    [parts.mpi.pingpong, path.join(opt, 'pingpong')],
    [key, path.join(ssh, 'id_ed25519')],
    [`${key}.pub`, path.join(ssh, 'authorized_keys')],
    [path.join(outDir, 'relay-ssh-config'), path.join(ssh, 'config')],
    ...parts.sanitizerLibs.map((l): [string, string] => [l, path.join(dir, 'usr/lib/x86_64-linux-gnu', path.basename(l))]),
    [path.join(patchesDir, 'guest', 'relay-init'), path.join(dir, 'init')],
  ];
  return writeOverlay(dir, copies, path.join(outDir, 'relay-overlay.cpio'), 'the relay guests');
}

async function listening(port: number): Promise<boolean> {
  const r = await execa('ss', ['-Hltn', `sport = :${port}`], { reject: false });
  return r.stdout.includes(`${LINK_HOST}:${port}`);
}

/** A port on loopback nobody listens on; qemu then owns it for the guests' link. */
async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    if (!(await listening(port))) return port;
  }
  throw new KernelError('no free port on 127.0.0.1 for the guests’ link');
}

async function waitListening(port: number, seconds: number): Promise<boolean> {
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    if (await listening(port)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

export function relayFigures(guests: BootResult[]): RelayFigures {
  const figures: RelayFigures = { exchangeSeconds: [], relay: [] };
  for (const g of guests) {
    const ex = g.tap.lines.find((l) => /^ok \d+ - \d+ messages .* each way/.test(l));
    const s = ex && /\(([\d.]+) s\)$/.exec(ex)?.[1];
    if (s) figures.exchangeSeconds.push(Number(s));
    const ref = g.tap.lines.find((l) => /refused by its dicomd/.test(l));
    const ms = ref && / in (-?\d+) ms$/.exec(ref)?.[1];
    if (ms) figures.refusedMs = Number(ms);
    const relay = g.tap.lines.find((l) => l.startsWith('# dicomd relay: '));
    if (relay) figures.relay.push(Object.fromEntries([...relay.matchAll(/(\w+) (-?\d+)/g)].map((m) => [m[1]!, Number(m[2])])));
  }
  return figures;
}

/** Builds, boots and checks the two guests; ko is the module the cell built. */
export async function runRelayGuests(vmlinuz: string, ko: string, nic: string, outDir: string, timeoutSeconds: number, progress: Progress): Promise<RelayGuestsResult> {
  progress('relay guests: two nodes in qemu TCG joined by a socket link on loopback');
  const rootCpio = await rootArchive(await ensureGuestRoot(progress), progress);
  const t1 = performance.now();
  const parts = await buildParts(progress);
  const buildSeconds = (performance.now() - t1) / 1000;
  const ov = await overlay(outDir, ko, nic, parts);
  const initrd = path.join(outDir, 'relay-initrd.cpio');
  await execa('bash', ['-c', 'cat "$A" "$B" > "$OUT"'], { env: { A: rootCpio, B: ov, OUT: initrd } });
  const port = await freePort();
  const boot = (role: 0 | 1, net: string): Promise<BootResult> => {
    const log = (line: string) => progress(line.replace(/^( *)/, `$1[node ${role}] `));
    return bootGuest(vmlinuz, initrd, path.join(outDir, `relay-boot-${role}.log`), timeoutSeconds, log, {
      memoryMb: GUEST_MEMORY_MB,
      net: ['-netdev', `socket,id=link,${net}`, '-device', `e1000,netdev=link,mac=52:54:00:dc:00:0${role + 1}`],
      append: `dicom_role=${role} dicom_self=${NODES[role]} dicom_peer=${NODES[1 - role]}`,
    });
  };
  progress(`  node 0 (${NODES[0]}) listens for the link on ${LINK_HOST}:${port}`);
  const first = boot(0, `listen=${LINK_HOST}:${port}`);
  let guests: BootResult[];
  try {
    if (!(await waitListening(port, 30))) {
      await first;
      throw new KernelError(`qemu of node 0 never listened on ${LINK_HOST}:${port} for the guests’ link`);
    }
    progress(`  node 1 (${NODES[1]}) connects to it`);
    guests = await Promise.all([first, boot(1, `connect=${LINK_HOST}:${port}`)]);
  } finally {
    await rm(initrd, { force: true }); // 150 MB, remade in seconds
  }
  const figures = relayFigures(guests);
  const problems = guests.flatMap((g, i) => (g.ok ? [] : [`node ${i}: ${g.summary}`, ...g.details.map((d) => `  ${d}`)]));
  const passed = guests.reduce((a, g) => a + g.tap.passed, 0);
  const planned = guests.reduce((a, g) => a + g.tap.planned, 0);
  const summary =
    `${passed}/${planned} guest checks passed on 2 nodes` +
    (figures.exchangeSeconds.length ? `, exchange ${figures.exchangeSeconds.map((s) => s.toFixed(1)).join(' / ')} s` : '') +
    (figures.refusedMs !== undefined ? `, refusal ${figures.refusedMs} ms` : '') +
    ` (qemu ${guests.map((g) => g.seconds.toFixed(1)).join(' / ')} s)`;
  const lines = guests.flatMap((g, i) => [`# node ${i}`, ...g.tap.lines]);
  const tap = { planned, passed, failed: guests.reduce((a, g) => a + g.tap.failed, 0), skipped: guests.reduce((a, g) => a + g.tap.skipped, 0), lines };
  return {
    ok: problems.length === 0,
    summary,
    details: problems,
    tap,
    timings: { ...guests[0]!.timings, totalSeconds: Math.max(...guests.map((g) => g.timings.totalSeconds)) },
    log: guests[0]!.log,
    seconds: Math.max(...guests.map((g) => g.seconds)),
    guests,
    figures,
    buildSeconds,
  };
}
