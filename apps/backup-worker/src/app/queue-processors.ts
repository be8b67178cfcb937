import { Inject } from '@nestjs/common';
import { OnWorkerEvent } from '@nestjs/bullmq';
import type { Job } from 'bullmq';
import { attemptsEnded, JobNames, type BackupVmJobData, type VerifyRestorePointJobData } from '@sendense/contracts';
import type { WorkerMetrics } from '@sendense/metrics';
import type { JobHandler } from './common/job-handler';
import { JobProcessor } from './common/job-processor';
import type { BackupRunResult } from './backup/backup.service';
import { suspectEvents } from './webhooks/chain-events';
import { WebhookNotifier } from './webhooks/webhook-notifier';
import { JOB_HANDLERS, WORKER_METRICS } from './worker.tokens';

/** This node's backup queue: backup metrics and webhook events from the outcome of its jobs. */
export class BackupQueueProcessor extends JobProcessor {
  constructor(
    @Inject(JOB_HANDLERS) handlers: JobHandler[],
    @Inject(WORKER_METRICS) private readonly metrics: WorkerMetrics,
    @Inject(WebhookNotifier) private readonly notifier: WebhookNotifier,
  ) {
    super(handlers);
  }

  @OnWorkerEvent('completed')
  completed(job: Job, result: BackupRunResult | undefined): void {
    const m = this.metrics;
    const data = job.data as BackupVmJobData;
    const disks = result?.disks ?? [];
    const type = disks.some((d) => d.type === 'full') ? 'full' : (disks[0]?.type ?? data.requestedType);
    m.backupJobs.inc({ type, result: 'completed' });
    m.bytesTransferred.inc(disks.reduce((s, d) => s + d.bytesTransferred, 0));
    if (data.requestedType !== 'full') m.cbtFallbacks.inc(disks.filter((d) => d.type === 'full').length);
    if (job.processedOn && job.finishedOn) m.backupDuration.observe({ type }, (job.finishedOn - job.processedOn) / 1000);
    // A restore point the CBT audit marked suspect: its chain is not built on (the next backup is a full).
    for (const e of suspectEvents(data, result)) void this.notifier.notify('chain.suspect', { ...e });
  }

  @OnWorkerEvent('failed')
  failed(job: Job | undefined, err: Error): void {
    if (!job) return;
    const m = this.metrics;
    const data = job.data as BackupVmJobData;
    void job.getState().then(
      async (state) => {
        // Only the last attempt is a failure; earlier ones are retried.
        if (state !== 'failed') {
          m.backupJobs.inc({ type: data.requestedType, result: 'retried' });
          return;
        }
        m.backupJobs.inc({ type: data.requestedType, result: 'failed' });
        await this.notifier.notify('job.failed', {
          job: { runId: data.runId, queue: job.queueName, jobId: job.id, attempts: attemptsEnded(job), requestedBy: data.requestedBy },
          vm: { contextId: data.vmContextId },
          repositoryId: data.repositoryId,
          requestedType: data.requestedType,
          error: err.message,
        });
      },
      () => undefined,
    );
  }
}

/** This node's maintenance queue: maintenance metrics, and a damaged chain's webhook event from a failed verification. */
export class MaintenanceQueueProcessor extends JobProcessor {
  constructor(
    @Inject(JOB_HANDLERS) handlers: JobHandler[],
    @Inject(WORKER_METRICS) private readonly metrics: WorkerMetrics,
    @Inject(WebhookNotifier) private readonly notifier: WebhookNotifier,
  ) {
    super(handlers);
  }

  @OnWorkerEvent('completed')
  completed(job: Job, result: unknown): void {
    this.metrics.maintenanceJobs.inc({ job: job.name, result: 'completed' });
    if (job.name !== JobNames.VerifyRestorePoint) return;
    const r = result as { ok?: boolean; problems?: string[]; restorePointId?: string } | undefined;
    if (r?.ok !== false) return;
    this.metrics.verificationFailures.inc();
    void this.notifier.notify('chain.damaged', {
      backupId: (job.data as VerifyRestorePointJobData).backupId,
      problems: r.problems ?? [],
      verification: r,
    });
  }

  @OnWorkerEvent('failed')
  failed(job: Job | undefined): void {
    if (job) this.metrics.maintenanceJobs.inc({ job: job.name, result: 'failed' });
  }
}
