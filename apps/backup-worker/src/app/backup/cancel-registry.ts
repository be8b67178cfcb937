import { Redis } from 'ioredis';

import { CANCEL_CHANNEL, cancelRequestKey } from '@sendense/contracts';

/** The reason of an abort because this worker is stopping: the job is retried elsewhere. */
export class WorkerStopping extends Error {
  override name = 'WorkerStopping';
}

/**
 * Cancels reach the worker that runs the job through Redis pub/sub (the
 * gateway publishes the run id; whichever worker has it aborts it).
 */
export class CancelRegistry {
  private readonly running = new Map<string, AbortController>();
  private sub: Redis | null = null;
  private cmd: Redis | null = null;

  async listen(redisUrl: string): Promise<void> {
    this.cmd = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
    this.cmd.on('error', () => undefined);
    this.sub = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.sub.on('error', () => undefined);
    this.sub.on('message', (_ch: string, runId: string) => this.cancel(runId));
    await this.sub.subscribe(CANCEL_CHANNEL);
  }

  register(runId: string): AbortSignal {
    const ac = new AbortController();
    this.running.set(runId, ac);
    return ac.signal;
  }

  /**
   * register(), and aborted at once when a cancel was recorded for the run
   * while no worker held it (the one running it died): the cancel is durable.
   */
  async registerDurable(runId: string): Promise<AbortSignal> {
    const signal = this.register(runId);
    // Redis away: the job itself came through Redis a moment ago; without an answer the run goes on (a live cancel still reaches it).
    const recorded = this.cmd ? await this.cmd.exists(cancelRequestKey(runId)).catch(() => 0) : 0;
    if (recorded > 0) this.cancel(runId);
    return signal;
  }

  unregister(runId: string): void {
    this.running.delete(runId);
  }

  cancel(runId: string): boolean {
    const ac = this.running.get(runId);
    if (!ac) return false;
    ac.abort(new Error('cancelled by an operator'));
    return true;
  }

  /** Abort every run (shutdown): each cleans up and its job is retried. */
  abortAll(): void {
    for (const ac of this.running.values()) ac.abort(new WorkerStopping('the worker is stopping'));
  }

  async close(): Promise<void> {
    this.sub?.disconnect();
    this.sub = null;
    this.cmd?.disconnect();
    this.cmd = null;
  }
}
