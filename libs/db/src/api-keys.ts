import { randomBytes, randomUUID, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { PrismaClient } from './prisma-client';
import type { ApiRole } from './generated/client';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number) => Promise<Buffer>;

/**
 * API keys look like `sdk_<prefix>_<secret>`. Only a scrypt hash of the
 * secret is stored; the prefix finds the row without scanning.
 */
export const API_ROLES = ['admin', 'operator', 'viewer'] as const satisfies readonly ApiRole[];

export interface CreatedApiKey {
  id: string;
  name: string;
  role: ApiRole;
  /** The full key. Shown once; it cannot be recovered later. */
  key: string;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  role: ApiRole;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const KEY_RE = /^sdk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

async function hashSecret(secret: string, salt: Buffer): Promise<string> {
  const h = await scrypt(secret, salt, 32);
  return `scrypt$${salt.toString('base64')}$${h.toString('base64')}`;
}

export class ApiKeyRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(name: string, role: ApiRole): Promise<CreatedApiKey> {
    if (!API_ROLES.includes(role)) throw new Error(`role must be one of ${API_ROLES.join(', ')}`);
    const prefix = randomBytes(9)
      .toString('base64url')
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '0')
      .slice(0, 12);
    const secret = randomBytes(32).toString('base64url');
    const id = randomUUID();
    await this.prisma.apiKey.create({
      data: { id, name: name.slice(0, 255), prefix, role, keyHash: await hashSecret(secret, randomBytes(16)) },
    });
    return { id, name, role, key: `sdk_${prefix}_${secret}` };
  }

  /** The key's identity when it is valid and not revoked, else null. */
  async verify(key: string): Promise<{ id: string; name: string; role: ApiRole } | null> {
    const m = KEY_RE.exec(key);
    if (!m) return null;
    const row = await this.prisma.apiKey.findUnique({ where: { prefix: m[1] } });
    if (!row || row.revokedAt) return null;
    const [, saltB64, hashB64] = row.keyHash.split('$');
    const expected = Buffer.from(hashB64 ?? '', 'base64');
    const actual = await scrypt(m[2] ?? '', Buffer.from(saltB64 ?? '', 'base64'), 32);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return null;
    return { id: row.id, name: row.name, role: row.role };
  }

  async touch(id: string): Promise<void> {
    await this.prisma.apiKey.update({ where: { id }, data: { lastUsedAt: new Date() } });
  }

  async list(): Promise<ApiKeyInfo[]> {
    return this.prisma.apiKey.findMany({
      orderBy: { createdAt: 'asc' },
      select: { id: true, name: true, role: true, prefix: true, createdAt: true, lastUsedAt: true, revokedAt: true },
    });
  }

  /** Returns false when there is no such key. */
  async revoke(id: string): Promise<boolean> {
    const r = await this.prisma.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
    return r.count > 0;
  }
}
