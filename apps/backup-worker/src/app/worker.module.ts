import { Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { QUEUE_PREFIX, QueueNames } from '@sendense/contracts';
import type { WorkerSettings } from '@sendense/config';
import { createPrismaClient, type PrismaClient } from '@sendense/db';

export const SETTINGS = Symbol('SETTINGS');
export const PRISMA = Symbol('PRISMA');

/** A processor for one job name; processors are thin and call services. */
export interface JobHandler {
  readonly jobName: string;
  handle(job: Job): Promise<unknown>;
}
export const JOB_HANDLERS = Symbol('JOB_HANDLERS');

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
    @Inject(JOB_HANDLERS) private readonly handlers: JobHandler[],
  ) {}

  onModuleInit(): void {
    const byName = new Map(this.handlers.map((h) => [h.jobName, h]));
    const process = async (job: Job) => {
      const h = byName.get(job.name);
      if (!h) throw new UnrecoverableError(`this worker has no handler for job ${job.name} (handles: ${[...byName.keys()].join(', ') || 'none'})`);
      return h.handle(job);
    };
    const connection = { url: this.settings.REDIS_URL, maxRetriesPerRequest: null };
    const node = this.settings.NODE_NAME;
    this.workers.push(
      new Worker(QueueNames.backup(node), process, { connection, prefix: QUEUE_PREFIX, concurrency: this.settings.BACKUP_CONCURRENCY }),
      new Worker(QueueNames.maintenance(node), process, { connection: { ...connection }, prefix: QUEUE_PREFIX, concurrency: 1 }),
    );
    for (const w of this.workers) w.on('error', (err) => this.log.error(`${w.name}: ${err.message}`));
    this.log.log(`consuming ${this.workers.map((w) => w.name).join(', ')}; handlers: ${[...byName.keys()].join(', ') || 'none'}`);
  }

  async onApplicationShutdown(): Promise<void> {
    // close() waits for active jobs; a stuck job is abandoned after 8 s and
    // BullMQ's stalled-job check hands it to another worker.
    await Promise.race([Promise.allSettled(this.workers.map((w) => w.close())), new Promise((r) => setTimeout(r, 8000).unref())]);
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
  static forRoot(settings: WorkerSettings, handlers: JobHandler[] = []): DynamicModule {
    return {
      module: WorkerModule,
      providers: [
        { provide: SETTINGS, useValue: settings },
        { provide: PRISMA, useFactory: () => createPrismaClient(settings.DATABASE_URL) },
        { provide: JOB_HANDLERS, useValue: handlers },
        PrismaLifecycle,
        QueueConsumers,
      ],
    };
  }
}
