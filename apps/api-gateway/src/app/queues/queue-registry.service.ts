import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { Queue, QueueEvents, type Job } from 'bullmq';
import { DefaultJobOptions, QueueNames, type JobDataByName, type JobName } from '@sendense/contracts';
import type { GatewaySettings } from '@sendense/config';
import { BackupRepositoryRepository } from '@sendense/db';
import { SETTINGS } from '../common/tokens';

/**
 * The gateway's producers. Queues are per storage node; the registry opens
 * them on demand and closes them on shutdown. Controllers never touch a
 * Queue: they call typed services that use this registry.
 */
@Injectable()
export class QueueRegistry implements OnModuleDestroy {
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, QueueEvents>();
  private readonly connection: { url: string; maxRetriesPerRequest: null; enableOfflineQueue: boolean };

  constructor(
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly repositories: BackupRepositoryRepository,
  ) {
    this.connection = { url: this.settings.REDIS_URL, maxRetriesPerRequest: null, enableOfflineQueue: false };
  }

  get(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: { ...this.connection }, prefix: this.settings.QUEUE_PREFIX });
      q.on('error', () => undefined); // reported through /health, not as crashes
      this.queues.set(name, q);
    }
    return q;
  }

  /** Every queue of every storage node that has a repository, plus this node's. */
  async knownQueues(ownNode: string): Promise<Queue[]> {
    const nodes = new Set<string>([ownNode]);
    try {
      for (const n of await this.repositories.storageNodes()) nodes.add(n);
    } catch {
      // database down: show what we know
    }
    const out: Queue[] = [];
    for (const n of nodes) out.push(this.get(QueueNames.backup(n)), this.get(QueueNames.maintenance(n)));
    return out;
  }

  /** The backup queue of every storage node that has a repository, plus this node's. */
  async knownBackupQueues(ownNode: string): Promise<Queue[]> {
    const backupOf = new Set<string>();
    const nodes = new Set<string>([ownNode]);
    try {
      for (const n of await this.repositories.storageNodes()) nodes.add(n);
    } catch {
      // database down: this node's queue only
    }
    for (const n of nodes) backupOf.add(QueueNames.backup(n));
    return [...backupOf].map((q) => this.get(q));
  }

  async add<N extends JobName>(queueName: string, name: N, data: JobDataByName[N], jobId: string) {
    return this.get(queueName).add(name, data, { ...DefaultJobOptions[name], jobId });
  }

  private async eventsOf(name: string): Promise<QueueEvents> {
    let e = this.events.get(name);
    if (!e) {
      e = new QueueEvents(name, { connection: { ...this.connection, enableOfflineQueue: true }, prefix: this.settings.QUEUE_PREFIX });
      e.on('error', () => undefined);
      this.events.set(name, e);
      await e.waitUntilReady();
    }
    return e;
  }

  /**
   * Run a maintenance job on the repository's node and wait for its answer,
   * so that the API can say at once whether it worked (e.g. 409 when other
   * restore points depend on the one to delete).
   */
  async runAndWait<N extends JobName>(queueName: string, name: N, data: JobDataByName[N], jobId: string, timeoutMs: number): Promise<unknown> {
    const events = await this.eventsOf(queueName);
    const queue = this.get(queueName);
    const stale = await queue.getJob(jobId);
    if (stale && ((await stale.isCompleted()) || (await stale.isFailed()))) await stale.remove();
    const job: Job = await queue.add(name, data, { ...DefaultJobOptions[name], jobId });
    return job.waitUntilFinished(events, timeoutMs);
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.allSettled([...this.events.values()].map((e) => e.close()));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    this.events.clear();
  }
}
