import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { BackupPolicyRepository, BackupRepositoryRepository } from '@sendense/db';
import type { WorkerMetrics } from '@sendense/metrics';
import type { RepositoryRegistry } from '../repositories/repository-registry';
import type { WebhookNotifier } from '../webhooks/webhook-notifier';
import { selectVms } from '../policies/policy-rules';

const HOUR_MS = 3_600_000;
/** A condition that stays true is reported again after a day; one that clears and returns, at once. */
const REPEAT_S = 24 * 3600;

/**
 * The checks of one storage node (a job scheduler on its maintenance queue):
 * the space of its repositories (gauges, the repositories row, and the
 * repository.space event above the threshold) and the VMs of policies on its
 * repositories whose last successful backup is older than the policy allows (vm.stale).
 */
export class AlertsService {
  private readonly log = new Logger('Alerts');

  constructor(
    private readonly deps: {
      repositories: BackupRepositoryRepository;
      registry: RepositoryRegistry;
      policies: BackupPolicyRepository;
      notifier: WebhookNotifier;
      redis: Redis;
      metrics: WorkerMetrics;
      nodeName: string;
      usedPercentThreshold: number;
    },
  ) {}

  /** Report once per condition per day; forget when it clears. */
  private async once(key: string, active: boolean, send: () => Promise<unknown>): Promise<boolean> {
    const k = `sendense:alert:${key}`;
    if (!active) {
      await this.deps.redis.del(k);
      return false;
    }
    if ((await this.deps.redis.set(k, '1', 'EX', REPEAT_S, 'NX')) !== 'OK') return false;
    await send();
    return true;
  }

  async check(): Promise<{ repositories: number; spaceAlerts: number; staleAlerts: number }> {
    const d = this.deps;
    const own = (await d.repositories.list()).filter((r) => r.storageNode === d.nodeName);
    let spaceAlerts = 0;
    for (const row of own) {
      try {
        const space = await (await d.registry.get(row)).space();
        await d.repositories.recordSpace(row.id, { totalBytes: space.totalBytes, availableBytes: space.freeBytes });
        const used = space.totalBytes - space.freeBytes;
        d.metrics.repositoryUsed.set({ repository: row.name }, used);
        d.metrics.repositoryFree.set({ repository: row.name }, space.freeBytes);
        const pct = space.totalBytes > 0 ? (used / space.totalBytes) * 100 : 0;
        const sent = await this.once(`repository.space:${row.id}`, pct >= d.usedPercentThreshold, () =>
          d.notifier.notify('repository.space', {
            repository: { id: row.id, name: row.name, node: row.storageNode },
            usedPercent: Math.round(pct * 10) / 10,
            thresholdPercent: d.usedPercentThreshold,
            totalBytes: space.totalBytes,
            freeBytes: space.freeBytes,
            usedByRepositoryBytes: space.usedByRepositoryBytes,
          }),
        );
        if (sent) spaceAlerts++;
      } catch (err) {
        this.log.warn(`space of repository ${row.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    let staleAlerts = 0;
    const ownIds = new Set(own.map((r) => r.id));
    const policies = (await d.policies.list()).filter((p) => p.maxAgeHours && !p.paused && ownIds.has(p.repositoryId));
    const registered = policies.length ? await d.policies.vms() : [];
    const now = Date.now();
    for (const p of policies) {
      const maxAgeMs = (p.maxAgeHours ?? 0) * HOUR_MS;
      // A policy younger than its own limit cannot have a stale VM yet.
      if (now - p.createdAt.getTime() < maxAgeMs) continue;
      for (const vm of selectVms(registered, p.selector)) {
        const st = await d.policies.vmBackupState(vm.contextId, p.repositoryId);
        const age = st.lastSuccessAt ? now - st.lastSuccessAt.getTime() : Infinity;
        const sent = await this.once(`vm.stale:${p.id}:${vm.contextId}`, age > maxAgeMs, () =>
          d.notifier.notify('vm.stale', {
            policy: { id: p.id, name: p.name, maxAgeHours: p.maxAgeHours },
            vm: { contextId: vm.contextId, name: vm.vmName },
            lastSuccessAt: st.lastSuccessAt?.toISOString() ?? null,
            ageHours: Number.isFinite(age) ? Math.round((age / HOUR_MS) * 10) / 10 : null,
          }),
        );
        if (sent) staleAlerts++;
      }
    }
    return { repositories: own.length, spaceAlerts, staleAlerts };
  }
}
