import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const REFRESH = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export class VmBusyError extends Error {
  override name = 'VmBusyError';
}

/**
 * One backup at a time per VM, across every worker and node: a Redis key
 * per VM holding the run id, taken before the snapshot. It expires when its
 * holder dies (no heartbeat), so a crashed worker blocks the VM for at most
 * `ttlMs`, not forever.
 */
export class VmLocks {
  constructor(
    private readonly redis: Redis,
    private readonly ttlMs = 5 * 60_000,
    private readonly releaseAttempts = 30,
  ) {}

  /** The run holding the VM now (a live worker keeps refreshing it), if any. */
  holder(vmContextId: string): Promise<string | null> {
    return this.redis.get(`sendense:vm-lock:${vmContextId}`);
  }

  async acquire(vmContextId: string, runId: string): Promise<() => Promise<void>> {
    const key = `sendense:vm-lock:${vmContextId}`;
    const ok = await this.redis.set(key, runId, 'PX', this.ttlMs, 'NX');
    if (!ok) {
      const holder = await this.redis.get(key);
      // A retry of our own run after a crash finds its own key.
      if (holder !== runId) throw new VmBusyError(`another backup of this VM is running (run ${holder ?? 'unknown'}); this one will be retried`);
      await this.redis.pexpire(key, this.ttlMs);
    }
    const timer = setInterval(() => {
      void this.redis.eval(REFRESH, 1, key, runId, String(this.ttlMs)).catch(() => undefined);
    }, this.ttlMs / 3);
    timer.unref();
    return async () => {
      clearInterval(timer);
      // Redis may be away for a moment (a restart): a lock left behind would
      // block the VM's next backups for ttlMs, so the release is retried for
      // up to about 30 s before the key is left to expire.
      for (let attempt = 0; ; attempt++) {
        try {
          await this.redis.eval(RELEASE, 1, key, runId);
          return;
        } catch {
          if (attempt >= this.releaseAttempts) return;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
  }
}
