import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { Queue } from 'bullmq';
import { DefaultJobOptions, QUEUE_PREFIX, QueueNames, type JobDataByName, type JobName } from '@sendense/contracts';
import type { GatewaySettings } from '@sendense/config';
import type { PrismaClient } from '@sendense/db';
import { PRISMA, SETTINGS } from '../common/tokens';

/**
 * The gateway's producers. Queues are per storage node; the registry opens
 * them on demand and closes them on shutdown. Controllers never touch a
 * Queue: they call typed services that use this registry.
 */
@Injectable()
export class QueueRegistry implements OnModuleDestroy {
  private readonly queues = new Map<string, Queue>();
  private readonly connection: { url: string; maxRetriesPerRequest: null; enableOfflineQueue: boolean };

  constructor(
    @Inject(SETTINGS) settings: GatewaySettings,
    @Inject(PRISMA) private readonly prisma: PrismaClient,
  ) {
    this.connection = { url: settings.REDIS_URL, maxRetriesPerRequest: null, enableOfflineQueue: false };
  }

  get(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: { ...this.connection }, prefix: QUEUE_PREFIX });
      q.on('error', () => undefined); // reported through /health, not as crashes
      this.queues.set(name, q);
    }
    return q;
  }

  /** Every queue of every storage node that has a repository, plus this node's. */
  async knownQueues(ownNode: string): Promise<Queue[]> {
    const nodes = new Set<string>([ownNode]);
    try {
      const rows = await this.prisma.backupRepository.findMany({ select: { storageNode: true }, distinct: ['storageNode'] });
      for (const r of rows) nodes.add(r.storageNode);
    } catch {
      // database down: show what we know
    }
    const out: Queue[] = [];
    for (const n of nodes) out.push(this.get(QueueNames.backup(n)), this.get(QueueNames.maintenance(n)));
    return out;
  }

  async add<N extends JobName>(queueName: string, name: N, data: JobDataByName[N], jobId: string) {
    return this.get(queueName).add(name, data, { ...DefaultJobOptions[name], jobId });
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
