// Is a listener there? Read from /proc/PID/net/{unix,tcp}, which shows the network namespace
// of PID (the same tables `ss -xl` / `ss -lt` print), so a daemon inside a lab namespace can be
// checked from the host without entering it and without sending anything.
import { readFileSync } from 'node:fs';
import net from 'node:net';

const SO_ACCEPTCON = 0x10000;

/** True when an abstract unix socket @name is listening in PID's network namespace. */
export function abstractListening(name: string, pid: number | 'self' = 'self'): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/unix`, 'utf8');
  } catch {
    return false;
  }
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode [Path]
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    if (f[7] === `@${name}` && (parseInt(f[3]!, 16) & SO_ACCEPTCON) !== 0) return true;
  }
  return false;
}

/** True when PID's network namespace has a TCP listener on addr:port (IPv4; 0.0.0.0 counts). */
export function tcpListening(addr: string, port: number, pid: number | 'self' = 'self'): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/tcp`, 'utf8');
  } catch {
    return false;
  }
  const hex = (a: string) =>
    a
      .split('.')
      .reverse()
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('')
      .toUpperCase();
  const want = [`${hex(addr)}:${port.toString(16).toUpperCase().padStart(4, '0')}`, `00000000:${port.toString(16).toUpperCase().padStart(4, '0')}`];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '0A' && want.includes(f[1] ?? '')) return true; // 0A = LISTEN
  }
  return false;
}

/** Connects to @name in this process's own namespace; resolves true if it accepts. */
export function abstractConnects(name: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: `\0${name}` });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}
