/**
 * Request/reply contract of the Capture Agent (@nestjs/microservices, TCP).
 *
 * A backup is three calls, so that the control plane can decide full versus
 * incremental per disk from what vCenter says at the snapshot before it
 * creates any restore point:
 *   1. prepare: check/enable CBT, create the snapshot, read each disk's
 *      changeId at the snapshot, ask QueryChangedDiskAreas with the previous
 *      changeId (or "*"), and say per disk whether it must be full and why.
 *   2. copy: copy exactly those extents into one target NBD export per disk;
 *      the reply is a stream of progress events ending with the result.
 *   3. release: remove the snapshot. Always called by the worker (finally).
 * cancel aborts a running copy (the worker then calls release).
 *
 * Each session is held on a lease (CAPTURE_SESSION_LEASE, `leaseMs` in the
 * prepare answer): every call on the session renews it, and the worker sends
 * renew every quarter lease from prepare until release, also while a copy
 * runs. A lease that runs out means the caller is gone (worker killed): the
 * agent stops the copy, closes its NBD connections and removes the snapshot
 * at once. A later call on that session fails with LEASE_EXPIRED.
 */

export const CAPTURE_AGENT_PATTERNS = {
  health: 'capture.health',
  prepare: 'capture.prepare',
  copy: 'capture.copy',
  release: 'capture.release',
  cancel: 'capture.cancel',
  renew: 'capture.renew',
  restoreDisk: 'capture.restoreDisk',
} as const;

export interface VCenterCredentials {
  /** SDK URL, e.g. https://vcenter.example.com/sdk */
  url: string;
  username: string;
  password: string;
  /** Accept any certificate (lab use only). */
  insecure?: boolean;
  /** Accept exactly this certificate (SHA-1, colon separated), as VDDK does. */
  thumbprint?: string;
}

/** How the agent reads snapshot disk data. */
export type DiskReaderSpec =
  /** Real vCenter: nbdkit's vddk plugin (VMware's VDDK must be installed). */
  | { kind: 'vddk'; libdir?: string; transports?: string }
  /** The project's VMware stand-in: the harness API says where the snapshot is served over NBD. */
  | { kind: 'standin-nbd'; harnessUrl: string };

export interface VmRef {
  moref?: string;
  instanceUuid?: string;
  name?: string;
}

export interface PrepareBackupRequest {
  runId: string;
  vcenter: VCenterCredentials;
  vm: VmRef;
  /**
   * The changeId each disk's new restore point builds on (the last committed
   * one for an incremental, the full's for a differential); null or absent
   * for a full. Disks of the VM not listed are prepared as full.
   * `full: true` forces a full of that disk (fullReason 'requested') even
   * with a previousChangeId; without it a missing previousChangeId gives
   * fullReason 'no-previous-change-id'.
   */
  disks: { deviceKey: number; previousChangeId: string | null; full?: boolean }[];
  /** Turn CBT on when it is off (the first backup after that is full). */
  allowEnableCbt: boolean;
  quiesce?: boolean;
  reader: DiskReaderSpec;
  /**
   * The session's lease in ms: released (copy stopped, snapshot removed) when
   * no call renews it for this long. Default: the agent's CAPTURE_SESSION_LEASE.
   */
  leaseMs?: number;
}

export type FullReason = 'requested' | 'no-previous-change-id' | 'cbt-just-enabled' | 'cbt-reset' | 'invalid-change-id';

export interface PreparedDisk {
  deviceKey: number;
  label: string;
  capacityBytes: number;
  /** Backing file name as vCenter reports it, e.g. "[datastore1] vm/vm.vmdk". */
  fileName: string;
  /** changeId at the snapshot: the base of the next incremental once this backup commits. */
  changeId: string;
  /**
   * full: the copy writes the allocated areas only, so the target must read
   * zero everywhere else (a new image without backing). incremental: the
   * changed areas (now-zero blocks as WRITE_ZEROES) into an overlay whose
   * backing is the restore point of previousChangeId.
   */
  mode: 'full' | 'incremental';
  /** Why this disk is full (absent for incrementals). */
  fullReason?: FullReason;
  /** Human-readable detail, e.g. the vCenter fault text on a CBT reset. */
  fullReasonDetail?: string;
  /** Bytes the copy will transfer (changed areas, or allocated areas for a full). */
  bytesToCopy: number;
  extentCount: number;
}

