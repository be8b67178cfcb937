import { randomUUID } from 'node:crypto';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { BullModule, BullRegistrar } from '@nestjs/bullmq';
import { Queue, QueueEvents } from 'bullmq';
import { QUEUE_PREFIX } from '@sendense/contracts';
import { JOB_HANDLERS } from '../worker.tokens';
import type { JobHandler } from './job-handler';
import { JobProcessor, processorFor } from './job-processor';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const connection = { url: REDIS_URL, maxRetriesPerRequest: null };

@Module({})
class TestModule {}

/**
 * processorFor on the real Redis, wired as WorkerModule wires it: the Worker
 * @nestjs/bullmq makes has the queue, the prefix of BullModule.forRoot and
 * the concurrency given, is made only on BullRegistrar.register()
 * (manualRegistration), runs the handler of a job's name, fails a job of
 * another name at once (no retry), and is closed with the application.
 */
describe('processorFor: a JobProcessor as the @nestjs/bullmq processor of one queue', () => {
  const queueName = `test-processor-${randomUUID()}`;
  const Consumer = processorFor(JobProcessor, queueName, { concurrency: 3 });
  const handlers: JobHandler[] = [{ jobName: 'Echo', handle: async (job) => ({ echoed: job.data }) }];
  let app: INestApplicationContext;
  let queue: Queue;
  let events: QueueEvents;

  beforeAll(async () => {
    app = await NestFactory.createApplicationContext(
      {
        module: TestModule,
        imports: [
          BullModule.forRoot({ connection, prefix: QUEUE_PREFIX, extraOptions: { manualRegistration: true } }),
          BullModule.registerQueue({ name: queueName }),
        ],
        providers: [{ provide: JOB_HANDLERS, useValue: handlers }, Consumer],
      },
      { logger: false },
    );
    queue = new Queue(queueName, { connection, prefix: QUEUE_PREFIX });
    events = new QueueEvents(queueName, { connection, prefix: QUEUE_PREFIX });
    await events.waitUntilReady();
  });

  afterAll(async () => {
    await app?.close();
    await events?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
  });

  it('makes no Worker before register(), then one with the queue, prefix and concurrency', async () => {
    const consumer = app.get(Consumer);
    expect(() => consumer.worker).toThrow('"Worker" has not yet been initialized');
    app.get(BullRegistrar).register();
    const w = consumer.worker;
    expect({ name: w.name, prefix: w.opts.prefix, concurrency: w.opts.concurrency }).toEqual({ name: queueName, prefix: QUEUE_PREFIX, concurrency: 3 });
    await w.waitUntilReady();
  });

  it("runs the handler of the job's name", async () => {
    const job = await queue.add('Echo', { n: 1 });
    await expect(job.waitUntilFinished(events, 10_000)).resolves.toEqual({ echoed: { n: 1 } });
  });

  it('fails a job whose name has no handler once, naming the handled jobs', async () => {
    const job = await queue.add('Nobody', {}, { attempts: 3 });
    await expect(job.waitUntilFinished(events, 10_000)).rejects.toThrow('this worker has no handler for job Nobody (handles: Echo)');
    const done = await queue.getJob(job.id as string);
    expect({ state: await done?.getState(), attemptsMade: done?.attemptsMade }).toEqual({ state: 'failed', attemptsMade: 1 });
  });

  it('closes the Worker with the application', async () => {
    const w = app.get(Consumer).worker;
    await app.close();
    expect(w.closing).toBeDefined();
    expect(w.isRunning()).toBe(false);
  });
});
