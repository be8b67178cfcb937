import { Inject, Logger, type Type } from '@nestjs/common';
import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { UnrecoverableError, type Job, type WorkerOptions } from 'bullmq';
import { JOB_HANDLERS } from '../worker.tokens';
import type { JobHandler } from './job-handler';

/**
 * One queue's consumer (@nestjs/bullmq makes its Worker): a job goes to the
 * handler of its name. A job whose name has no handler fails permanently
 * with a message that says so (never retried).
 */
export class JobProcessor extends WorkerHost {
  protected readonly log = new Logger('QueueConsumers');
  private readonly byName: Map<string, JobHandler>;

  constructor(@Inject(JOB_HANDLERS) handlers: JobHandler[]) {
    super();
    this.byName = new Map(handlers.map((h) => [h.jobName, h]));
  }

  /** The job names this processor handles, as the start-up line lists them. */
  get handled(): string[] {
    return [...this.byName.keys()];
  }

  async process(job: Job): Promise<unknown> {
    const h = this.byName.get(job.name);
    if (!h) throw new UnrecoverableError(`this worker has no handler for job ${job.name} (handles: ${this.handled.join(', ') || 'none'})`);
    return h.handle(job);
  }

  @OnWorkerEvent('error')
  onError(err: Error): void {
    this.log.error(`${this.worker.name}: ${err.message}`);
  }
}

/**
 * `base` made the processor of `queue`: a subclass with `@Processor(queue,
 * options)`, because the queue names (per node) and concurrencies are only
 * known from the settings at WorkerModule.forRoot. Connection and prefix come
 * from BullModule.forRoot, through the queue's registration.
 */
export function processorFor<T extends Type<JobProcessor>>(base: T, queue: string, options: Omit<WorkerOptions, 'connection' | 'prefix'>): T {
  const cls = class extends base {};
  Object.defineProperty(cls, 'name', { value: `${base.name}[${queue}]` });
  Processor(queue, options)(cls);
  return cls;
}