export interface PrepareBackupResponse {
  sessionId: string;
  snapshotMoref: string;
  vmMoref: string;
  vmName: string;
  instanceUuid: string | null;
  /** CBT was off and the agent turned it on during this prepare. */
  cbtEnabledNow: boolean;
  disks: PreparedDisk[];
  /** ISO 8601: when the agent releases the session if nobody renews it. */
  expiresAt: string;
  /** The lease: renew (any call on the session) at least this often, best every quarter of it. */
  leaseMs: number;
  /**
   * Snapshots named by an earlier Sendense run that were still on the VM
   * (its backup was interrupted: agent crash, host reboot) and were removed
   * before this snapshot was taken. `error` when removing one failed.
   */
  staleSnapshots?: { moref: string; name: string; createTime?: string; removed: boolean; error?: string }[];
}

export interface CopyTuning {
  requestSize?: number;
  queueDepth?: number;
  connections?: number;
}

/** A TLS pre-shared key, as the nbd-exporter hands it out (NbdTlsPsk). */
export interface TlsPsk {
  identity: string;
  /** Hex. */
  key: string;
}

export interface CopyTarget {
  deviceKey: number;
  uri: string;
  tlsPsk?: TlsPsk;
}

export interface CopyDisksRequest {
  sessionId: string;
  /**
   * One writable target export per disk to copy (nbd://, nbds://, nbd+unix:// URI).
   * tlsPsk: the export's own TLS pre-shared key (the nbd-exporter's answer);
   * never logged or stored, dropped when the copy ends.
   */
  targets: CopyTarget[];
  tuning?: CopyTuning;
  /** Disks copied at once (default: the agent's CAPTURE_DISK_PARALLELISM). */
  parallelDisks?: number;
  /** After each incremental disk: compare a sample of blocks CBT reported unchanged (see CbtAuditResult). */
  audit?: CbtAuditRequest;
}

/**
 * The CBT audit: vSphere CBT has had bugs that silently left changed blocks
 * out. After an incremental disk is copied, `samples` random blocks of
 * `blockSize` bytes that CBT reported unchanged are read from the snapshot
 * and from the target (the new restore point, whose unchanged blocks come
 * from its backing chain) and compared.
 */
export interface CbtAuditRequest {
  /** Blocks to compare per incremental disk; 0 = no audit. */
  samples: number;
  /** Bytes per block (default 64 KiB, CBT's granularity). */
  blockSize?: number;
}

export interface CbtAuditResult {
  /** Blocks compared. */
  sampled: number;
  /** Blocks that differ: CBT missed a change there (or the chain is damaged). */
  mismatched: number;
  /** Up to 8 offsets of differing blocks. */
  mismatchOffsets: number[];
  blockSize: number;
  /** Bytes read from each side. */
  bytesRead: number;
  durationMs: number;
}

export interface DiskCopyProgress {
  deviceKey: number;
  bytesDone: number;
  bytesTotal: number;
  bytesZeroed: number;
  phase: 'waiting' | 'copying' | 'flushing' | 'done' | 'failed';
}

export interface DiskCopyResult {
  deviceKey: number;
  changeId: string;
  bytesRead: number;
  bytesWritten: number;
  /** Bytes written with NBD WRITE_ZEROES (changed blocks that are now zero). */
  bytesZeroed: number;
  extentCount: number;
  durationMs: number;
  /** Present for an incremental disk when the request asked for an audit. */
  audit?: CbtAuditResult;
}

/** The copy reply is a stream: progress events (a few per second), then one done. */
export type CopyEvent =
  | { type: 'progress'; bytesDone: number; bytesTotal: number; rateBytesPerSec: number; disks: DiskCopyProgress[] }
  | { type: 'done'; disks: DiskCopyResult[] };

export interface SessionRequest {
  sessionId: string;
}

