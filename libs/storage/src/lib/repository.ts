/**
 * The backend-neutral repository contract. Nothing here exposes a local
 * path: S3, Azure or NFS backends must be able to implement it. The local
 * backend offers paths only through its own explicit `localTarget()`.
 */
import type { LockSweep } from './locks';

export type RestorePointType = 'full' | 'incremental' | 'differential';
export type RestorePointState = 'writing' | 'committed';

export interface VerificationRecord {
  at: string;
  ok: boolean;
  checkClean: boolean;
  checksumMatches: boolean;
  /** Human readable, path free. */
  problems: string[];
}

/**
 * Everything the database holds about a restore point. The sidecar is this
 * record as JSON, so an empty database can be rebuilt from a repository.
 */
export interface RestorePointRecord {
  schemaVersion: 1;
  id: string;
  vmContextId: string;
  /** VMware's disk key (e.g. "2000"), kept for mapping back to the VM. */
  diskKey: string;
  /** Directory index: `<vmContextId>/disk-<diskIndex>/`. */
  diskIndex: number;
  type: RestorePointType;
  /** The restore point whose image is this one's backing file; null for a full. */
  parentId: string | null;
  /** CBT changeId of the snapshot this restore point was taken from. */
  changeId: string | null;
  virtualSize: number;
  /** Bytes the image occupies on disk (its own file only). */
  allocatedBytes: number;
  /** Base name of the image inside the disk directory (no directories). */
  imageName: string;
  /** Base name of the backing image inside the same directory, or null. */
  backingImageName: string | null;
  /**
   * `sha256-layer:<hex>` digest of the guest data this image itself holds
   * (see verification.ts). Null while writing.
   */
  checksum: string | null;
  state: RestorePointState;
  createdAt: string;
  committedAt: string | null;
  lastVerification: VerificationRecord | null;
  /** Restore points that were merged into this one by consolidation. */
  mergedFrom: string[];
  metadata: Record<string, unknown>;
}

/** What callers see. Same as the record; kept as an alias for clarity. */
export type RestorePoint = RestorePointRecord;

export interface RestorePointQuery {
  vmContextId?: string;
  diskIndex?: number;
  type?: RestorePointType;
  createdAfter?: Date;
  createdBefore?: Date;
  /** Include restore points still being written (default false). */
  includeWriting?: boolean;
}

export interface CreateRestorePointRequest {
  vmContextId: string;
  diskIndex: number;
  diskKey: string;
  type: RestorePointType;
  /** Required for incremental/differential: the restore point to build on. */
  parentId?: string;
  /** Virtual size of the disk now (a full may be a different size than before). */
  virtualSize: number;
  /**
   * Bytes the writer expects to write: CBT changed bytes for an incremental,
   * allocated bytes for a full. Defaults to virtualSize (the worst case).
   */
  expectedBytes?: number;
  createdAt?: Date;
  metadata?: Record<string, unknown>;
}

/** A restore point being written. The image location is backend specific. */
export interface RestorePointHandle {
  readonly id: string;
  readonly record: RestorePointRecord;
}

export interface CommitRequest {
  changeId: string | null;
  metadata?: Record<string, unknown>;
}

export interface SpaceInfo {
  totalBytes: number;
  freeBytes: number;
  usedByRepositoryBytes: number;
}

export interface SpaceEstimate {
  requiredBytes: number;
  availableBytes: number;
  ok: boolean;
}

export interface HealthReport {
  ok: boolean;
  writable: boolean;
  toolsAvailable: boolean;
  pendingConsolidations: number;
  problems: string[];
}

export interface ChainInfo {
  /** Oldest first: the full, then each restore point up to the one asked for. */
  restorePoints: RestorePoint[];
  totalAllocatedBytes: number;
  /** Virtual size of the restore point asked for (what a restore yields). */
  virtualSize: number;
  /** Largest virtual size in the chain (a disk may have grown). */
  maxVirtualSize: number;
}

