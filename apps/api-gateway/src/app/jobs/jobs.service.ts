import { ConflictException, Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { attemptsEnded, CANCEL_CHANNEL, CANCEL_REQUEST_TTL_SECONDS, cancelRequestKey, type JobProgress } from '@sendense/contracts';
import { BackupJobRepository, JobEventRepository } from '@sendense/db';
import { REDIS } from '../common/tokens';
import { QueueRegistry } from '../queues/queue-registry.service';
import { toBackupDto } from '../backups/backup-view';
import type { CancelledJobDto, JobStatusDto } from './dto/job.dto';
import { RunRegistry, type RunRef } from './run-registry.service';

function isoOrNull(ms: number | undefined): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

@Injectable()
export class JobsService {
  constructor(
    @Inject(BackupJobRepository) private readonly jobs: BackupJobRepository,
    @Inject(JobEventRepository) private readonly events: JobEventRepository,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly queues: QueueRegistry,
    private readonly runs: RunRegistry,
  ) {}

  /** 404 when the run is unknown (or older than 30 days). */
  runRef(runId: string): Promise<RunRef> {
    return this.runs.get(runId);
  }

  async status(runId: string): Promise<JobStatusDto> {
    const ref = await this.runs.get(runId);
    const job = await this.queues.get(ref.queue).getJob(ref.jobId);
    const sameRun = job && job.data.runId === runId;
    const state = sameRun ? await job.getState() : null;
    const rows = await this.jobs.listByRun(runId);
    const events = await this.events.listByRun(runId, 200);
    const status =
      state === 'completed'
        ? 'completed'
        : state === 'failed'
          ? job?.failedReason === 'cancelled' || rows.some((r) => r.status === 'cancelled')
            ? 'cancelled'
            : 'failed'
          : state === 'active'
            ? 'running'
            : state
              ? 'queued'
              : rows.length && rows.every((r) => r.status === 'completed')
                ? 'completed'
                : rows.some((r) => r.status === 'failed')
                  ? 'failed'
                  : rows.some((r) => r.status === 'cancelled')
                    ? 'cancelled'
                    : events.some((e) => e.phase === 'cancelled')
                      ? 'cancelled'
                      : 'unknown';
    return {
      run_id: runId,
      vm_context_id: ref.vmContextId,
      status,
      // An attempt ended by a worker's death counts like one ended by an error (BullMQ counts it apart, in stalledCounter).
      attempts_made: sameRun ? attemptsEnded(job) : null,
      // When the queue took the job, a worker started it, and it ended (last attempt).
      queued_at: sameRun ? isoOrNull(job.timestamp) : null,
      started_at: sameRun ? isoOrNull(job.processedOn) : null,
      finished_at: sameRun ? isoOrNull(job.finishedOn) : null,
      progress: (sameRun ? (job.progress as JobProgress | number) : null) || null,
      // A retry that completed clears the failed attempt's reason (the event log keeps it).
      error: sameRun && job.failedReason && status !== 'completed' ? job.failedReason : null,
      backups: rows.map(toBackupDto),
      events: events.map((e) => ({ at: e.createdAt, level: e.level, phase: e.phase, message: e.message })),
    };
  }

  async cancel(runId: string): Promise<CancelledJobDto> {
    const ref = await this.runs.get(runId);
    const job = await this.queues.get(ref.queue).getJob(ref.jobId);
    if (!job || job.data.runId !== runId) throw new ConflictException(`job ${runId} is no longer queued or running`);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') throw new ConflictException(`job ${runId} has already ${state === 'completed' ? 'completed' : 'ended'}`);
    if (state === 'active') {
      // Recorded first: if the worker running it is dead, the retry that picks it up ends it as cancelled.
      await this.redis.set(cancelRequestKey(runId), '1', 'EX', CANCEL_REQUEST_TTL_SECONDS);
      await this.redis.publish(CANCEL_CHANNEL, runId);
      return { run_id: runId, status: 'cancelling' };
    }
    await job.remove();
    // The queue forgets a removed job and no worker wrote a row: the event says what became of it.
    await this.events.append({ runId, backupJobId: null, level: 'warn', phase: 'cancelled', message: 'cancelled while queued: it never started' });
    return { run_id: runId, status: 'cancelled' };
  }
}
