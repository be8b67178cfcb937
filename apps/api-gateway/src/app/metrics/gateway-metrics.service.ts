import { Inject, Injectable } from '@nestjs/common';
import type { GatewaySettings } from '@sendense/config';
import { QueueNames } from '@sendense/contracts';
import { MetricsSourceRepository } from '@sendense/db';
import { Counter, createRegistry, Gauge, Histogram, QUEUE_STATES, queueGauge, type Registry } from '@sendense/metrics';
import { SETTINGS } from '../common/tokens';
import { QueueRegistry } from '../queues/queue-registry.service';

/**
 * The gateway's Prometheus registry: its HTTP requests, and at each scrape
 * the system's view from Redis and the database (queue depth per node, jobs
 * by state and type, active mounts, repository space as the nodes last
 * recorded it, policies).
 */
@Injectable()
export class GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly requestDuration: Histogram<'method' | 'route'>;

  constructor(
    @Inject(SETTINGS) settings: GatewaySettings,
    @Inject(QueueRegistry) queues: QueueRegistry,
    @Inject(MetricsSourceRepository) source: MetricsSourceRepository,
  ) {
    const registry = (this.registry = createRegistry('api-gateway'));
    this.requests = new Counter({
      name: 'sendense_http_requests_total',
      help: 'HTTP requests answered, by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    this.requestDuration = new Histogram({
      name: 'sendense_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    queueGauge(registry, async (g) => {
      const all = [...(await queues.knownQueues(settings.NODE_NAME)), queues.get(QueueNames.policies), queues.get(QueueNames.webhooks)];
      for (const q of all) {
        const counts = await q.getJobCounts(...QUEUE_STATES).catch(() => null);
        if (counts) for (const [state, n] of Object.entries(counts)) g.set({ queue: q.name, state }, n);
      }
    });
    new Gauge({
      name: 'sendense_backup_jobs',
      help: 'Disk backup jobs (backup_jobs rows) by status and backup type',
      labelNames: ['status', 'type'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const r of await source.backupJobCounts().catch(() => [])) this.set({ status: r.status, type: r.type }, r.count);
      },
    });
    new Gauge({
      name: 'sendense_restore_mounts',
      help: 'Restore points mounted for file restore, by state (mounted = active mounts)',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const r of await source.mountCounts().catch(() => [])) this.set({ state: r.state }, r.count);
      },
    });
    const space = async (pick: (r: { totalBytes: number; freeBytes: number }) => number, g: Gauge<'repository' | 'node'>) => {
      g.reset();
      for (const r of await source.repositorySpace().catch(() => [])) if (r.totalBytes > 0) g.set({ repository: r.name, node: r.node }, pick(r));
    };
    new Gauge({
      name: 'sendense_repository_recorded_used_bytes',
      help: "Used bytes of a repository file system, as its node's worker last recorded it",
      labelNames: ['repository', 'node'],
      registers: [registry],
      async collect() {
        await space((r) => r.totalBytes - r.freeBytes, this);
      },
    });
    new Gauge({
      name: 'sendense_repository_recorded_free_bytes',
      help: "Free bytes of a repository file system, as its node's worker last recorded it",
      labelNames: ['repository', 'node'],
      registers: [registry],
      async collect() {
        await space((r) => r.freeBytes, this);
      },
    });
    new Gauge({
      name: 'sendense_backup_policies',
      help: 'Backup policies by state (active, paused)',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const r of await source.policyCounts().catch(() => [])) this.set({ state: r.paused ? 'paused' : 'active' }, r.count);
      },
    });
  }
}
