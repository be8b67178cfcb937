import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { ThrottlerException, ThrottlerStorageService } from '@nestjs/throttler';
import type { GatewaySettings } from '@sendense/config';
import { SETTINGS } from '../common/tokens';

const WINDOW_MS = 60_000;

/**
 * Counts with @nestjs/throttler's storage:
 * - failed authentications per client address: after
 *   GATEWAY_AUTH_FAILURES_PER_MINUTE the address gets 429 for a minute, even
 *   with a valid key (otherwise a guesser would still learn which guess works);
 * - expensive calls (backups, mounts) per API key: GATEWAY_EXPENSIVE_CALLS_PER_MINUTE.
 */
@Injectable()
export class RequestLimiter implements OnApplicationShutdown {
  private readonly storage = new ThrottlerStorageService();
  private readonly blockedUntil = new Map<string, number>();

  constructor(@Inject(SETTINGS) private readonly settings: GatewaySettings) {}

  /** Throws 429 while the address is blocked after too many failures. */
  assertNotBlocked(ip: string): void {
    const until = this.blockedUntil.get(ip);
    if (until === undefined) return;
    if (until <= Date.now()) {
      this.blockedUntil.delete(ip);
      return;
    }
    throw new ThrottlerException(`too many failed authentications from ${ip}; try again in ${Math.ceil((until - Date.now()) / 1000)} s`);
  }

  /** Records a failed authentication; true when the address is now blocked. */
  async failed(ip: string): Promise<boolean> {
    const limit = this.settings.GATEWAY_AUTH_FAILURES_PER_MINUTE;
    const r = await this.storage.increment(`auth:${ip}`, WINDOW_MS, limit, WINDOW_MS, 'auth-failures');
    if (!r.isBlocked) return false;
    if (this.blockedUntil.size > 10_000) this.blockedUntil.clear();
    this.blockedUntil.set(ip, Date.now() + Math.max(1, r.timeToBlockExpire) * 1000);
    return true;
  }

  /** Counts one expensive call of a key; throws 429 above the limit. */
  async expensive(keyId: string, what: string): Promise<void> {
    const limit = this.settings.GATEWAY_EXPENSIVE_CALLS_PER_MINUTE;
    const r = await this.storage.increment(`expensive:${keyId}`, WINDOW_MS, limit, 0, 'expensive');
    if (r.isBlocked) {
      throw new ThrottlerException(
        `this key made more than ${limit} expensive calls (backups, mounts) in a minute; ${what} refused, try again in ${Math.max(1, r.timeToBlockExpire)} s`,
      );
    }
  }

  onApplicationShutdown(): void {
    this.storage.onApplicationShutdown();
  }
}
