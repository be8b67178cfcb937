import { Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { CaptureAgentClient, NbdExporterClient, QUEUE_PREFIX, QueueNames } from '@sendense/contracts';
import { targetTransport, tcpAddress, type WorkerSettings } from '@sendense/config';
import {
  BackupPolicyRepository,
  BackupRepositoryRepository,
  createPrismaClient,
  SecretBox,
  VCenterRepository,
  VmContextRepository,
  WebhookRepository,
  type PrismaClient,
} from '@sendense/db';
import { createRegistry, QUEUE_STATES, queueGauge, serveMetrics, workerMetrics, type Registry, type WorkerMetrics } from '@sendense/metrics';
import { attemptsEnded, DefaultJobOptions, JobIds, JobNames, type BackupVmJobData, type VerifyRestorePointJobData } from '@sendense/contracts';
import { Producers } from './common/producers';
import { WebhookNotifier } from './webhooks/webhook-notifier';
import { WebhookDeliveryHandler } from './webhooks/webhook-delivery';
import { suspectEvents } from './webhooks/chain-events';
import { PolicyRunner } from './policies/policy-runner';
import { FolderResolver } from './policies/folder-resolver';
import { CheckAlertsHandler, RunPolicyHandler } from './policies/policy.handlers';
import { AlertsService } from './alerts/alerts.service';
import type { BackupRunResult } from './backup/backup.service';
import { BackupService } from './backup/backup.service';
import { BackupVmHandler } from './backup/backup-vm.handler';
import { CancelRegistry } from './backup/cancel-registry';
import { cleanUpAtStart } from './backup/interrupted-runs';
import { VmLocks } from './backup/vm-lock';
import { Redis } from 'ioredis';
import { JobEventLog } from './backup/job-event-log';
import { RepositoryRegistry } from './repositories/repository-registry';
import { sweepNodeLocks } from './repositories/lock-sweep';
import { MaintenanceService } from './maintenance/maintenance.service';
import { maintenanceHandlers } from './maintenance/maintenance.handlers';
import { RestoreDiskHandler, RestoreDiskService } from './restore/restore-disk.service';
import { assertEveryJobHandled, type JobHandler } from './common/job-handler';

export const SETTINGS = Symbol('SETTINGS');
export const PRISMA = Symbol('PRISMA');

export type { JobHandler } from './common/job-handler';
export const JOB_HANDLERS = Symbol('JOB_HANDLERS');

/** The worker's collaborators, built once (and closed on shutdown). */
export class WorkerServices {
  readonly repositories: RepositoryRegistry;
  readonly cancels = new CancelRegistry();
  readonly exporter: NbdExporterClient;
  readonly capture: CaptureAgentClient;
  readonly events: JobEventLog;
  readonly backups: BackupService;
  readonly handlers: JobHandler[];
  readonly redis: Redis;
  readonly locks: VmLocks;
  readonly producers: Producers;
  readonly registry: Registry;
  readonly metrics: WorkerMetrics;
  readonly notifier: WebhookNotifier;
  private readonly repositoryRows: BackupRepositoryRepository;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly prisma: PrismaClient,
  ) {
    this.repositories = new RepositoryRegistry(settings.REPOSITORY_ALLOWED_ROOTS.split(':').filter(Boolean));
    this.redis = new Redis(settings.REDIS_URL, { maxRetriesPerRequest: 3 });
    this.redis.on('error', () => undefined);
    this.locks = new VmLocks(this.redis);
    this.exporter = NbdExporterClient.connect({ ...tcpAddress(settings.NBD_EXPORTER_URL), token: settings.SENDENSE_INTERNAL_TOKEN });
    this.capture = CaptureAgentClient.connect({ ...tcpAddress(settings.CAPTURE_AGENT_URL), token: settings.SENDENSE_INTERNAL_TOKEN });
    this.events = new JobEventLog(prisma);
    const secrets = settings.SENDENSE_SECRET_KEY ? new SecretBox(settings.SENDENSE_SECRET_KEY) : null;
    this.backups = new BackupService(prisma, this.repositories, this.exporter, this.capture, secrets, settings.NODE_NAME, this.events, this.locks, {
      cbtAuditSamples: settings.CBT_AUDIT_SAMPLES,
      targetTls: settings.NBD_TARGET_TLS,
      targetTransport: targetTransport(settings),
    });
    const restores = new RestoreDiskService(prisma, this.exporter, this.capture, secrets, settings.NODE_NAME, this.events, this.locks, {
      tls: settings.NBD_TARGET_TLS,
      transport: targetTransport(settings),
    });
    this.producers = new Producers(settings.REDIS_URL);
    this.registry = createRegistry('backup-worker');
    this.metrics = workerMetrics(this.registry);
    const policies = new BackupPolicyRepository(prisma);
    const repositoryRows = new BackupRepositoryRepository(prisma);
    this.repositoryRows = repositoryRows;
    this.notifier = new WebhookNotifier(new WebhookRepository(prisma), this.producers);
    const folders = new FolderResolver(new VCenterRepository(prisma), new VmContextRepository(prisma), secrets);
    const runner = new PolicyRunner(policies, repositoryRows, this.producers, this.redis, this.notifier, this.metrics, folders);
    const alerts = new AlertsService({
      repositories: repositoryRows,
      registry: this.repositories,
      policies,
      notifier: this.notifier,
      redis: this.redis,
      metrics: this.metrics,
      nodeName: settings.NODE_NAME,
      usedPercentThreshold: settings.ALERT_REPOSITORY_USED_PERCENT,
    });
    this.handlers = [
      new BackupVmHandler(this.backups, this.cancels, { committed: (s) => this.metrics.commitDuration.observe(s) }),
      new RestoreDiskHandler(restores, this.cancels),
      ...maintenanceHandlers(new MaintenanceService(prisma, this.repositories)),
      new RunPolicyHandler(runner),
      new CheckAlertsHandler(alerts),
      new WebhookDeliveryHandler(new WebhookRepository(prisma), secrets, this.metrics),
    ];
    // Boot-time refusal: a job name of libs/contracts without a handler would only fail jobs later.
    assertEveryJobHandled(this.handlers);
  }

  recoverInterrupted(): Promise<number> {
    return cleanUpAtStart(this.backups.deps, this.locks, this.settings.NODE_NAME);
  }

  /** Lock files of dead processes removed from this node's repositories. */
  sweepLocks(log: { log(m: string): void; warn(m: string): void }): Promise<number> {
    return sweepNodeLocks(this.repositoryRows, this.repositories, this.settings.NODE_NAME, log);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.cancels.close(), this.exporter.close(), this.capture.close(), this.producers.close()]);
    this.redis.disconnect();
  }
}

