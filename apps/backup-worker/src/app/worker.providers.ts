import type { Provider } from '@nestjs/common';
import { Redis } from 'ioredis';
import { CaptureAgentClient, NbdExporterClient } from '@sendense/contracts';
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
import { createRegistry, workerMetrics, type Registry, type WorkerMetrics } from '@sendense/metrics';
import { Producers } from './common/producers';
import { assertEveryJobHandled, type JobHandler } from './common/job-handler';
import { WebhookNotifier } from './webhooks/webhook-notifier';
import { WebhookDeliveryHandler } from './webhooks/webhook-delivery';
import { PolicyRunner } from './policies/policy-runner';
import { FolderResolver } from './policies/folder-resolver';
import { CheckAlertsHandler, RunPolicyHandler } from './policies/policy.handlers';
import { AlertsService } from './alerts/alerts.service';
import { BackupService } from './backup/backup.service';
import { BackupVmHandler } from './backup/backup-vm.handler';
import { CancelRegistry } from './backup/cancel-registry';
import { VmLocks } from './backup/vm-lock';
import { JobEventLog } from './backup/job-event-log';
import { RepositoryRegistry } from './repositories/repository-registry';
import { MaintenanceService } from './maintenance/maintenance.service';
import { maintenanceHandlers } from './maintenance/maintenance.handlers';
import { RestoreDiskHandler, RestoreDiskService } from './restore/restore-disk.service';
import { JOB_HANDLERS, METRICS_REGISTRY, PRISMA, REDIS, SECRETS, SETTINGS, WORKER_METRICS } from './worker.tokens';

/** The libs/db repositories the worker uses; each is built on the one client. */
const REPOSITORIES = [BackupPolicyRepository, BackupRepositoryRepository, VCenterRepository, VmContextRepository, WebhookRepository] as const;

/** Settings, the database, Redis, the internal service clients, producers and metrics: built from the settings alone. */
function infrastructure(settings: WorkerSettings): Provider[] {
  const internal = { token: settings.SENDENSE_INTERNAL_TOKEN };
  return [
    { provide: SETTINGS, useValue: settings },
    { provide: PRISMA, useFactory: () => createPrismaClient(settings.DATABASE_URL) },
    ...REPOSITORIES.map((R) => ({ provide: R, inject: [PRISMA], useFactory: (p: PrismaClient) => new R(p) })),
    { provide: SECRETS, useFactory: () => (settings.SENDENSE_SECRET_KEY ? new SecretBox(settings.SENDENSE_SECRET_KEY) : null) },
    {
      provide: REDIS,
      useFactory: () => {
        const redis = new Redis(settings.REDIS_URL, { maxRetriesPerRequest: 3 });
        redis.on('error', () => undefined);
        return redis;
      },
    },
    { provide: RepositoryRegistry, useFactory: () => new RepositoryRegistry(settings.REPOSITORY_ALLOWED_ROOTS.split(':').filter(Boolean)) },
    { provide: CancelRegistry, useFactory: () => new CancelRegistry() },
    { provide: VmLocks, inject: [REDIS], useFactory: (redis: Redis) => new VmLocks(redis) },
    { provide: NbdExporterClient, useFactory: () => NbdExporterClient.connect({ ...tcpAddress(settings.NBD_EXPORTER_URL), ...internal }) },
    { provide: CaptureAgentClient, useFactory: () => CaptureAgentClient.connect({ ...tcpAddress(settings.CAPTURE_AGENT_URL), ...internal }) },
    { provide: JobEventLog, inject: [PRISMA], useFactory: (p: PrismaClient) => new JobEventLog(p) },
    { provide: Producers, useFactory: () => new Producers(settings.REDIS_URL, undefined, settings.QUEUE_PREFIX) },
    { provide: METRICS_REGISTRY, useFactory: () => createRegistry('backup-worker') },
    { provide: WORKER_METRICS, inject: [METRICS_REGISTRY], useFactory: (r: Registry) => workerMetrics(r) },
  ];
}

