import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { BullRegistrar } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CaptureAgentClient, DefaultJobOptions, JobIds, JobNames, NbdExporterClient } from '@sendense/contracts';
import type { WorkerSettings } from '@sendense/config';
import { BackupRepositoryRepository, type PrismaClient } from '@sendense/db';
import { QUEUE_STATES, queueGauge, serveMetrics, type Registry } from '@sendense/metrics';
import type { JobProcessor } from './common/job-processor';
import { Producers } from './common/producers';
import { BackupService } from './backup/backup.service';
import { CancelRegistry } from './backup/cancel-registry';
import { cleanUpAtStart } from './backup/interrupted-runs';
import { VmLocks } from './backup/vm-lock';
import { sweepNodeLocks } from './repositories/lock-sweep';
import { RepositoryRegistry } from './repositories/repository-registry';
import { CONSUMED_QUEUES, CONSUMERS, METRICS_REGISTRY, PRISMA, REDIS, SETTINGS } from './worker.tokens';

/**
 * When the queue processors consume. At start: the cancel listener, the
 * clean-up after the last stop and the lock sweep, and only then the
 * Workers (BullModule's manualRegistration: BullRegistrar.register() makes
 * them), the alert scheduler, the metrics listener. At stop
 * (beforeApplicationShutdown, so before any onApplicationShutdown, among
 * them @nestjs/bullmq's own closing of the Workers): running backups are
 * aborted, then the Workers closed, waiting at most 8 s.
 */
@Injectable()
export class WorkerLifecycle implements OnModuleInit, BeforeApplicationShutdown {
  private readonly log = new Logger('QueueConsumers');
  private metricsServer: { port: number; close(): Promise<void> } | null = null;
  private lockSweep: NodeJS.Timeout | undefined;

  constructor(
    @Inject(SETTINGS) private readonly settings: WorkerSettings,
    @Inject(BullRegistrar) private readonly registrar: BullRegistrar,
    @Inject(CONSUMERS) private readonly consumers: JobProcessor[],
    @Inject(CONSUMED_QUEUES) private readonly queues: Queue[],
    @Inject(CancelRegistry) private readonly cancels: CancelRegistry,
    @Inject(BackupService) private readonly backups: BackupService,
    @Inject(VmLocks) private readonly locks: VmLocks,
    @Inject(BackupRepositoryRepository) private readonly repositoryRows: BackupRepositoryRepository,
    @Inject(RepositoryRegistry) private readonly repositories: RepositoryRegistry,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.cancels.listen(this.settings.REDIS_URL);
    await this.cleanUpAfterLastStop();
    // Each processor's Worker, consuming from here on.
    this.registrar.register();
    await this.scheduleAlertChecks();
    if (this.settings.WORKER_METRICS_PORT) await this.serveMetrics(this.settings.WORKER_METRICS_PORT);
    const workers = this.consumers.map((c) => c.worker.name).join(', ');
    this.log.log(
      `consuming ${workers} (BACKUP_CONCURRENCY=${this.settings.BACKUP_CONCURRENCY} backups at once); handlers: ${this.consumers[0]?.handled.join(', ')}`,
    );
  }

  private async cleanUpAfterLastStop(): Promise<void> {
    const node = this.settings.NODE_NAME;
    const interrupted = await cleanUpAtStart(this.backups.deps, this.locks, node).catch((err: unknown) => {
      this.log.error(`cleaning up interrupted backups failed: ${String(err)}`);
      return 0;
    });
    if (interrupted) this.log.warn(`cleaned up ${interrupted} restore point(s) of backups interrupted by the last stop`);
    // After the clean-up: the dead runs' lock files go with them, and every LOCK_SWEEP_EVERY whatever else died.
    const sweep = () =>
      sweepNodeLocks(this.repositoryRows, this.repositories, node, this.log).catch((err: unknown) =>
        this.log.error(`sweeping stale lock files failed: ${String(err)}`),
      );
    await sweep();
    this.lockSweep = setInterval(() => void sweep(), this.settings.LOCK_SWEEP_EVERY);
    this.lockSweep.unref();
  }

  /** This node's space and stale-VM checks: one scheduler per node on its own maintenance queue. */
  private async scheduleAlertChecks(): Promise<void> {
    const maintenance = this.consumers[1]?.worker.name;
    await this.queues
      .find((q) => q.name === maintenance)
      ?.upsertJobScheduler(
        JobIds.alertsScheduler,
        { every: this.settings.ALERT_CHECK_EVERY },
        { name: JobNames.CheckAlerts, data: { requestedBy: 'scheduler' }, opts: DefaultJobOptions.CheckAlertsJob },
      )
      .catch((err: unknown) => this.log.error(`scheduling the alert checks failed: ${String(err)}`));
  }

  private async serveMetrics(port: number): Promise<void> {
    queueGauge(this.registry, async (g) => {
      for (const q of this.queues) {
        const counts = await q.getJobCounts(...QUEUE_STATES).catch(() => ({}) as Record<string, number>);
        for (const [state, n] of Object.entries(counts)) g.set({ queue: q.name, state }, n);
      }
    });
    // Metrics are not worth refusing backups for: a port in use is logged, the worker runs on.
    this.metricsServer = await serveMetrics(this.registry, port).catch((err: unknown) => {
      this.log.error(`metrics listener on 127.0.0.1:${port} not started: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    });
    if (this.metricsServer) this.log.log(`metrics on http://127.0.0.1:${this.metricsServer.port}/metrics`);
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.lockSweep);
    await this.metricsServer?.close();
    // Running backups are aborted (each removes its export, half restore point
    // and snapshot, and its job is retried later); close() waits for that.
    // A job stuck beyond 8 s is abandoned; the next start cleans it up.
    this.cancels.abortAll();
    const workers = this.consumers.map((c) => c.worker);
    await Promise.race([Promise.allSettled(workers.map((w) => w.close())), new Promise((r) => setTimeout(r, 8000).unref())]);
  }
}

/** After the Workers: the clients, the worker's producers and Redis, then the database. */
@Injectable()
export class ClientsLifecycle implements OnApplicationShutdown {
  constructor(
    @Inject(CancelRegistry) private readonly cancels: CancelRegistry,
    @Inject(NbdExporterClient) private readonly exporter: NbdExporterClient,
    @Inject(CaptureAgentClient) private readonly capture: CaptureAgentClient,
    @Inject(Producers) private readonly producers: Producers,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(PRISMA) private readonly prisma: PrismaClient,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.cancels.close(), this.exporter.close(), this.capture.close(), this.producers.close()]);
    this.redis.disconnect();
    await this.prisma.$disconnect();
  }
}
