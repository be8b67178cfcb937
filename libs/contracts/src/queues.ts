import type { DefaultJobOptions as BullJobOptions } from 'bullmq';
import type { RetentionPolicy } from './retention';

/**
 * Queue names, job names, payloads and default options: the one place the
 * producers (gateway) and consumers (workers) agree on.
 *
 * Backups run on the storage node that holds the repository, so each node
 * has its own backup queue (`backup.<node>`); a worker subscribes only to
 * its node's queues.
 */

export const QUEUE_PREFIX = 'sendense';

export const QueueNames = {
  backup: (node: string) => `backup.${sanitizeNode(node)}`,
  maintenance: (node: string) => `maintenance.${sanitizeNode(node)}`,
  /** Policy runs and the alert checks: one queue for the whole system (any worker may run them; a slot is one job). */
  policies: 'policies',
  /** Webhook deliveries (retried with backoff). */
  webhooks: 'webhooks',
} as const;

/** Queue names end up in Redis keys and Bull Board URLs: keep them plain. */
export function sanitizeNode(node: string): string {
  const s = node
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '-')
    .slice(0, 63);
  if (!s) throw new Error(`storage node name "${node}" has no usable characters`);
  return s;
}

/**
 * Where the queue job of a backup run lives, so that the gateway's status,
 * progress and cancel find a run by its id (whoever queued it: the gateway
 * or a policy run). Kept in Redis for 30 days.
 */
export interface RunRef {
  queue: string;
  jobId: string;
  vmContextId: string;
  repositoryId: string;
}
export const runRefKey = (runId: string) => `sendense:run:${runId}`;
export const RUN_REF_TTL_S = 30 * 24 * 3600;

/** Redis pub/sub channel on which the gateway asks the worker running a backup to cancel it (message: run id). */
export const CANCEL_CHANNEL = 'sendense:cancel';

/**
 * Redis key that records a cancel (set with a day's expiry next to the
 * publish): a worker that picks the run up later, a retry after the worker
 * running it died, honours it instead of starting again.
 */
export const cancelRequestKey = (runId: string): string => `sendense:cancel-request:${runId}`;
export const CANCEL_REQUEST_TTL_SECONDS = 86_400;

export const JobNames = {
  BackupVm: 'BackupVmJob',
  ConsolidateChain: 'ConsolidateChainJob',
  ApplyRetention: 'ApplyRetentionJob',
  VerifyRestorePoint: 'VerifyRestorePointJob',
  DeleteRestorePoint: 'DeleteRestorePointJob',
  RestoreDisk: 'RestoreDiskJob',
  RunPolicy: 'RunPolicyJob',
  CheckAlerts: 'CheckAlertsJob',
  DeliverWebhook: 'DeliverWebhookJob',
} as const;
export type JobName = (typeof JobNames)[keyof typeof JobNames];

export type BackupType = 'full' | 'incremental' | 'differential';

export interface BackupVmJobData {
  runId: string;
  vmContextId: string;
  requestedType: BackupType;
  repositoryId: string;
  requestedBy: string;
}

export interface ConsolidateChainJobData {
  vmContextId: string;
  diskId: number;
  repositoryId: string;
  /** Merge everything older than this restore point into the full. */
  upToBackupId?: string;
  requestedBy: string;
}

export interface ApplyRetentionJobData {
  repositoryId: string;
  vmContextId?: string;
  dryRun: boolean;
  requestedBy: string;
  /** Use this policy instead of the stored one (e.g. for a dry run of a new policy). */
  policy?: RetentionPolicy;
}

export interface DeleteRestorePointJobData {
  backupId: string;
  requestedBy: string;
}

export interface VerifyRestorePointJobData {
  backupId: string;
  requestedBy: string;
}

/**
 * Write a restore point back into a disk of a VM (on the backup queue of the
 * repository's node: it is as long as a backup and takes the VM's lock).
 */
export interface RestoreDiskJobData {
  /** Names the restore: job events (run_id), cancel (CANCEL_CHANNEL); GET /api/v1/jobs/{runId} follows it like a backup run. */
  runId: string;
  /** The same as runId (the Capture Agent's name for it). */
  restoreId: string;
  backupId: string;
  /** The VM written to (default: the restore point's own VM). */
  targetVmContextId: string;
  /** Device key of the disk written to (default: the restore point's disk). */
  targetDeviceKey: number;
  mode: 'full' | 'quick';
  requestedBy: string;
}

export interface RunPolicyJobData {
  policyId: string;
  trigger: 'schedule' | 'manual';
  requestedBy: string;
}

/** Repository space and stale VM checks (a job scheduler every few minutes). */
export interface CheckAlertsJobData {
  requestedBy: string;
}

export interface DeliverWebhookJobData {
  deliveryId: string;
}

export interface JobDataByName {
  BackupVmJob: BackupVmJobData;
  ConsolidateChainJob: ConsolidateChainJobData;
  ApplyRetentionJob: ApplyRetentionJobData;
  VerifyRestorePointJob: VerifyRestorePointJobData;
  DeleteRestorePointJob: DeleteRestorePointJobData;
  RestoreDiskJob: RestoreDiskJobData;
  RunPolicyJob: RunPolicyJobData;
  CheckAlertsJob: CheckAlertsJobData;
  DeliverWebhookJob: DeliverWebhookJobData;
}

