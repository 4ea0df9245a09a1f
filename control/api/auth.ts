// Bearer tokens: only their sha256 is stored (ApiToken.hash). A new token is
// shown once, by `dicomctl token create NAME`.
import { createHash, randomBytes } from 'node:crypto';
import type { PrismaClient } from '../db/index.js';
import { ApiError } from './errors.js';

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export async function createToken(prisma: PrismaClient, name: string): Promise<{ id: number; name: string; token: string }> {
  const token = `dct_${randomBytes(24).toString('base64url')}`;
  const row = await prisma.apiToken.create({ data: { name, hash: hashToken(token) } });
  return { id: row.id, name: row.name, token };
}

/** Verifies bearer tokens, caching good ones briefly so the hot path is one map lookup. */
export class TokenVerifier {
  private cache = new Map<string, number>();
  constructor(private prisma: PrismaClient, private ttlMs = 5000) {}

  async verify(header: string | undefined): Promise<void> {
    if (!header) throw new ApiError(401, 'missing bearer token: send "Authorization: Bearer <token>" (create one with "dicomctl token create NAME")');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new ApiError(401, 'malformed Authorization header: expected "Bearer <token>"');
    const hash = hashToken(m[1]!);
    const until = this.cache.get(hash);
    if (until && until > Date.now()) return;
    const row = await this.prisma.apiToken.findUnique({ where: { hash }, select: { id: true, lastUsedAt: true } });
    if (!row) {
      this.cache.delete(hash);
      throw new ApiError(401, 'invalid bearer token');
    }
    this.cache.set(hash, Date.now() + this.ttlMs);
    if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
      await this.prisma.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date() } });
    }
  }
}
