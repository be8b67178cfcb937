import { Module, type DynamicModule } from '@nestjs/common';
import { BullModule, getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { QueueNames } from '@sendense/contracts';
import type { WorkerSettings } from '@sendense/config';
import { JobProcessor, processorFor } from './common/job-processor';
import { BackupQueueProcessor, MaintenanceQueueProcessor } from './queue-processors';
import { workerProviders } from './worker.providers';
import { ClientsLifecycle, WorkerLifecycle } from './worker.lifecycle';
import { CONSUMED_QUEUES, CONSUMERS } from './worker.tokens';

export type { JobHandler } from './common/job-handler';
export { JOB_HANDLERS, PRISMA, SETTINGS } from './worker.tokens';

/**
 * The backup worker: this node's backup and maintenance queues and the
 * system-wide policies and webhooks queues, each consumed by a
 * @nestjs/bullmq processor (WorkerHost) whose queue name and concurrency
 * come from the settings.
 */
@Module({})
export class WorkerModule {
  static forRoot(settings: WorkerSettings): DynamicModule {
    const node = settings.NODE_NAME;
    const names = [QueueNames.backup(node), QueueNames.maintenance(node), QueueNames.policies, QueueNames.webhooks];
    const consumers = [
      processorFor(BackupQueueProcessor, QueueNames.backup(node), { concurrency: settings.BACKUP_CONCURRENCY }),
      processorFor(MaintenanceQueueProcessor, QueueNames.maintenance(node), { concurrency: 1 }),
      // Policy runs and webhook deliveries are system-wide queues: every worker
      // takes from them, BullMQ gives each job (each schedule slot) to one.
      processorFor(JobProcessor, QueueNames.policies, { concurrency: settings.POLICY_RUN_CONCURRENCY }),
      processorFor(JobProcessor, QueueNames.webhooks, { concurrency: 4 }),
    ];
    return {
      module: WorkerModule,
      imports: [
        // manualRegistration: the Workers are made (and consume) only once WorkerLifecycle has cleaned up after the last stop.
        BullModule.forRoot({
          connection: { url: settings.REDIS_URL, maxRetriesPerRequest: null },
          prefix: settings.QUEUE_PREFIX,
          extraOptions: { manualRegistration: true },
        }),
        // Each processor's Worker takes connection and prefix from its queue's options.
        BullModule.registerQueue(...names.map((name) => ({ name }))),
      ],
      providers: [
        ...workerProviders(settings),
        ...consumers,
        { provide: CONSUMERS, inject: consumers, useFactory: (...processors: JobProcessor[]) => processors },
        {
          provide: CONSUMED_QUEUES,
          inject: names.map((n) => getQueueToken(n)),
          useFactory: (...queues: Queue[]) => {
            // A queue's connection errors are the Workers' to report (they retry); unheard, an 'error' event would throw.
            for (const q of queues) q.on('error', () => undefined);
            return queues;
          },
        },
        WorkerLifecycle,
        ClientsLifecycle,
      ],
    };
  }
}
