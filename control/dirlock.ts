// One writer per output directory at a time, across processes: a matrix
// runner may start the same kernel cell twice, and the API, the CLI and the
// kernel guests all build build/btl/<Open MPI>; two at once would rewrite the
// same files under each other. mkdir is atomic; the lock records its owner's
// pid, so a lock left by a killed run is taken over.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function stale(lock: string): Promise<boolean> {
  const pid = Number(await readFile(path.join(lock, 'pid'), 'utf8').catch(() => '0'));
  if (pid) return !alive(pid);
  // Created but no pid yet: only stale if it has stayed that way.
  const st = await stat(lock).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs > 60_000;
}

export class DirLockError extends Error {
  override name = 'DirLockError';
}

export async function withDirLock<T>(dir: string, progress: (line: string) => void, fn: () => Promise<T>, maxWaitMs = 60 * 60_000): Promise<T> {
  const lock = `${dir}.lock`;
  await mkdir(path.dirname(lock), { recursive: true });
  const t0 = Date.now();
  let told = 0;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (await stale(lock)) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - t0 > maxWaitMs) throw new DirLockError(`${dir} stayed locked by another run (${lock}, pid ${await readFile(path.join(lock, 'pid'), 'utf8').catch(() => '?')})`);
      if (Date.now() - told > 30_000) {
        progress(`waiting for another run using ${dir} (${lock})`);
        told = Date.now();
      }
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}
