// The lab (DESIGN.md §7): namespaces + bridge, sshd/dicomd per node, the routing safety rule,
// mpirun across nodes, and teardown that survives a crash. Also dicomd start/stop on this host.
// Lab tests need root; without it they are skipped with a message. They never touch a lab that
// someone else has up and healthy.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import * as paths from '../control/paths.js';
import {
  LabError,
  assertLabRoute,
  buildMpirunArgv,
  labDown,
  labExec,
  labMpirun,
  labSsh,
  labStatus,
  listLabNamespaces,
  nodeAddr,
  nsPids,
  parseSubnet,
  readState,
  validateNodeCount,
  type LabState,
} from '../control/lab/index.js';
import { overlaps, parseCidr, stateFile } from '../control/lab/config.js';
import { pidAlive, readCmdline, waitFor } from '../control/daemon/proc.js';
import { daemonStatus, startDaemon, stopDaemon } from '../control/daemon/daemon.js';

const dicomctl = path.join(paths.root, 'bin', 'dicomctl');
const work = path.join(paths.buildDir, 'lab-test');
const isRoot = process.getuid?.() === 0;

const ctl = (args: string[], env: Record<string, string> = {}) =>
  execa(dicomctl, args, { reject: false, timeout: 120_000, env: { ...process.env, ...env } });

// ---- build helpers (fake dicomd until the real one is built; MPI hello) ------------------------

const FAKE_DICOMD_C = String.raw`
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
/* Stands in for dicomd in lab tests: same CLI, listens on the abstract socket @NAME. */
int main(int argc, char **argv) {
	const char *name = "dicomd", *log = NULL, *addr = "?";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
		else if (!strcmp(argv[i], "--log") && i + 1 < argc) log = argv[++i];
		else if (!strcmp(argv[i], "--node-addr") && i + 1 < argc) addr = argv[++i];
		else if ((!strcmp(argv[i], "--port") || !strcmp(argv[i], "--peers") || !strncmp(argv[i], "--gossip-", 9)) && i + 1 < argc) ++i;
		else if (!strcmp(argv[i], "--help")) { puts("fake dicomd"); return 0; }
		else { fprintf(stderr, "fake dicomd: unknown option %s\n", argv[i]); return 2; }
	}
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	memcpy(a.sun_path + 1, name, n);
	if (bind(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + n) || listen(s, 16)) {
		perror("fake dicomd: bind");
		return 1;
	}
	if (log) { FILE *f = fopen(log, "a"); if (f) { fprintf(f, "fake dicomd %s on @%s\n", addr, name); fclose(f); } }
	for (;;) { int c = accept(s, NULL, NULL); if (c >= 0) close(c); }
}
`;

const MPI_HELLO_C = String.raw`
#include <mpi.h>
#include <stdio.h>
/* Each rank names its host, then a ring exchange proves the BTL carries traffic between nodes. */
int main(int argc, char **argv) {
	int rank, size, len, got = -1;
	char host[MPI_MAX_PROCESSOR_NAME];
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Get_processor_name(host, &len);
	MPI_Sendrecv(&rank, 1, MPI_INT, (rank + 1) % size, 7, &got, 1, MPI_INT, (rank + size - 1) % size, 7,
	             MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	printf("hello rank %d of %d on %s ring %s\n", rank, size, host, got == (rank + size - 1) % size ? "ok" : "BAD");
	MPI_Finalize();
	return 0;
}
`;

async function compile(name: string, source: string, cc: string): Promise<string> {
  mkdirSync(work, { recursive: true });
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  const src = path.join(dir, `${name}.c`);
  const bin = path.join(dir, name === 'fake-dicomd' ? 'dicomd' : name);
  writeFileSync(src, source);
  await execa(cc, ['-O2', '-Wall', '-o', bin, src], { timeout: 60_000 });
  return bin;
}

// ---- which dicomd the lab uses, and whether we may run lab tests at all ----------------------

/** real dicomd when it is built, else a fake with the same CLI; DICOM_LAB_TEST_DICOMD=real|fake|none forces. */
const dicomdMode = (process.env.DICOM_LAB_TEST_DICOMD ?? (existsSync(paths.dicomdBin) ? 'real' : 'fake')) as 'real' | 'fake' | 'none';

