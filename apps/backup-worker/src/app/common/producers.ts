import { Queue, QueueEvents, type Job } from 'bullmq';
import { DefaultJobOptions, QUEUE_PREFIX, type JobDataByName, type JobName } from '@sendense/contracts';

/**
 * The worker's own producers: a policy run queues VM backups, retention and
 * consolidation on the repository's node, and events queue webhook
 * deliveries. Queues and their event streams are opened on demand and
 * closed with the worker.
 */
export class Producers {
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, Promise<QueueEvents>>();

  constructor(private readonly redisUrl: string) {}

  get(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: { url: this.redisUrl, maxRetriesPerRequest: null }, prefix: QUEUE_PREFIX });
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  add<N extends JobName>(queue: string, name: N, data: JobDataByName[N], jobId: string): Promise<Job> {
    return this.get(queue).add(name, data, { ...DefaultJobOptions[name], jobId });
  }

  /**
   * Add a job under a deterministic id, first removing a finished job that
   * still holds the id (BullMQ keeps finished jobs for a while, and would
   * return the old one). A job of that id still queued or running is returned as it is.
   */
  async addFresh<N extends JobName>(queue: string, name: N, data: JobDataByName[N], jobId: string): Promise<Job> {
    const q = this.get(queue);
    const existing = await q.getJob(jobId);
    if (existing) {
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'failed') return existing;
      await existing.remove().catch(() => undefined);
    }
    return this.add(queue, name, data, jobId);
  }

  /** Resolves with the job's return value, rejects with its final failure (retries are waited for). */
  async waitFor(job: Job, timeoutMs?: number): Promise<unknown> {
    const queue = job.queueName;
    let events = this.events.get(queue);
    if (!events) {
      events = (async () => {
        const e = new QueueEvents(queue, { connection: { url: this.redisUrl, maxRetriesPerRequest: null }, prefix: QUEUE_PREFIX });
        e.on('error', () => undefined);
        await e.waitUntilReady();
        return e;
      })();
      this.events.set(queue, events);
    }
    return job.waitUntilFinished(await events, timeoutMs);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.events.values()].map(async (e) => (await e).close()));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