/**
 * Consumes this node's backup and maintenance queues. A job whose name has
 * no handler fails permanently with a message that says so (never retried).
 */
@Injectable()
export class QueueConsumers implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('QueueConsumers');
  private readonly workers: Worker[] = [];
  private metricsServer: { port: number; close(): Promise<void> } | null = null;
  private lockSweep: NodeJS.Timeout | undefined;

  constructor(
    @Inject(SETTINGS) private readonly settings: WorkerSettings,
    @Inject(WorkerServices) private readonly services: WorkerServices,
  ) {}

  async onModuleInit(): Promise<void> {
    const byName = new Map(this.services.handlers.map((h) => [h.jobName, h]));
    const process = async (job: Job) => {
      const h = byName.get(job.name);
      if (!h) throw new UnrecoverableError(`this worker has no handler for job ${job.name} (handles: ${[...byName.keys()].join(', ') || 'none'})`);
      return h.handle(job);
    };
    await this.services.cancels.listen(this.settings.REDIS_URL);
    const interrupted = await this.services.recoverInterrupted().catch((err: unknown) => {
      this.log.error(`cleaning up interrupted backups failed: ${String(err)}`);
      return 0;
    });
    if (interrupted) this.log.warn(`cleaned up ${interrupted} restore point(s) of backups interrupted by the last stop`);
    // After the clean-up: the dead runs' lock files go with them, and every LOCK_SWEEP_EVERY whatever else died.
    const sweep = () => this.services.sweepLocks(this.log).catch((err: unknown) => this.log.error(`sweeping stale lock files failed: ${String(err)}`));
    await sweep();
    this.lockSweep = setInterval(() => void sweep(), this.settings.LOCK_SWEEP_EVERY);
    this.lockSweep.unref();
    const connection = { url: this.settings.REDIS_URL, maxRetriesPerRequest: null };
    const node = this.settings.NODE_NAME;
    const backup = new Worker(QueueNames.backup(node), process, { connection, prefix: QUEUE_PREFIX, concurrency: this.settings.BACKUP_CONCURRENCY });
    const maintenance = new Worker(QueueNames.maintenance(node), process, { connection: { ...connection }, prefix: QUEUE_PREFIX, concurrency: 1 });
    // Policy runs and webhook deliveries are system-wide queues: every worker
    // takes from them, BullMQ gives each job (each schedule slot) to one.
    const policies = new Worker(QueueNames.policies, process, {
      connection: { ...connection },
      prefix: QUEUE_PREFIX,
      concurrency: this.settings.POLICY_RUN_CONCURRENCY,
    });
    const webhooks = new Worker(QueueNames.webhooks, process, { connection: { ...connection }, prefix: QUEUE_PREFIX, concurrency: 4 });
    this.workers.push(backup, maintenance, policies, webhooks);
    for (const w of this.workers) w.on('error', (err) => this.log.error(`${w.name}: ${err.message}`));
    this.observe(backup, maintenance);
    // This node's space and stale-VM checks: one scheduler per node on its own maintenance queue.
    await this.services.producers
      .get(QueueNames.maintenance(node))
      .upsertJobScheduler(
        JobIds.alertsScheduler,
        { every: this.settings.ALERT_CHECK_EVERY },
        { name: JobNames.CheckAlerts, data: { requestedBy: 'scheduler' }, opts: DefaultJobOptions.CheckAlertsJob },
      )
      .catch((err: unknown) => this.log.error(`scheduling the alert checks failed: ${String(err)}`));
    if (this.settings.WORKER_METRICS_PORT) {
      queueGauge(this.services.registry, async (g) => {
        for (const w of [backup, maintenance, policies, webhooks]) {
          const counts = await this.services.producers
            .get(w.name)
            .getJobCounts(...QUEUE_STATES)
            .catch(() => ({}) as Record<string, number>);
          for (const [state, n] of Object.entries(counts)) g.set({ queue: w.name, state }, n);
        }
      });
      // Metrics are not worth refusing backups for: a port in use is logged, the worker runs on.
      this.metricsServer = await serveMetrics(this.services.registry, this.settings.WORKER_METRICS_PORT).catch((err: unknown) => {
        this.log.error(`metrics listener on 127.0.0.1:${this.settings.WORKER_METRICS_PORT} not started: ${err instanceof Error ? err.message : String(err)}`);
        return null;
      });
      if (this.metricsServer) this.log.log(`metrics on http://127.0.0.1:${this.metricsServer.port}/metrics`);
    }
    this.log.log(
      `consuming ${this.workers.map((w) => w.name).join(', ')} (BACKUP_CONCURRENCY=${this.settings.BACKUP_CONCURRENCY} backups at once); handlers: ${[...byName.keys()].join(', ')}`,
    );
  }

  /** Metrics and webhook events from the outcome of backup and maintenance jobs. */
  private observe(backup: Worker, maintenance: Worker): void {
    const m = this.services.metrics;
    backup.on('completed', (job: Job, result: BackupRunResult | undefined) => {
      const data = job.data as BackupVmJobData;
      const disks = result?.disks ?? [];
      const type = disks.some((d) => d.type === 'full') ? 'full' : (disks[0]?.type ?? data.requestedType);
      m.backupJobs.inc({ type, result: 'completed' });
      m.bytesTransferred.inc(disks.reduce((s, d) => s + d.bytesTransferred, 0));
      if (data.requestedType !== 'full') m.cbtFallbacks.inc(disks.filter((d) => d.type === 'full').length);
      if (job.processedOn && job.finishedOn) m.backupDuration.observe({ type }, (job.finishedOn - job.processedOn) / 1000);
      // A restore point the CBT audit marked suspect: its chain is not built on (the next backup is a full).
      for (const e of suspectEvents(data, result)) void this.services.notifier.notify('chain.suspect', { ...e });
    });
    backup.on('failed', (job: Job | undefined, err: Error) => {
      if (!job) return;
      const data = job.data as BackupVmJobData;
      void job.getState().then(
        async (state) => {
          // Only the last attempt is a failure; earlier ones are retried.
          if (state !== 'failed') {
            m.backupJobs.inc({ type: data.requestedType, result: 'retried' });
            return;
          }
          m.backupJobs.inc({ type: data.requestedType, result: 'failed' });
          await this.services.notifier.notify('job.failed', {
            job: { runId: data.runId, queue: job.queueName, jobId: job.id, attempts: attemptsEnded(job), requestedBy: data.requestedBy },
            vm: { contextId: data.vmContextId },
            repositoryId: data.repositoryId,
            requestedType: data.requestedType,
            error: err.message,
          });
        },
        () => undefined,
      );
    });
    maintenance.on('completed', (job: Job, result: unknown) => {
      m.maintenanceJobs.inc({ job: job.name, result: 'completed' });
      if (job.name !== JobNames.VerifyRestorePoint) return;
      const r = result as { ok?: boolean; problems?: string[]; restorePointId?: string } | undefined;
      if (r?.ok !== false) return;
      m.verificationFailures.inc();
      void this.services.notifier.notify('chain.damaged', {
        backupId: (job.data as VerifyRestorePointJobData).backupId,
        problems: r.problems ?? [],
        verification: r,
      });
    });
    maintenance.on('failed', (job: Job | undefined) => {
      if (job) m.maintenanceJobs.inc({ job: job.name, result: 'failed' });
    });
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.lockSweep);
    await this.metricsServer?.close();
    // Running backups are aborted (each removes its export, half restore point
    // and snapshot, and its job is retried later); close() waits for that.
    // A job stuck beyond 8 s is abandoned; the next start cleans it up.
    this.services.cancels.abortAll();
    await Promise.race([Promise.allSettled(this.workers.map((w) => w.close())), new Promise((r) => setTimeout(r, 8000).unref())]);
    await this.services.close();
  }
}

@Injectable()
class PrismaLifecycle implements OnApplicationShutdown {
  constructor(@Inject(PRISMA) private readonly prisma: PrismaClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.prisma.$disconnect();
  }
}

@Module({})
export class WorkerModule {
  static forRoot(settings: WorkerSettings): DynamicModule {
    return {
      module: WorkerModule,
      providers: [
        { provide: SETTINGS, useValue: settings },
        { provide: PRISMA, useFactory: () => createPrismaClient(settings.DATABASE_URL) },
        { provide: WorkerServices, useFactory: (prisma: PrismaClient) => new WorkerServices(settings, prisma), inject: [PRISMA] },
        PrismaLifecycle,
        QueueConsumers,
      ],
    };
  }
}