/** Structured progress a job reports (throttled), read by the gateway and Bull Board. */
export interface JobProgress {
  phase: 'queued' | 'preparing' | 'snapshot' | 'copying' | 'committing' | 'cleanup' | 'done';
  bytesDone: number;
  bytesTotal: number;
  bytesSkippedZero: number;
  rateBytesPerSec: number;
  disks: { diskId: number; bytesDone: number; bytesTotal: number; phase: string }[];
  message?: string;
}

/**
 * How many attempts of a job have ended, whatever ended them: an error (BullMQ
 * counts it in `attemptsMade`), its worker dying (the stalled-job check puts it
 * back to wait and counts it only in `stalledCounter`, not in `attemptsMade`)
 * or its completion. So a run retried after a worker's SIGKILL and one retried
 * after an error read the same (2 when the retry completed). The running
 * attempt is not counted until it ends. (Not `attemptsStarted +
 * stalledCounter`: a stalled attempt was started too, that would count it twice.)
 */
export function attemptsEnded(job: { attemptsMade: number; stalledCounter?: number }): number {
  return job.attemptsMade + (job.stalledCounter ?? 0);
}

const DAY = 24 * 3600;

/**
 * Retention on every job so queues never grow without bound; retries with
 * exponential backoff (permanent failures are thrown as UnrecoverableError by
 * the processors and are not retried).
 */
export const DefaultJobOptions: Record<JobName, BullJobOptions> = {
  BackupVmJob: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 30_000 },
    removeOnComplete: { age: 14 * DAY, count: 5000 },
    removeOnFail: { age: 30 * DAY, count: 5000 },
  },
  ConsolidateChainJob: {
    attempts: 2,
    backoff: { type: 'exponential', delay: 60_000 },
    removeOnComplete: { age: 14 * DAY, count: 1000 },
    removeOnFail: { age: 30 * DAY, count: 1000 },
  },
  ApplyRetentionJob: {
    attempts: 2,
    backoff: { type: 'exponential', delay: 60_000 },
    removeOnComplete: { age: 14 * DAY, count: 1000 },
    removeOnFail: { age: 30 * DAY, count: 1000 },
  },
  VerifyRestorePointJob: {
    attempts: 1,
    removeOnComplete: { age: 14 * DAY, count: 1000 },
    removeOnFail: { age: 30 * DAY, count: 1000 },
  },
  DeleteRestorePointJob: {
    attempts: 1,
    removeOnComplete: { age: 1 * DAY, count: 1000 },
    removeOnFail: { age: 7 * DAY, count: 1000 },
  },
  // Not retried: a half-written disk is the operator's call (run it again, full or quick).
  RestoreDiskJob: {
    attempts: 1,
    removeOnComplete: { age: 14 * DAY, count: 1000 },
    removeOnFail: { age: 30 * DAY, count: 1000 },
  },
  // A failed run is not retried: the next slot is the retry. Its history row says what failed.
  RunPolicyJob: {
    attempts: 1,
    removeOnComplete: { age: 14 * DAY, count: 2000 },
    removeOnFail: { age: 30 * DAY, count: 2000 },
  },
  CheckAlertsJob: {
    attempts: 1,
    removeOnComplete: { age: 1 * DAY, count: 100 },
    removeOnFail: { age: 7 * DAY, count: 100 },
  },
  // A receiver that is down for a minute still gets the event: 2, 4, 8, 16 s apart.
  DeliverWebhookJob: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 2000 },
    removeOnComplete: { age: 7 * DAY, count: 5000 },
    removeOnFail: { age: 30 * DAY, count: 5000 },
  },
};

/**
 * Deterministic job ids:
 * (BullMQ refuses ":" in custom ids, hence the dots.)
 * a second request for a VM that is already queued
 * or running collapses into the existing job instead of running in parallel.
 */
export const JobIds = {
  backupVm: (vmContextId: string) => `backup.${vmContextId}`,
  consolidate: (vmContextId: string, diskId: number) => `consolidate.${vmContextId}.${diskId}`,
  retention: (repositoryId: string, vmContextId?: string) => `retention.${repositoryId}.${vmContextId ?? 'all'}`,
  verify: (backupId: string) => `verify.${backupId}`,
  delete: (backupId: string) => `delete.${backupId}`,
  /** One disk restore per target VM at a time. */
  restoreDisk: (vmContextId: string) => `restore-disk.${vmContextId}`,
  /** The job scheduler of a policy (its slot jobs are `repeat:policy.<id>:<millis>`, one per slot). */
  policyScheduler: (policyId: string) => `policy.${policyId}`,
  /** A run by hand (its own job; the VM backups it starts still collapse with a scheduled run's). */
  policyManualRun: (policyId: string, atMillis: number) => `policy-run.${policyId}.${atMillis}`,
  alertsScheduler: 'alerts',
  webhookDelivery: (deliveryId: string) => `webhook.${deliveryId}`,
};
