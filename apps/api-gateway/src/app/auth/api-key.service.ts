import { Injectable } from '@nestjs/common';
import { ApiKeyRepository, type ApiRole } from '@sendense/db';

export interface Principal {
  id: string;
  name: string;
  role: ApiRole;
}

const CACHE_MS = 30_000;

/**
 * Verifies API keys. scrypt is deliberately slow, so a verified key is
 * remembered briefly (a revoked key stops working within CACHE_MS).
 */
@Injectable()
export class ApiKeyService {
  private readonly cache = new Map<string, { p: Principal | null; until: number }>();

  constructor(private readonly repo: ApiKeyRepository) {}

  /**
   * Pull the key from `Authorization: Bearer` or `X-API-Key`; Basic auth (the
   * key as the password) only when `allowBasic` (browser pages: a browser
   * replays stored Basic credentials on any request, which is what CSRF uses,
   * so the REST API never accepts them).
   */
  static extractKey(headers: Record<string, string | string[] | undefined>, opts: { allowBasic?: boolean } = {}): string | null {
    const xKey = headers['x-api-key'];
    if (typeof xKey === 'string' && xKey) return xKey.trim();
    const auth = headers['authorization'];
    if (typeof auth !== 'string') return null;
    const [scheme, value] = auth.split(/\s+/, 2);
    if (!value) return null;
    if (scheme?.toLowerCase() === 'bearer') return value.trim();
    if (scheme?.toLowerCase() === 'basic' && opts.allowBasic) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      return i >= 0 ? decoded.slice(i + 1) : null;
    }
    return null;
  }

  /** Whether the request carries HTTP Basic credentials. */
  static isBasic(headers: Record<string, string | string[] | undefined>): boolean {
    const auth = headers['authorization'];
    return typeof auth === 'string' && /^basic\s/i.test(auth);
  }

  async authenticate(key: string): Promise<Principal | null> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.p;
    const p = await this.repo.verify(key);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { p, until: now + CACHE_MS });
    if (p) void this.repo.touch(p.id).catch(() => undefined);
    return p;
  }

  forget(): void {
    this.cache.clear();
  }
}