async function whyNotLab(): Promise<string | null> {
  if (!isRoot) return 'the lab needs root (network namespaces, sshd); run the tests as root';
  for (const tool of ['ip', '/usr/sbin/sshd', 'ssh', 'mpirun', 'mpicc']) {
    if ((await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).exitCode !== 0) return `${tool} is not installed`;
  }
  const s = await labStatus();
  if (s.up && s.healthy) return `a healthy lab is already up (created ${s.createdAt}); not touching it. Run "dicomctl lab down" first`;
  return null;
}
const labSkip = await whyNotLab();
if (labSkip) console.warn(`lab tests skipped: ${labSkip}`);
const labTest = labSkip ? test.serial.skip : test.serial;

let dicomdBin: string | undefined;
let helloBin: string | undefined;
let created = false;

test.before(async () => {
  if (labSkip) return;
  await labDown(); // debris from a crashed run (a healthy lab was ruled out above)
  if (dicomdMode === 'fake') dicomdBin = await compile('fake-dicomd', FAKE_DICOMD_C, 'cc');
  if (dicomdMode === 'real') dicomdBin = paths.dicomdBin;
  helloBin = await compile('mpi_hello', MPI_HELLO_C, 'mpicc');
});

test.after.always(async () => {
  if (labSkip || !created) return;
  for (const ns of ['dicom-n98', 'dicom-n99']) await execa('ip', ['netns', 'delete', ns], { reject: false });
  await labDown();
});

// ---- pure parts (no root) ----------------------------------------------------------------------

test('subnet math: node addresses, overlap, node count', (t) => {
  const s = parseSubnet('10.77.0.0/24');
  t.is(nodeAddr(1, s), '10.77.0.11');
  t.is(nodeAddr(16, s), '10.77.0.26');
  t.is(parseSubnet('10.77.0.99/24').cidr, '10.77.0.0/24');
  t.true(overlaps(s, parseSubnet('10.0.0.0/8')));
  t.true(overlaps(s, parseCidr('10.77.0.200/32')));
  t.true(overlaps(s, parseCidr('0.0.0.0/0')));
  t.false(overlaps(s, parseSubnet('10.78.0.0/24')));
  t.false(overlaps(s, parseSubnet('192.0.2.2/24')));
  t.throws(() => parseSubnet('10.77.0.0/30'), { instanceOf: LabError });
  t.throws(() => validateNodeCount(0), { message: /1 to 16 nodes/ });
  t.throws(() => validateNodeCount(17), { message: /1 to 16 nodes/ });
  t.notThrows(() => validateNodeCount(16));
});

test('mpirun argv: lab ssh agent, subnet-bound tcp, bind-to none, map-by node, component path', (t) => {
  const state: LabState = {
    subnet: '10.77.0.0/24',
    bridgeNs: 'dicom-lab-br',
    nodes: [1, 2, 3].map((k) => ({ name: `n${k}`, ns: `dicom-n${k}`, addr: `10.77.0.${10 + k}`, sshdPid: 0, dicomdPid: null, hostname: `n${k}`, dir: '/x' })),
    sshConfig: '/s/ssh_config',
    hostfile: '/s/hostfile',
    identity: '/k/id',
    dicomd: false,
    createdAt: '',
  };
  const a = buildMpirunArgv(state, { np: 3, program: '/bin/true', btl: 'self,dicom', componentPath: '/c', env: { FOO: '1' } }, '/sys/pkglib');
  const after = (flag: string) => a[a.indexOf(flag) + 1];
  t.is(a[0], 'mpirun');
  t.is(after('--hostfile'), '/s/hostfile');
  t.is(after('--map-by'), 'node');
  t.is(after('--bind-to'), 'none');
  t.is(after('-np'), '3');
  t.is(after('-x'), 'FOO');
  const mca = (k: string) => a[a.findIndex((x, i) => x === k && a[i - 1] === '--mca') + 1];
  t.is(mca('plm_rsh_agent'), 'ssh -F /s/ssh_config');
  t.is(mca('oob_tcp_if_include'), '10.77.0.0/24');
  t.is(mca('btl_tcp_if_include'), '10.77.0.0/24');
  t.is(mca('btl'), 'self,dicom');
  t.is(mca('mca_base_component_path'), '/c:/sys/pkglib');
  t.is(a.at(-1), '/bin/true');
  const b = buildMpirunArgv(state, { np: 2, nodes: [2, 3], program: 'x' }, '');
  t.is(b[b.indexOf('--host') + 1], '10.77.0.12:8,10.77.0.13:8');
  t.false(b.includes('mca_base_component_path'));
  t.throws(() => buildMpirunArgv(state, { np: 1, nodes: [4], program: 'x' }, ''), { message: /no lab node 4/ });
});

