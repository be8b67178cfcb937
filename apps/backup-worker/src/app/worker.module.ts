import { Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { CaptureAgentClient, NbdExporterClient, QUEUE_PREFIX, QueueNames } from '@sendense/contracts';
import { tcpAddress, type WorkerSettings } from '@sendense/config';
import { createPrismaClient, SecretBox, type PrismaClient } from '@sendense/db';
import { BackupService } from './backup/backup.service';
import { BackupVmHandler } from './backup/backup-vm.handler';
import { CancelRegistry } from './backup/cancel-registry';
import { cleanUpAtStart } from './backup/interrupted-runs';
import { VmLocks } from './backup/vm-lock';
import { Redis } from 'ioredis';
import { JobEventLog } from './backup/job-event-log';
import { RepositoryRegistry } from './repositories/repository-registry';
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
    });
    const restores = new RestoreDiskService(prisma, this.exporter, this.capture, secrets, settings.NODE_NAME, this.events, this.locks);
    this.handlers = [
      new BackupVmHandler(this.backups, this.cancels),
      new RestoreDiskHandler(restores, this.cancels),
      ...maintenanceHandlers(new MaintenanceService(prisma, this.repositories)),
    ];
    // Boot-time refusal: a job name of libs/contracts without a handler would only fail jobs later.
    assertEveryJobHandled(this.handlers);
  }

  recoverInterrupted(): Promise<number> {
    return cleanUpAtStart(this.backups.deps, this.locks, this.settings.NODE_NAME);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.cancels.close(), this.exporter.close(), this.capture.close()]);
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
    const connection = { url: this.settings.REDIS_URL, maxRetriesPerRequest: null };
    const node = this.settings.NODE_NAME;
    this.workers.push(
      new Worker(QueueNames.backup(node), process, { connection, prefix: QUEUE_PREFIX, concurrency: this.settings.BACKUP_CONCURRENCY }),
      new Worker(QueueNames.maintenance(node), process, { connection: { ...connection }, prefix: QUEUE_PREFIX, concurrency: 1 }),
    );
    for (const w of this.workers) w.on('error', (err) => this.log.error(`${w.name}: ${err.message}`));
    this.log.log(`consuming ${this.workers.map((w) => w.name).join(', ')} (BACKUP_CONCURRENCY=${this.settings.BACKUP_CONCURRENCY} backups at once); handlers: ${[...byName.keys()].join(', ')}`);
  }

  async onApplicationShutdown(): Promise<void> {
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