/** The services the job handlers call. */
function services(settings: WorkerSettings): Provider[] {
  const node = settings.NODE_NAME;
  return [
    {
      provide: BackupService,
      inject: [PRISMA, RepositoryRegistry, NbdExporterClient, CaptureAgentClient, SECRETS, JobEventLog, VmLocks],
      useFactory: (
        prisma: PrismaClient,
        registry: RepositoryRegistry,
        exporter: NbdExporterClient,
        capture: CaptureAgentClient,
        secrets: SecretBox | null,
        events: JobEventLog,
        locks: VmLocks,
      ) =>
        new BackupService(prisma, registry, exporter, capture, secrets, node, events, locks, {
          cbtAuditSamples: settings.CBT_AUDIT_SAMPLES,
          targetTls: settings.NBD_TARGET_TLS,
          targetTransport: targetTransport(settings),
        }),
    },
    {
      provide: RestoreDiskService,
      inject: [PRISMA, NbdExporterClient, CaptureAgentClient, SECRETS, JobEventLog, VmLocks],
      useFactory: (
        prisma: PrismaClient,
        exporter: NbdExporterClient,
        capture: CaptureAgentClient,
        secrets: SecretBox | null,
        events: JobEventLog,
        locks: VmLocks,
      ) =>
        new RestoreDiskService(prisma, exporter, capture, secrets, node, events, locks, { tls: settings.NBD_TARGET_TLS, transport: targetTransport(settings) }),
    },
    { provide: MaintenanceService, inject: [PRISMA, RepositoryRegistry], useFactory: (p: PrismaClient, r: RepositoryRegistry) => new MaintenanceService(p, r) },
    { provide: WebhookNotifier, inject: [WebhookRepository, Producers], useFactory: (w: WebhookRepository, p: Producers) => new WebhookNotifier(w, p) },
    {
      provide: FolderResolver,
      inject: [VCenterRepository, VmContextRepository, SECRETS],
      useFactory: (v: VCenterRepository, vms: VmContextRepository, secrets: SecretBox | null) => new FolderResolver(v, vms, secrets),
    },
    {
      provide: PolicyRunner,
      inject: [BackupPolicyRepository, BackupRepositoryRepository, Producers, REDIS, WebhookNotifier, WORKER_METRICS, FolderResolver],
      useFactory: (...args: ConstructorParameters<typeof PolicyRunner>) => new PolicyRunner(...args),
    },
    {
      provide: AlertsService,
      inject: [BackupRepositoryRepository, RepositoryRegistry, BackupPolicyRepository, WebhookNotifier, REDIS, WORKER_METRICS],
      useFactory: (
        repositories: BackupRepositoryRepository,
        registry: RepositoryRegistry,
        policies: BackupPolicyRepository,
        notifier: WebhookNotifier,
        redis: Redis,
        metrics: WorkerMetrics,
      ) =>
        new AlertsService({
          repositories,
          registry,
          policies,
          notifier,
          redis,
          metrics,
          nodeName: node,
          usedPercentThreshold: settings.ALERT_REPOSITORY_USED_PERCENT,
        }),
    },
  ];
}

/** One handler per job name of libs/contracts; a missing or doubled one refuses the start (assertEveryJobHandled). */
const jobHandlers: Provider = {
  provide: JOB_HANDLERS,
  inject: [BackupService, CancelRegistry, WORKER_METRICS, RestoreDiskService, MaintenanceService, PolicyRunner, AlertsService, WebhookRepository, SECRETS],
  useFactory: (
    backups: BackupService,
    cancels: CancelRegistry,
    metrics: WorkerMetrics,
    restores: RestoreDiskService,
    maintenance: MaintenanceService,
    runner: PolicyRunner,
    alerts: AlertsService,
    webhooks: WebhookRepository,
    secrets: SecretBox | null,
  ): JobHandler[] => {
    const handlers = [
      new BackupVmHandler(backups, cancels, { committed: (s) => metrics.commitDuration.observe(s) }),
      new RestoreDiskHandler(restores, cancels),
      ...maintenanceHandlers(maintenance),
      new RunPolicyHandler(runner),
      new CheckAlertsHandler(alerts),
      new WebhookDeliveryHandler(webhooks, secrets, metrics),
    ];
    // Boot-time refusal: a job name of libs/contracts without a handler would only fail jobs later.
    assertEveryJobHandled(handlers);
    return handlers;
  },
};

/** The worker's collaborators as Nest providers, built once from the settings. */
export function workerProviders(settings: WorkerSettings): Provider[] {
  return [...infrastructure(settings), ...services(settings), jobHandlers];
}
