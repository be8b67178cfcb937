import type { BackupType, BackupVmJobData, JobProgress, PreparedDisk } from '@sendense/contracts';
import type {
  BackupChainRepository,
  BackupJobRepository,
  BackupRepository as BackupRepositoryRow,
  BackupRepositoryRepository,
  EventLevel,
  VmContextForBackup,
  VmContextRepository,
  VmDisk,
  VmDiskRepository,
} from '@sendense/db';
import type { LocalFileRepository, RestorePoint } from '@sendense/storage';
import type { CaptureAgentPort, NbdExporterPort } from '../common/ports';
import type { JobEventLog } from './job-event-log';

export interface BackupControl {
  signal: AbortSignal;
  progress(p: JobProgress): void;
}

export interface DiskOutcome {
  diskId: number;
  deviceKey: number;
  backupId: string;
  type: BackupType;
  fallbackReason: string | null;
  bytesTransferred: number;
  bytesZeroed: number;
  allocatedBytes: number;
  changeId: string;
  /** Set when the CBT audit found blocks CBT reported unchanged that differ: the point (and its chain) is suspect. */
  suspectReason: string | null;
}

export interface BackupRunResult {
  runId: string;
  vmContextId: string;
  vmName: string;
  disks: DiskOutcome[];
}

/** Where a disk's restore point builds on. */
export interface BaseChoice {
  parentId: string | null;
  previousChangeId: string | null;
  /** Why there is no usable base (the disk's backup will be full). */
  reason: string | null;
}

/** One disk of the run, filled in phase by phase (plan, targets, commit). */
export interface DiskPlan {
  suspectReason?: string | null;
  prepared: PreparedDisk;
  disk: VmDisk;
  type: BackupType;
  parentId: string | null;
  fallbackReason: string | null;
  previousChangeId: string | null;
  backupId?: string;
  exportName?: string;
  committed?: RestorePoint;
}

export type PreparedSnapshot = Awaited<ReturnType<CaptureAgentPort['prepare']>>;
export type CopyResult = Awaited<ReturnType<CaptureAgentPort['copy']>>[number];
export type Exporter = NbdExporterPort & { listExports(q: { backupJobId?: string }): Promise<{ name: string }[]> };

/** What the phases of a backup use besides the run itself (built once by BackupService). */
export interface BackupDeps {
  vms: VmContextRepository;
  disks: VmDiskRepository;
  jobs: BackupJobRepository;
  chains: BackupChainRepository;
  repositoryRows: BackupRepositoryRepository;
  events: JobEventLog;
  exporter: Exporter;
  capture: CaptureAgentPort;
  nodeName: string;
  /** CBT_AUDIT_SAMPLES, and how targets are exported (NBD_TARGET_TRANSPORT, NBD_TARGET_TLS: see exportAccess). */
  options: { cbtAuditSamples?: number; targetTls?: 'psk' | 'none'; targetTransport?: 'tcp' | 'unix' };
}

/** One VM backup as it goes through its phases: prepare, plan, targets, copy, commit, clean up. */
export interface BackupRun {
  readonly data: BackupVmJobData;
  readonly ctl: BackupControl;
  readonly ctx: VmContextForBackup;
  /** "VM <name> (<context id>)", for messages. */
  readonly vm: string;
  readonly repoRow: BackupRepositoryRow;
  readonly repo: LocalFileRepository;
  /** The base of each known disk, by device key. */
  readonly bases: Map<number, BaseChoice>;
  readonly plans: DiskPlan[];
}

/** An event of the run (job_events under its run id). */
export function logRun(
  d: BackupDeps,
  run: BackupRun,
  level: EventLevel,
  phase: string,
  message: string,
  data: Record<string, unknown> = {},
  backupJobId: string | null = null,
): Promise<void> {
  return d.events.log(run.data.runId, backupJobId, level, phase, message, data);
}

/** A value the backup's earlier phases must have set (a bug otherwise, named by what). */
export function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`internal error: ${what} is missing`);
  return value;
}

export const FULL_REASON_TEXT = {
  requested: 'a full backup was requested',
  'no-previous-change-id': 'there is no earlier backup of this disk to build on',
  'cbt-just-enabled': 'change tracking (CBT) was just enabled on the VM',
  'cbt-reset': 'vCenter reset change tracking (CBT) for this disk',
  'invalid-change-id': 'vCenter no longer accepts the changeId of the previous backup',
} as const;
export const fullReasonText = (reason: string): string | undefined => (FULL_REASON_TEXT as Record<string, string>)[reason];

const sizeText = (bytes: number): string => (bytes % 2 ** 20 === 0 ? `${bytes / 2 ** 20} MiB` : `${bytes} bytes`);

/**
 * Why a known disk must be a full: its capacity differs from the one of its last backup (vSphere
 * does not trust CBT across a resize, and the chain's images have the old size). Null when it did not change.
 */
export function resizedReason(known: Pick<VmDisk, 'capacityBytes'> | undefined, p: Pick<PreparedDisk, 'capacityBytes'>): string | null {
  if (!known || known.capacityBytes === null || known.capacityBytes === undefined) return null;
  const was = Number(known.capacityBytes);
  if (was === p.capacityBytes) return null;
  return `the disk was resized since the last backup (${sizeText(was)} -> ${sizeText(p.capacityBytes)})`;
}
