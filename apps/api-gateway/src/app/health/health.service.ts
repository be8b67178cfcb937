import { Inject, Injectable } from '@nestjs/common';
import { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { INTERNAL_TOKEN_HEADER, QueueNames, RESTORE_SERVICE_ROUTES, type ListMountsResponse } from '@sendense/contracts';
import { tcpAddress, type GatewaySettings } from '@sendense/config';
import { DatabaseProbe } from '@sendense/db';
import { REDIS, SETTINGS } from '../common/tokens';
import { QueueRegistry } from '../queues/queue-registry.service';

export interface DependencyState {
  name: string;
  ok: boolean;
  critical: boolean;
  latencyMs: number;
  detail?: string;
}

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  checkedAt: string;
  dependencies: DependencyState[];
}

const TIMEOUT_MS = 1500;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref()),
  ]);
}

function tcpReachable(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    s.setTimeout(TIMEOUT_MS);
    s.once('connect', () => {
      s.destroy();
      resolve();
    });
    s.once('timeout', () => {
      s.destroy();
      reject(new Error(`no answer from ${host}:${port}`));
    });
    s.once('error', (e) => reject(new Error(`${host}:${port}: ${e.message}`)));
    s.connect(port, host);
  });
}

/**
 * MariaDB and Redis are critical (503 when down); the queue and the other
 * services are reported, and make the status "degraded".
 */
@Injectable()
export class HealthService {
  constructor(
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly database: DatabaseProbe,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly queues: QueueRegistry,
  ) {}

  /** The client connects lazily and reconnects by itself: wait for it rather than fail while it is connecting. */
  private async redisReady(): Promise<void> {
    const r = this.redis;
    if (r.status === 'ready') return;
    if (r.status === 'wait' || r.status === 'end') {
      await r.connect();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onReady = () => (r.off('error', onError), resolve());
      const onError = (e: Error) => (r.off('ready', onReady), reject(e));
      r.once('ready', onReady);
      r.once('error', onError);
    });
  }

  private async check(name: string, critical: boolean, fn: () => Promise<string | void>): Promise<DependencyState> {
    const started = Date.now();
    try {
      const detail = await withTimeout(fn(), name);
      return { name, ok: true, critical, latencyMs: Date.now() - started, ...(detail ? { detail } : {}) };
    } catch (err) {
      return { name, ok: false, critical, latencyMs: Date.now() - started, detail: (err as Error).message };
    }
  }

  async report(): Promise<HealthReport> {
    const s = this.settings;
    const deps = await Promise.all([
      this.check('database', true, async () => {
        await this.database.ping();
      }),
      this.check('redis', true, async () => {
        await this.redisReady();
        const pong = await this.redis.ping();
        if (pong !== 'PONG') throw new Error(`unexpected answer ${pong}`);
      }),
      this.check('queue', false, async () => {
        const counts = await this.queues.get(QueueNames.backup(s.NODE_NAME)).getJobCounts('waiting', 'active', 'failed');
        return `backup queue of ${s.NODE_NAME}: ${counts['waiting']} waiting, ${counts['active']} active, ${counts['failed']} failed`;
      }),
      this.check('nbd-exporter', false, async () => {
        const a = tcpAddress(s.NBD_EXPORTER_URL);
        await tcpReachable(a.host, a.port);
      }),
      this.check('capture-agent', false, async () => {
        const a = tcpAddress(s.CAPTURE_AGENT_URL);
        await tcpReachable(a.host, a.port);
      }),
      this.check('restore-service', false, async () => {
        const u = new URL(s.RESTORE_SERVICE_URL);
        await tcpReachable(u.hostname, Number(u.port || (u.protocol === 'https:' ? 443 : 80)));
        // Mounts whose file system vanished under the service in the last minutes.
        const res = await fetch(new URL(RESTORE_SERVICE_ROUTES.list(), u), {
          headers: { [INTERNAL_TOKEN_HEADER]: s.SENDENSE_INTERNAL_TOKEN },
          signal: AbortSignal.timeout(3000),
        });
        if (!res.ok) throw new Error(`the restore-service answered ${res.status} to ${RESTORE_SERVICE_ROUTES.list()}`);
        const lost = res.ok ? (((await res.json()) as ListMountsResponse).lost ?? []) : [];
        if (lost.length)
          throw new Error(
            `${lost.length} mount(s) vanished under the restore-service: ${lost.map((l) => `${l.mountId} at ${l.at} (${l.problems.join('; ')})`).join(', ')}`,
          );
      }),
    ]);
    const criticalDown = deps.some((d) => d.critical && !d.ok);
    const anyDown = deps.some((d) => !d.ok);
    return { status: criticalDown ? 'down' : anyDown ? 'degraded' : 'ok', checkedAt: new Date().toISOString(), dependencies: deps };
  }
}
