import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { JobNames, QUEUE_PREFIX, type CheckAlertsJobData } from '@sendense/contracts';
import { Producers } from './producers';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const connection = { url: REDIS_URL, maxRetriesPerRequest: null };

/**
 * Producers.waitFor on the real Redis with a real BullMQ worker: the
 * finished event resolves it, and when the event never arrives (its event
 * stream dead, as after a lost connection) reading the job's state still
 * ends the wait with the result or the failure, long before the timeout.
 */
describe('Producers.waitFor', () => {
  const queueName = `test-producers-${randomUUID()}`;
  let producers: Producers;
  let worker: Worker;
  let queue: Queue;
  // The test holds each job until it lets it go.
  const release = new Map<string, (v: unknown) => void>();

  beforeAll(async () => {
    producers = new Producers(REDIS_URL, 200);
    queue = new Queue(queueName, { connection, prefix: QUEUE_PREFIX });
    worker = new Worker(
      queueName,
      // A job whose requestedBy starts with "fail: " fails with the rest as its reason.
      async (job: Job<CheckAlertsJobData>) => {
        const out = await new Promise<unknown>((r) => release.set(job.id as string, r));
        if (job.data.requestedBy.startsWith('fail: ')) throw new Error(job.data.requestedBy.slice(6));
        return out;
      },
      { connection, prefix: QUEUE_PREFIX, concurrency: 4 },
    );
    await worker.waitUntilReady();
  });

  afterAll(async () => {
    for (const r of release.values()) r(null);
    await worker?.close();
    await producers?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
  });

  const started = async (id: string) => {
    for (let i = 0; i < 100 && !release.has(id); i++) await new Promise((r) => setTimeout(r, 50));
    expect(release.has(id)).toBe(true);
  };
  /** The producers' event stream for the queue stops: no finished event reaches waitFor any more. */
  const killEvents = async () => {
    const events = await (producers as unknown as { events: Map<string, Promise<{ close(): Promise<void> }>> }).events.get(queueName);
    expect(events).toBeDefined();
    await events!.close();
  };

  it('resolves with the return value from the finished event', async () => {
    const job = await producers.add(queueName, JobNames.CheckAlerts, { requestedBy: 'test' }, 'ok-1');
    const wait = producers.waitFor(job, 60_000);
    await started('ok-1');
    release.get('ok-1')!({ bytes: 42 });
    await expect(wait).resolves.toEqual({ bytes: 42 });
  });

  it('a job finished before the wait began resolves at once', async () => {
    const job = await producers.add(queueName, JobNames.CheckAlerts, { requestedBy: 'test' }, 'early-1');
    await started('early-1');
    release.get('early-1')!('done early');
    for (let i = 0; i < 100 && (await queue.getJobState('early-1')) !== 'completed'; i++) await new Promise((r) => setTimeout(r, 50));
    await expect(producers.waitFor(job, 60_000)).resolves.toBe('done early');
  });

  it('without the event, reads the completed job within the poll interval, not at the timeout', async () => {
    const job = await producers.add(queueName, JobNames.CheckAlerts, { requestedBy: 'test' }, 'missed-1');
    await started('missed-1');
    await killEvents();
    const t0 = Date.now();
    const wait = producers.waitFor(job, 86_400_000);
    release.get('missed-1')!({ fine: true });
    await expect(wait).resolves.toEqual({ fine: true });
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('without the event, a failed job rejects with its failure; a removed job with what happened', async () => {
    const failing = await producers.add(queueName, JobNames.CheckAlerts, { requestedBy: 'fail: disk 0 of vm-7: NBD write failed' }, 'missed-fail');
    await started('missed-fail');
    const wait = producers.waitFor(failing, 86_400_000);
    release.get('missed-fail')!(null);
    await expect(wait).rejects.toThrow('disk 0 of vm-7: NBD write failed');

    const gone = await producers.add(queueName, JobNames.CheckAlerts, { requestedBy: 'test' }, 'gone-1');
    await started('gone-1');
    const waitGone = producers.waitFor(gone, 86_400_000);
    await queue.obliterate({ force: true });
    await expect(waitGone).rejects.toThrow(/gone-1 .* is gone/);
  });

  it('still times out when the job never ends', async () => {
    const job = await producers.add(queueName, JobNames.CheckAlerts, { requestedBy: 'test' }, 'slow-1');
    await started('slow-1');
    await expect(producers.waitFor(job, 800)).rejects.toThrow(/slow-1 .* did not finish within 800 ms/);
  });
});
