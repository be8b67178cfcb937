import { randomUUID } from 'node:crypto';
import { Job, Queue, Worker } from 'bullmq';
import { attemptsEnded, QUEUE_PREFIX } from './queues';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const connection = { url: REDIS_URL, maxRetriesPerRequest: null };

/**
 * attemptsEnded on the real Redis with real BullMQ workers: a job retried
 * after an error and one retried after its worker died (its lock ran out, the
 * stalled-job check put it back) count their attempts alike. BullMQ's own
 * attemptsMade does not: it leaves the stalled attempt out.
 */
describe('attemptsEnded', () => {
  const queueName = `test-attempts-${randomUUID()}`;
  let queue: Queue;
  const workers: Worker[] = [];

  beforeAll(async () => {
    queue = new Queue(queueName, { connection, prefix: QUEUE_PREFIX });
    await queue.waitUntilReady();
  });

  afterAll(async () => {
    for (const w of workers) await w.close(true).catch(() => undefined);
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
  });

  const finished = async (id: string, timeoutMs = 20_000): Promise<Job> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      // The state first, then the record: a record read while the job was still active holds its counters from then.
      const state = await queue.getJobState(id);
      if (state === 'completed') return (await queue.getJob(id))!;
      if (Date.now() > until) throw new Error(`job ${id} did not complete within ${timeoutMs} ms (state ${state})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it('counts an error retry and a stall retry the same: two attempts for a retry that completed', async () => {
    // Error retry: the first attempt throws, BullMQ retries it, the second completes.
    const errored = await queue.add('errored', {}, { jobId: 'job-errored', attempts: 3, backoff: { type: 'fixed', delay: 300 } });
    let calls = 0;
    const w1 = new Worker(
      queueName,
      async (job: Job) => {
        if (job.id !== 'job-errored') throw new Error(`unexpected job ${job.id}`);
        calls += 1;
        if (calls === 1) throw new Error('first attempt fails');
        return 'ok';
      },
      // Every worker of the queue checks for stalls every 300 ms (the check is queue-wide, the last one sets the pace).
      { connection, prefix: QUEUE_PREFIX, stalledInterval: 300 },
    );
    workers.push(w1);
    await w1.waitUntilReady();
    // Between the attempts (waiting out the backoff) one attempt has ended.
    const until = Date.now() + 10_000;
    while (Date.now() < until && (await queue.getJobState(errored.id!)) !== 'delayed') await new Promise((r) => setTimeout(r, 20));
    // Read after the state (the record read while it was still active would say 0).
    const between = await queue.getJob(errored.id!);
    expect(await between!.getState()).toBe('delayed');
    expect(attemptsEnded(between!)).toBe(1);
    const e = await finished(errored.id!);
    await w1.close();

    // Stall retry: a worker takes the job and dies (never renews its 1 s lock, never finishes);
    // another worker's stalled-job check puts it back to wait, takes it and completes it.
    const stalled = await queue.add('stalled', {}, { jobId: 'job-stalled', attempts: 3 });
    const dead = new Worker(queueName, null, { connection, prefix: QUEUE_PREFIX, lockDuration: 1000, stalledInterval: 300 });
    workers.push(dead);
    const taken = await dead.getNextJob(randomUUID());
    expect(taken?.id).toBe(stalled.id);
    expect(await (await queue.getJob(stalled.id!))!.getState()).toBe('active');
    await dead.close(true);
    const w2 = new Worker(queueName, async () => 'ok', { connection, prefix: QUEUE_PREFIX, stalledInterval: 300, lockDuration: 1000 });
    workers.push(w2);
    const s = await finished(stalled.id!);

    // BullMQ's own counters tell them apart, which is what the API showed before.
    expect(s.stalledCounter).toBe(1);
    expect(e.stalledCounter).toBe(0);
    expect(s.attemptsMade).toBe(1);
    expect(e.attemptsMade).toBe(2);
    // Both had two attempts, the second completed.
    expect(attemptsEnded(e)).toBe(2);
    expect(attemptsEnded(s)).toBe(2);
  }, 60_000);
});
