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

  /** `pollMs`: how often waitFor reads a job's state besides listening for its finished event. */
  constructor(
    private readonly redisUrl: string,
    private readonly pollMs = 5_000,
    /** QUEUE_PREFIX (the setting; the contracts' default for tools and tests). */
    private readonly prefix = QUEUE_PREFIX,
  ) {}

  get(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: { url: this.redisUrl, maxRetriesPerRequest: null }, prefix: this.prefix });
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

  /**
   * Resolves with the job's return value, rejects with its final failure
   * (retries are waited for). The finished event is the fast path; the job's
   * state is also read every `pollMs`, because an event can be missed (the
   * event stream trimmed or its connection lost across a Redis restart) and
   * a policy run must not then wait for its whole timeout.
   */
  async waitFor(job: Job, timeoutMs?: number): Promise<unknown> {
    const jobId = job.id;
    if (!jobId) throw new Error(`job ${job.name} of queue ${job.queueName} has no id to wait for`);
    const queue = this.get(job.queueName);
    // Per-job events (completed:<id>, failed:<id>) are emitted by QueueEvents but not in its typed listener map.
    const events = (await this.eventsOf(job.queueName)) as unknown as NodeJS.EventEmitter;
    return new Promise<unknown>((resolve, reject) => {
      let settled = false;
      let polling = false;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        events.removeListener(`completed:${jobId}`, onCompleted);
        events.removeListener(`failed:${jobId}`, onFailed);
        clearInterval(poller);
        if (timer) clearTimeout(timer);
        f();
      };
      const onCompleted = (args: { returnvalue: unknown }) => finish(() => resolve(args.returnvalue));
      const onFailed = (args: { failedReason: string }) => finish(() => reject(new Error(args.failedReason)));
      const poll = async () => {
        if (polling || settled) return;
        polling = true;
        try {
          const state = await queue.getJobState(jobId);
          if (state === 'completed' || state === 'failed') {
            const done = await queue.getJob(jobId);
            if (!done)
              return finish(() => reject(new Error(`job ${jobId} of queue ${job.queueName} ended ${state} and was removed before its result was read`)));
            if (state === 'completed') finish(() => resolve(done.returnvalue));
            else finish(() => reject(new Error(done.failedReason || `job ${jobId} of queue ${job.queueName} failed without a reason`)));
          } else if (state === 'unknown') {
            finish(() => reject(new Error(`job ${jobId} of queue ${job.queueName} is gone (removed before it finished); its result cannot be known`)));
          }
        } catch {
          // Redis away for a moment: the next poll (or the event) decides.
        } finally {
          polling = false;
        }
      };
      events.on(`completed:${jobId}`, onCompleted);
      events.on(`failed:${jobId}`, onFailed);
      const poller = setInterval(() => void poll(), this.pollMs);
      const timer = timeoutMs
        ? setTimeout(() => finish(() => reject(new Error(`job ${jobId} of queue ${job.queueName} did not finish within ${timeoutMs} ms`))), timeoutMs)
        : null;
      // Subscribed first, then read once: a job that finished before the subscription is seen at once.
      void poll();
    });
  }

  private eventsOf(queue: string): Promise<QueueEvents> {
    let events = this.events.get(queue);
    if (!events) {
      events = (async () => {
        const e = new QueueEvents(queue, { connection: { url: this.redisUrl, maxRetriesPerRequest: null }, prefix: this.prefix });
        e.on('error', () => undefined);
        await e.waitUntilReady();
        return e;
      })();
      this.events.set(queue, events);
    }
    return events;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.events.values()].map(async (e) => (await e).close()));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