export interface VerificationResult extends VerificationRecord {
  restorePointId: string;
  expectedChecksum: string | null;
  actualChecksum: string | null;
}

export interface ConsolidationRequest {
  /** Oldest restore point of the range (often the full). */
  fromId: string;
  /** Newest restore point of the range; survives with the merged content. */
  toId: string;
}

export interface ConsolidationResult {
  /** The restore point that now holds the merged data (== toId). */
  survivorId: string;
  removedIds: string[];
  rebasedIds: string[];
}

export type ReconcileFinding =
  | 'image-without-sidecar'
  | 'sidecar-without-image'
  | 'half-written'
  | 'temp-file'
  | 'consolidation-journal'
  | 'chain-broken'
  | 'duplicate-id';

export type ReconcileAction =
  | 'quarantined'
  | 'deleted'
  | 'rolled-back'
  | 'rolled-forward'
  | 'skipped-busy'
  | 'reported'
  | 'would-quarantine'
  | 'would-delete'
  | 'would-recover';

export interface ReconcileEntry {
  finding: ReconcileFinding;
  action: ReconcileAction;
  vmContextId: string;
  diskIndex: number | null;
  restorePointId: string | null;
  /** Repository-relative name (never an absolute path). */
  name: string;
  reason: string;
}

export interface ReconcileReport {
  entries: ReconcileEntry[];
  committedRestorePoints: number;
}

export interface ReconcileOptions {
  dryRun?: boolean;
}

export interface BackupRepository {
  /** Backend kind, e.g. "local-qcow2". */
  readonly kind: string;

  /**
   * The key of a restore point's image inside this repository, what the
   * database records (backup_jobs.repository_path); the backend's
   * `locateImage()` turns it back into a location.
   */
  imageKey(record: Pick<RestorePointRecord, 'vmContextId' | 'diskIndex' | 'imageName'>): string;

  list(query?: RestorePointQuery): Promise<RestorePoint[]>;
  /** Throws RestorePointNotFound (also for restore points still being written). */
  get(id: string): Promise<RestorePoint>;
  find(id: string): Promise<RestorePoint | null>;
  /** Newest committed restore point of a disk (the parent of the next incremental, and its changeId). */
  latest(vmContextId: string, diskIndex: number): Promise<RestorePoint | null>;

  /** Free space check before a backup starts; does not reserve anything. */
  estimateSpace(req: CreateRestorePointRequest): Promise<SpaceEstimate>;
  /** Creates an invisible restore point in state "writing". Throws InsufficientSpace. */
  createRestorePoint(req: CreateRestorePointRequest): Promise<RestorePointHandle>;
  /** Flush, check, measure and checksum the image; makes the restore point visible. */
  commit(id: string, req: CommitRequest): Promise<RestorePoint>;
  /** Removes a restore point that is still being written (half files included). */
  abort(id: string, reason: string): Promise<void>;
  /** Throws DependentRestorePoints naming the restore points that need this one. */
  delete(id: string): Promise<void>;

  /** Oldest first chain that a restore of `id` reads. */
  chain(id: string): Promise<ChainInfo>;
  /** Restore points whose image has `id` as backing (direct children). */
  dependents(id: string): Promise<RestorePoint[]>;
  consolidate(req: ConsolidationRequest): Promise<ConsolidationResult>;
  verify(id: string): Promise<VerificationResult>;
  /** verify() of every restore point in the chain of `id`, oldest first. */
  verifyChain(id: string): Promise<VerificationResult[]>;

  space(): Promise<SpaceInfo>;
  health(): Promise<HealthReport>;

  /** Every committed restore point, for re-importing into an empty database. */
  importRepository(): Promise<RestorePointRecord[]>;
  /** Recover interrupted work and sort out leftovers of crashes. */
  reconcile(opts?: ReconcileOptions): Promise<ReconcileReport>;
  /** Remove busy markers (lock files) whose process on this host is gone; cheap, run at worker start and periodically. */
  sweepStaleLocks(): Promise<LockSweep>;
}
