import { UnrecoverableError, type Job } from 'bullmq';
import { JobNames, type BackupVmJobData, type JobProgress } from '@sendense/contracts';
import { CaptureAgentError } from '@sendense/contracts';
import type { JobHandler } from '../common/job-handler';
import { CancelledError, PermanentError } from '../common/errors';
import type { BackupService, BackupRunResult } from './backup.service';
import { WorkerStopping, type CancelRegistry } from './cancel-registry';

/** What the handler reports besides the job's result (metrics). */
export interface BackupObserver {
  committed(seconds: number): void;
}

/** Thin processor: BullMQ job in, BackupService call, errors classified. */
export class BackupVmHandler implements JobHandler {
  readonly jobName = JobNames.BackupVm;

  constructor(
    private readonly backups: BackupService,
    private readonly cancels: CancelRegistry,
    private readonly observer?: BackupObserver,
  ) {}

  async handle(job: Job<BackupVmJobData>): Promise<BackupRunResult> {
    const signal = await this.cancels.registerDurable(job.data.runId);
    let last = 0;
    let committingSince: number | null = null;
    try {
      const result = await this.backups.run(job.data, {
        signal,
        progress: (p: JobProgress) => {
          if (p.phase === 'committing' && committingSince === null) committingSince = Date.now();
          // Throttled: Bull Board and the gateway read it, Redis need not see every tick.
          const now = Date.now();
          if (now - last < 250 && p.phase === 'copying') return;
          last = now;
          void job.updateProgress(p as unknown as object).catch(() => undefined);
        },
      });
      if (committingSince !== null) this.observer?.committed((Date.now() - committingSince) / 1000);
      return result;
    } catch (err) {
      if (signal.aborted && signal.reason instanceof WorkerStopping) {
        throw new Error(`the worker stopped during the backup (everything it had started was removed); it will be retried`);
      }
      if (err instanceof PermanentError || err instanceof CancelledError) throw new UnrecoverableError(err.message);
      if (err instanceof CaptureAgentError && !err.retryable) throw new UnrecoverableError(err.message);
      if (signal.aborted || (err instanceof CaptureAgentError && err.code === 'CANCELLED')) throw new UnrecoverableError('cancelled');
      throw err;
    } finally {
      this.cancels.unregister(job.data.runId);
    }
  }
}
