import type { BackupType } from './queues';
import type { RetentionPolicy } from './retention';

/**
 * Backup policies: the shape the gateway stores, the scheduler fires and the
 * worker's policy run reads. The VMs are resolved at every run, so a VM that
 * matches later is picked up by the next run.
 */
export interface PolicySelector {
  /** Explicit VM names (or context ids). */
  vmNames?: string[];
  /** Glob over VM names: `*` any run of characters, `?` one character; case-sensitive. */
  namePattern?: string;
  /**
   * vCenter inventory folder path below the datacenter's vm folder, e.g. `prod/web` (VMs in sub-folders too),
   * resolved on every registered vCenter at each run; with several datacenters the first name is the
   * datacenter (`dc1/prod/web`). Names match exactly (libs/vsphere `parseFolderPath`).
   */
  folder?: string;
}

export interface BackupPolicySpec {
  name: string;
  /** Five-field cron expression (minute hour day-of-month month day-of-week), or six with seconds first. */
  cron: string;
  /** IANA time zone the cron expression and the window are read in. */
  timezone: string;
  repositoryId: string;
  selector: PolicySelector;
  /** A full when the last full is at least this many days old. */
  fullEveryDays: number | null;
  /** A full after this many incrementals since the last full. */
  fullAfterIncrementals: number | null;
  /** When a full is due: run an incremental and consolidate the chain into a new full (no full read of the VM). */
  syntheticFull: boolean;
  retention: RetentionPolicy | null;
  /** "HH:MM" in the policy's time zone: no VM backup starts after it (running ones go on). */
  windowEnd: string | null;
  /** At most this many VM backups of one run at a time. */
  concurrency: number;
  /** Stale alert: a covered VM whose last successful backup is older than this. */
  maxAgeHours: number | null;
}

export type PolicyRunTrigger = 'schedule' | 'manual';

/** One VM of a policy run, as its history shows it. */
export interface PolicyRunVm {
  vmContextId: string;
  vmName: string;
  runId: string | null;
  type: BackupType;
  /** Why this type (rule that chose it). */
  reason: string;
  status: 'pending' | 'running' | 'completed' | 'failed' | 'skipped';
  bytes: number;
  durationMs: number | null;
  error: string | null;
}

/** Webhook events. */
export const WebhookEvents = ['job.failed', 'chain.damaged', 'chain.suspect', 'repository.space', 'vm.stale', 'policy.run', 'test'] as const;
export type WebhookEvent = (typeof WebhookEvents)[number];

/** The JSON body every webhook receives; signed with HMAC-SHA256 of these exact bytes (header WEBHOOK_SIGNATURE_HEADER). */
export interface WebhookEnvelope<T = Record<string, unknown>> {
  id: string;
  event: WebhookEvent;
  at: string;
  data: T;
}

/** `sha256=<hex HMAC-SHA256 of the raw body under the webhook's secret>`. */
export const WEBHOOK_SIGNATURE_HEADER = 'x-sendense-signature';
export const WEBHOOK_EVENT_HEADER = 'x-sendense-event';
export const WEBHOOK_DELIVERY_HEADER = 'x-sendense-delivery';
