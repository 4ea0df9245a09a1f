// Lab nodes with unequal capacity (lab up --cpus / --cpu-quota): a cgroup v1 cpuset or CFS quota
// per node holds everything started in the node (sshd, dicomd, what labExec and mpirun start
// there), gossip reports each node's capacity, and lab down removes the groups, also after a
// crash. Needs root and two CPUs; run it under `flock /tmp/dicom-lab.lock`.
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { labDown, labExec, labMpirun, labStatus, labUp, requireState } from '../control/lab/index.js';
import { CPUSET_ROOT, CPU_ROOT } from '../control/lab/cgroup.js';
import { stateFile } from '../control/lab/config.js';
import type { GossipView } from '../control/dicom/libdicom.js';
import { sleep } from '../control/daemon/proc.js';
import { dicomctl, dicomctlBin, isRoot } from './helpers/cli.js';

const cgroupsV1 = existsSync(path.join(CPUSET_ROOT, 'cgroup.procs')) && existsSync(path.join(CPU_ROOT, 'cgroup.procs'));
const twoCpus = os.availableParallelism() >= 2;
const why = !isRoot ? 'need root' : !cgroupsV1 ? `need the cgroup v1 cpuset and cpu controllers at ${CPUSET_ROOT}, ${CPU_ROOT}` : !twoCpus ? 'need two CPUs' : '';
const lab = why ? test.skip : test.serial;
if (why) test(`lab capacity tests skipped: ${why}`, (t) => t.pass());

const groups = () => [path.join(CPUSET_ROOT, 'dicom-lab'), path.join(CPU_ROOT, 'dicom-lab')].filter((d) => existsSync(d));
const UP = { nodes: 3, cpus: 'n1=0,n2=1', cpuQuota: 'n3=0.5' };

test.before(async () => {
  if (why) return;
  if ((await labStatus()).up) await labDown();
  await labUp(UP);
});

test.after.always(async () => {
  if (!why) await labDown();
});

/** "cpuset:/dicom-lab/n1" style memberships of a process. */
function cgroupsOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, ctrl, p] = l.split(':');
    for (const c of (ctrl ?? '').split(',')) if (c) out[c] = p ?? '';
  }
  return out;
}

lab('each node has its cgroup, and its sshd and dicomd are in it', (t) => {
  const s = requireState();
  t.is(readFileSync(path.join(CPUSET_ROOT, 'dicom-lab/n1/cpuset.cpus'), 'utf8').trim(), '0');
  t.is(readFileSync(path.join(CPUSET_ROOT, 'dicom-lab/n2/cpuset.cpus'), 'utf8').trim(), '1');
  t.is(Number(readFileSync(path.join(CPU_ROOT, 'dicom-lab/n3/cpu.cfs_quota_us'), 'utf8')), 50_000);
  t.is(Number(readFileSync(path.join(CPU_ROOT, 'dicom-lab/n3/cpu.cfs_period_us'), 'utf8')), 100_000);
  const want = [
    { cpuset: '/dicom-lab/n1', cpu: '/' },
    { cpuset: '/dicom-lab/n2', cpu: '/' },
    { cpuset: '/', cpu: '/dicom-lab/n3' },
  ];
  for (const [i, n] of s.nodes.entries()) {
    for (const pid of [n.sshdPid, n.dicomdPid!]) {
      const g = cgroupsOf(pid);
      t.is(g.cpuset, want[i]!.cpuset, `${n.name} pid ${pid}`);
      t.is(g.cpu, want[i]!.cpu, `${n.name} pid ${pid}`);
    }
  }
  t.deepEqual(s.nodes.map((n) => n.capacity), [{ cpus: '0' }, { cpus: '1' }, { quota: 0.5 }]);
});

lab('what labExec and mpirun start in a node runs in its cgroup', async (t) => {
  const local = await labExec(1, ['grep', 'Cpus_allowed_list', '/proc/self/status']);
  t.regex(local.stdout, /Cpus_allowed_list:\s+0\s*$/);
  // ranks on n2 and n3 are started by orted, which sshd started
  const r = await labMpirun({
    np: 3,
    program: '/bin/sh',
    args: ['-c', 'echo "$(hostname) $(grep Cpus_allowed_list /proc/self/status | cut -f2) $(grep -E "^[0-9]+:cpu:" /proc/self/cgroup | cut -d: -f3)"'],
    timeoutMs: 60_000,
  });
  t.is(r.exitCode, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n').sort(), ['n1 0 /', 'n2 1 /', 'n3 0-1 /dicom-lab/n3']);
});

lab('a CPU quota of 0.5 gives a busy loop at most half a CPU', async (t) => {
  const loop = ['python3', '-c', 'import os,time\nt=time.time()\nwhile time.time()-t<2: pass\nc=os.times()\nprint(c.user+c.system)'];
  const [capped, free] = await Promise.all([labExec(3, loop), labExec(1, loop)]);
  t.is(capped.exitCode, 0, capped.stderr);
  const cpu = Number(capped.stdout.trim());
  t.log(`2 s busy loop: n3 (quota 0.5) used ${cpu.toFixed(2)} s of CPU, n1 (cpuset 0) ${Number(free.stdout.trim()).toFixed(2)} s`);
  t.true(cpu <= 2 * 0.5 * 1.15, `n3 used ${cpu} s of CPU in 2 s`);
});

lab('gossip reports each node its capacity', async (t) => {
  const s = requireState();
  let v: GossipView | undefined;
  const want = { [s.nodes[0]!.addr]: 1, [s.nodes[1]!.addr]: 1, [s.nodes[2]!.addr]: 0.5 };
  const got = () => Object.fromEntries((v?.entries ?? []).map((e) => [e.node, e.cpus]));
  for (let i = 0; i < 20; i++) {
    const r = await labExec(1, [dicomctlBin, 'daemon', 'view', '--json'], { timeoutMs: 60_000 });
    v = JSON.parse(r.stdout) as GossipView;
    if (Object.keys(want).every((k) => got()[k] === want[k])) break;
    await sleep(500);
  }
  t.deepEqual(got(), want);
});

lab('bad capacity options are refused before anything is made', async (t) => {
  for (const [args, msg] of [
    [['--cpus', 'n9=0'], /"n9" is not a node of this lab \(n1\.\.n3\)/],
    [['--cpus', 'n1=64'], /names CPU 64, but this machine has CPUs/],
    [['--cpus', '0,n1=1'], /--cpus must start with a node/],
    [['--cpu-quota', 'n1=0'], /--cpu-quota: n1=0 must be node=CPUs/],
    [['--cpu-quota', 'n2=half'], /--cpu-quota: n2=half must be node=CPUs/],
  ] as const) {
    const r = await dicomctl(['lab', 'up', '--nodes', '3', ...args]);
    t.is(r.exitCode, 2, r.all);
    t.regex(r.stderr, msg);
  }
  t.true((await labStatus()).healthy, 'the running lab is untouched');
});

lab('lab down removes the cgroups, also after a crash (no state file)', async (t) => {
  await labDown();
  t.deepEqual(groups(), []);
  await labUp(UP);
  t.is(groups().length, 2);
  unlinkSync(stateFile());
  const r = await labDown();
  t.true(r.hadLab);
  t.deepEqual(groups(), [], 'no dicom-lab group is left');
  await labUp(UP); // for after.always, like every other test leaves it
});