export interface ReleaseResponse {
  sessionId: string;
  /** False when the session was unknown (already released or expired). */
  released: boolean;
  /** Set when the session's lease had run out: the agent removed the snapshot itself (this says when and why). */
  leaseExpired?: string;
}

export interface RenewResponse {
  sessionId: string;
  /** ISO 8601: the new end of the lease. */
  expiresAt: string;
  leaseMs: number;
}

export interface CancelResponse {
  sessionId: string;
  cancelled: boolean;
}

/** Where a disk restore writes: the VM's own disk, opened writable. */
export type DiskWriterSpec =
  /** Real vCenter: `nbdkit vddk` on the VM's disk (no snapshot), writable. */
  | { kind: 'vddk'; libdir?: string; transports?: string }
  /** The stand-in: the harness serves each VM disk writable over NBD (`live`). */
  | { kind: 'standin-nbd'; harnessUrl: string };

/**
 * Write a restore point back into a disk of a powered-off VM.
 * - full: every allocated extent of the restore point is written, the rest of
 *   the disk zeroed.
 * - quick (rollback): a snapshot of the current state is taken, vCenter is
 *   asked which areas changed since `changeId` (the restore point's), and
 *   only those are written back from the restore point; when the changeId is
 *   no longer valid (CBT reset, another epoch) it falls back to full and says why.
 */
export interface RestoreDiskRequest {
  /** Names the restore; cancel({ sessionId: restoreId }) aborts it. */
  restoreId: string;
  vcenter: VCenterCredentials;
  vm: VmRef;
  deviceKey: number;
  /** NBD URI of the restore point (a read-only instant-access export of its chain). */
  sourceUri: string;
  /** The source export's own TLS pre-shared key (nbds:// sources); never logged. */
  sourceTlsPsk?: TlsPsk;
  mode: 'full' | 'quick';
  /** quick: the changeId recorded with the restore point. */
  changeId?: string | null;
  writer: DiskWriterSpec;
  tuning?: CopyTuning;
}

export interface RestoreDiskResult {
  restoreId: string;
  /** What was done: quick may have fallen back to full. */
  mode: 'full' | 'quick';
  fallbackReason?: 'no-change-id' | 'invalid-change-id' | 'cbt-reset' | 'cbt-disabled';
  fallbackDetail?: string;
  /** Bytes the plan covers (changed areas, or the whole disk). */
  bytesPlanned: number;
  bytesWritten: number;
  bytesZeroed: number;
  extentCount: number;
  durationMs: number;
}

export type RestoreDiskEvent =
  | { type: 'progress'; phase: 'planning' | 'writing'; bytesDone: number; bytesTotal: number; rateBytesPerSec: number }
  | { type: 'done'; result: RestoreDiskResult };

/**
 * Error codes in the RPC error payload:
 * - INVALID_ARGUMENT: bad request (unknown disk, bad URI)
 * - NOT_FOUND: VM or session not found
 * - CBT_DISABLED: CBT is off and enabling it is not allowed
 * - VCENTER: vCenter refused (login, task failed); message carries the fault text
 * - COPY_FAILED: reading or writing disk data failed (server, export, offset, NBD error)
 * - CANCELLED: the copy was cancelled
 * - VM_POWERED_ON: a disk restore needs the VM powered off (message says its state)
 * - LEASE_EXPIRED: the session's lease ran out (nobody renewed it): its copy was
 *   stopped and its snapshot removed; prepare a new session
 */
export type CaptureAgentErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'CBT_DISABLED'
  | 'VCENTER'
  | 'COPY_FAILED'
  | 'CANCELLED'
  | 'VM_POWERED_ON'
  | 'LEASE_EXPIRED'
  | 'INTERNAL';

export interface CaptureAgentErrorPayload {
  code: CaptureAgentErrorCode;
  message: string;
  /** Transient errors may be retried by the worker (network, NBD connection lost). */
  retryable: boolean;
}

export function isCaptureAgentErrorPayload(value: unknown): value is CaptureAgentErrorPayload {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { message?: unknown }).message === 'string' &&
    typeof (value as { retryable?: unknown }).retryable === 'boolean'
  );
}