// ---- dicomd on this host (fake binary with the real CLI; needs only a C compiler) -------------

test.serial('daemon start/status/stop by pidfile, and a stale pidfile is never signalled', async (t) => {
  const bin = dicomdMode === 'real' ? paths.dicomdBin : await compile('fake-dicomd', FAKE_DICOMD_C, 'cc');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dicomd-test-'));
  const o = { bin, dir, nodeAddr: '127.0.0.1', port: 17470, name: `dicomd-test-${process.pid}` };
  try {
    t.false(daemonStatus(o).running);
    const s = await startDaemon(o);
    t.true(s.running && s.listening, 'dicomd listens on its abstract socket once start returns');
    t.false(s.alreadyRunning);
    const again = await startDaemon(o);
    t.true(again.alreadyRunning);
    t.is(again.pid, s.pid);
    const stop = await stopDaemon(o);
    t.true(stop.stopped);
    t.false(pidAlive(s.pid));
    t.false(daemonStatus(o).running);
    // a pidfile naming a live process that is not dicomd (this test) must not be signalled
    writeFileSync(path.join(dir, 'dicomd.pid'), `${process.pid}\n`);
    t.true(daemonStatus(o).stalePidfile);
    const stale = await stopDaemon(o);
    t.false(stale.stopped);
    t.true(pidAlive(process.pid));
    await t.throwsAsync(startDaemon({ ...o, bin: '/nonexistent/dicomd' }), { message: /dicomd not built; run: dicomctl btl build/ });
  } finally {
    await stopDaemon(o).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- the lab (root) --------------------------------------------------------------------------

labTest('lab up refuses bad node counts, an overlapping subnet and a missing dicomd', async (t) => {
  for (const n of ['0', '17', 'x']) {
    const r = await ctl(['lab', 'up', '--nodes', n]);
    t.is(r.exitCode, 2, r.stderr);
    t.regex(r.stderr, /--nodes must be an integer between 1 and 16/);
  }
  const { stdout } = await execa('ip', ['-4', '-j', 'addr']);
  const host = (JSON.parse(stdout) as { addr_info: { local: string; scope: string }[] }[]).flatMap((l) => l.addr_info).find((a) => a.scope === 'global');
  if (host) {
    const r = await ctl(['lab', 'up', '--nodes', '2', '--no-dicomd'], { DICOM_LAB_SUBNET: `${host.local.split('.').slice(0, 3).join('.')}.0/24` });
    t.is(r.exitCode, 1);
    t.regex(r.stderr, /overlaps host address/);
  }
  const r = await ctl(['lab', 'up', '--nodes', '2', '--dicomd-bin', '/nonexistent/dicomd']);
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /dicomd not built; run: dicomctl btl build/);
  t.deepEqual(await listLabNamespaces(), [], 'a refused lab up leaves nothing behind');
});

labTest(`lab up --nodes 3 (dicomd: ${dicomdMode}) and status shows 3 healthy nodes`, async (t) => {
  created = true;
  const args = ['lab', 'up', '--nodes', '3', '--json', ...(dicomdMode === 'none' ? ['--no-dicomd'] : ['--dicomd-bin', dicomdBin!])];
  const up = await ctl(args);
  t.is(up.exitCode, 0, up.stderr);
  const state = JSON.parse(up.stdout) as LabState & { timings: Record<string, number> };
  t.log(`lab up timings (ms): ${JSON.stringify(state.timings)}`);
  t.is(state.nodes.length, 3);
  t.deepEqual(state.nodes.map((n) => n.addr), ['10.77.0.11', '10.77.0.12', '10.77.0.13']);
  t.deepEqual((await listLabNamespaces()).sort(), ['dicom-lab-br', 'dicom-n1', 'dicom-n2', 'dicom-n3']);

  const st = await ctl(['lab', 'status', '--json']);
  t.is(st.exitCode, 0, st.stderr);
  const s = JSON.parse(st.stdout) as Awaited<ReturnType<typeof labStatus>>;
  t.true(s.healthy);
  t.is(s.nodes.length, 3);
  for (const n of s.nodes) {
    t.true(n.nsPresent && n.sshdAlive && n.sshdListening, `${n.name} sshd`);
    if (dicomdMode !== 'none') t.true(n.dicomdAlive && n.dicomdListening, `${n.name} dicomd on @dicomd in its own netns`);
  }
  // every namespace: lo up, no default route
  for (const ns of ['dicom-lab-br', 'dicom-n1', 'dicom-n2', 'dicom-n3']) {
    t.is((await execa('ip', ['-n', ns, 'route', 'show', 'default'])).stdout.trim(), '', `${ns} has no default route`);
    t.regex((await execa('ip', ['-n', ns, 'link', 'show', 'lo'])).stdout, /[<,]UP[,>]/, `${ns} lo is up`);
  }
  const human = await ctl(['lab', 'status']);
  t.regex(human.stdout, /n3\s+10\.77\.0\.13\s+yes/);
});

labTest('routing check accepts lab addresses and refuses everything else', async (t) => {
  for (const a of ['10.77.0.11', '10.77.0.12', '10.77.0.13']) {
    const r = await assertLabRoute('dicom-n1', a);
    t.is(r.dev, a === '10.77.0.11' ? 'lo' : 'eth0');
  }
  // outside the lab: refused (only `ip route get` style checks; nothing is ever sent)
  await t.throwsAsync(assertLabRoute('dicom-n1', '192.0.2.1'), { instanceOf: LabError, message: /outside the lab subnet/ });
  await t.throwsAsync(assertLabRoute('dicom-n1', '8.8.8.8'), { instanceOf: LabError, message: /outside the lab subnet/ });
  // from the host namespace or the bridge namespace: refused
  await t.throwsAsync(assertLabRoute('', '10.77.0.12'), { message: /only lab node namespaces/ });
  await t.throwsAsync(assertLabRoute('dicom-lab-br', '10.77.0.12'), { message: /only lab node namespaces/ });
  try {
  // a node namespace without the lab route: refused by the kernel's answer
  await execa('ip', ['netns', 'add', 'dicom-n99']);
  await execa('ip', ['-n', 'dicom-n99', 'link', 'set', 'lo', 'up']);
  await t.throwsAsync(assertLabRoute('dicom-n99', '10.77.0.12'), { message: /no route/ });
  // a route to the lab subnet through something that is not the lab veth: refused
  await execa('ip', ['netns', 'add', 'dicom-n98']);
  await execa('ip', ['-n', 'dicom-n98', 'link', 'add', 'eth0', 'type', 'bridge']);
  await execa('ip', ['-n', 'dicom-n98', 'addr', 'add', '10.77.0.198/24', 'dev', 'eth0']);
  await execa('ip', ['-n', 'dicom-n98', 'link', 'set', 'eth0', 'up']);
  await t.throwsAsync(assertLabRoute('dicom-n98', '10.77.0.12'), { message: /eth0 in dicom-n98 is bridge, not the lab veth/ });
  } finally {
    for (const ns of ['dicom-n98', 'dicom-n99']) await execa('ip', ['netns', 'delete', ns], { reject: false });
  }
});

labTest('ssh reaches every node from n1 (own hostname per node), and nothing else', async (t) => {
  const state = readState()!;
  for (let k = 1; k <= 3; k++) {
    const r = await labSsh(1, k, ['hostname']);
    t.is(r.exitCode, 0, r.stderr);
    t.is(r.stdout.trim(), state.nodes[k - 1]!.hostname ?? os.hostname());
  }
  // the guard: any other destination hits ProxyCommand /bin/false (no socket is opened)
  const r = await labExec(1, ['ssh', '-F', state.sshConfig, 'example.org', 'true'], { timeoutMs: 10_000 });
  t.not(r.exitCode, 0);
});

labTest('mpirun hostname and /bin/true span 3 nodes', async (t) => {
  const r = await labMpirun({ np: 3, program: 'hostname', timeoutMs: 60_000 });
  t.is(r.exitCode, 0, r.stderr);
  const hosts = r.stdout.trim().split('\n').sort();
  t.is(new Set(hosts).size, readState()!.nodes[0]!.hostname ? 3 : 1);
  const tr = await labMpirun({ np: 3, program: '/bin/true', timeoutMs: 60_000 });
  t.is(tr.exitCode, 0, tr.stderr);
  t.log(`3-node mpirun /bin/true: ${Math.round(tr.durationMs)} ms`);
});

labTest('MPI hello over self,tcp: one rank per node, ring exchange across nodes', async (t) => {
  const r = await labMpirun({ np: 3, program: helloBin!, btl: 'self,tcp', timeoutMs: 60_000 });
  t.is(r.exitCode, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').sort();
  t.is(lines.length, 3, r.stdout);
  const re = /^hello rank (\d) of 3 on (\S+) ring ok$/;
  t.true(lines.every((l) => re.test(l)), r.stdout);
  if (readState()!.nodes[0]!.hostname) {
    t.deepEqual(lines.map((l) => re.exec(l)![2]).sort(), ['n1', 'n2', 'n3'], 'map-by node puts one rank on each node');
  }
  // a subset of nodes
  const sub = await labMpirun({ np: 2, nodes: [2, 3], program: helloBin!, btl: 'self,tcp', timeoutMs: 60_000 });
  t.is(sub.exitCode, 0, sub.stderr);
  t.is(sub.stdout.trim().split('\n').length, 2);
});

labTest('a job over its time limit is killed with everything it left in the nodes', async (t) => {
  const r = await labMpirun({ np: 3, program: '/bin/sleep', args: ['300'], timeoutMs: 2000, killGraceMs: 1000 });
  t.true(r.timedOut);
  t.true(r.durationMs < 20_000);
  for (const ns of ['dicom-n1', 'dicom-n2', 'dicom-n3']) {
    const left = [];
    for (const pid of await nsPids(ns)) {
      const a0 = readCmdline(pid)?.[0] ?? '';
      if (/sleep|orted|mpirun/.test(a0)) left.push(`${pid} ${a0}`);
    }
    t.deepEqual(left, [], `${ns} has no leftovers`);
  }
  t.true((await labStatus()).healthy, 'the lab survives a killed job');
});

labTest('lab down removes every namespace and process; twice is fine', async (t) => {
  const state = readState()!;
  const pids = state.nodes.flatMap((n) => [n.sshdPid, n.dicomdPid]).filter((p): p is number => !!p);
  const r = await ctl(['lab', 'down']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /lab down: 4 namespaces/);
  t.log(r.stdout.trim());
  t.deepEqual(await listLabNamespaces(), []);
  t.true(pids.every((p) => !pidAlive(p)), 'every sshd and dicomd is gone');
  t.false(existsSync(path.dirname(stateFile())), 'state dir removed');
  const again = await ctl(['lab', 'down']);
  t.is(again.exitCode, 0);
  t.is(again.stdout.trim(), 'no lab');
  const st = await ctl(['lab', 'status']);
  t.is(st.stdout.trim(), 'no lab');
});

labTest('lab down after a crash (sshd killed, state.json deleted) still cleans up', async (t) => {
  const up = await ctl(['lab', 'up', '--nodes', '2', '--no-verify', ...(dicomdMode === 'none' ? ['--no-dicomd'] : ['--dicomd-bin', dicomdBin!])]);
  t.is(up.exitCode, 0, up.stderr);
  const state = readState()!;
  const pids = state.nodes.flatMap((n) => [n.sshdPid, n.dicomdPid]).filter((p): p is number => !!p);
  process.kill(state.nodes[1]!.sshdPid, 'SIGKILL');
  const sick = await ctl(['lab', 'status']);
  t.is(sick.exitCode, 1);
  t.regex(sick.stdout, /DEAD/);
  // a process the lab did not start, still inside a node, must go too
  const stray = execa('ip', ['netns', 'exec', 'dicom-n1', 'sleep', '300'], { reject: false });
  t.true(await waitFor(async () => (await nsPids('dicom-n1')).includes(stray.pid!), 5000));
  unlinkSync(stateFile());
  t.regex((await ctl(['lab', 'status'])).stdout, /namespaces remain: dicom-lab-br dicom-n1 dicom-n2/);
  const down = await labDown({ graceMs: 1000 });
  t.true(down.hadLab);
  t.deepEqual(down.namespaces.sort(), ['dicom-lab-br', 'dicom-n1', 'dicom-n2']);
  t.deepEqual(await listLabNamespaces(), []);
  t.true(pids.every((p) => !pidAlive(p)));
  t.not((await stray).exitCode, 0, 'the stray sleep was stopped');
  t.false((await labDown()).hadLab);
});
