/**
 * Typed storage errors. Messages are safe to show to API callers: they name
 * restore points by id and never contain local file system paths. Paths and
 * tool output go into `localPath` / `detail`, which are for logs only and are
 * left out of `toJSON()`.
 */
export type StorageErrorCode =
  | 'RESTORE_POINT_NOT_FOUND'
  | 'DEPENDENT_RESTORE_POINTS'
  | 'INSUFFICIENT_SPACE'
  | 'RESTORE_POINT_BUSY'
  | 'BACKUP_IN_PROGRESS'
  | 'CHAIN_BROKEN'
  | 'CORRUPT_IMAGE'
  | 'INVALID_STATE'
  | 'INVALID_REQUEST'
  | 'CONSOLIDATION_REFUSED'
  | 'STORAGE_IO';

export interface RestorePointRef {
  id: string;
  type: string;
  createdAt: string;
}

export abstract class StorageError extends Error {
  abstract readonly code: StorageErrorCode;
  /** Suggested HTTP status for the API gateway. */
  abstract readonly httpStatus: number;
  /** For logs only: the local path involved, never shown to API callers. */
  localPath?: string;
  /** For logs only: tool output, OS error text. */
  detail?: string;

  constructor(message: string, opts: { localPath?: string; detail?: string; cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.localPath = opts.localPath;
    this.detail = opts.detail;
  }

  /** What an API may return: code, message and structured, path-free data. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.publicData() };
  }

  protected publicData(): Record<string, unknown> {
    return {};
  }
}

export class RestorePointNotFound extends StorageError {
  readonly code = 'RESTORE_POINT_NOT_FOUND';
  readonly httpStatus = 404;
  constructor(
    readonly restorePointId: string,
    opts?: { localPath?: string },
  ) {
    super(`restore point ${restorePointId} does not exist`, opts);
  }
  protected override publicData() {
    return { restorePointId: this.restorePointId };
  }
}

export class DependentRestorePoints extends StorageError {
  readonly code = 'DEPENDENT_RESTORE_POINTS';
  readonly httpStatus = 409;
  constructor(
    readonly restorePointId: string,
    readonly dependents: RestorePointRef[],
    action = 'deleted',
  ) {
    super(
      `restore point ${restorePointId} cannot be ${action}: ${dependents.length} restore point(s) depend on it (` +
        dependents.map((d) => `${d.id} ${d.type} ${d.createdAt}`).join(', ') +
        '); merge them first',
    );
  }
  protected override publicData() {
    return { restorePointId: this.restorePointId, dependents: this.dependents };
  }
}

export class InsufficientSpace extends StorageError {
  readonly code = 'INSUFFICIENT_SPACE';
  readonly httpStatus = 507;
  constructor(
    readonly requiredBytes: number,
    readonly availableBytes: number,
    what: string,
    opts?: { localPath?: string; detail?: string; cause?: unknown },
  ) {
    super(`not enough space in the repository for ${what}: ${fmtBytes(requiredBytes)} needed, ${fmtBytes(availableBytes)} available`, opts);
  }
  protected override publicData() {
    return { requiredBytes: this.requiredBytes, availableBytes: this.availableBytes };
  }
}

export interface BusyHolder {
  purpose: string;
  pid: number;
  hostname: string;
  since: string;
  /** The holder process's start time (/proc/<pid>/stat field 22, Linux), so a pid reused by another process is not taken for the holder. */
  pidStart?: string;
}

export class RestorePointBusy extends StorageError {
  readonly code = 'RESTORE_POINT_BUSY';
  readonly httpStatus = 423;
  constructor(
    readonly restorePointId: string,
    readonly holders: BusyHolder[],
    wanted: string,
  ) {
    super(
      `restore point ${restorePointId} is busy (${holders.map((h) => `${h.purpose} by pid ${h.pid} on ${h.hostname}`).join(', ') || 'locked'}); cannot ${wanted}`,
    );
  }
  protected override publicData() {
    return { restorePointId: this.restorePointId, holders: this.holders };
  }
}

/** One writer per disk: a second backup of the same disk would fork the chain. */
export class BackupInProgress extends StorageError {
  readonly code = 'BACKUP_IN_PROGRESS';
  readonly httpStatus = 409;
  constructor(
    readonly vmContextId: string,
    readonly diskIndex: number,
    readonly holders: BusyHolder[],
  ) {
    super(
      `a backup of ${vmContextId} disk ${diskIndex} is already being written (` +
        holders.map((h) => `pid ${h.pid} on ${h.hostname} since ${h.since}`).join(', ') +
        ')',
    );
  }
  protected override publicData() {
    return { vmContextId: this.vmContextId, diskIndex: this.diskIndex, holders: this.holders };
  }
}

export class ChainBroken extends StorageError {
  readonly code = 'CHAIN_BROKEN';
  readonly httpStatus = 409;
  constructor(
    readonly restorePointId: string,
    reason: string,
    opts?: { localPath?: string; detail?: string },
  ) {
    super(`chain of restore point ${restorePointId} is broken: ${reason}`, opts);
  }
  protected override publicData() {
    return { restorePointId: this.restorePointId };
  }
}

export class CorruptImage extends StorageError {
  readonly code = 'CORRUPT_IMAGE';
  readonly httpStatus = 422;
  constructor(
    readonly restorePointId: string,
    reason: string,
    opts?: { localPath?: string; detail?: string; cause?: unknown },
  ) {
    super(`image of restore point ${restorePointId} is corrupt: ${reason}`, opts);
  }
  protected override publicData() {
    return { restorePointId: this.restorePointId };
  }
}

export class InvalidState extends StorageError {
  readonly code = 'INVALID_STATE';
  readonly httpStatus = 409;
}

export class InvalidRequest extends StorageError {
  readonly code = 'INVALID_REQUEST';
  readonly httpStatus = 400;
}

export class ConsolidationRefused extends StorageError {
  readonly code = 'CONSOLIDATION_REFUSED';
  readonly httpStatus = 409;
}

/** An I/O or tool failure; the message says what failed, `detail` says how. */
export class StorageIoError extends StorageError {
  readonly code = 'STORAGE_IO';
  readonly httpStatus = 500;
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function isEnospc(err: unknown): boolean {
  const e = err as { code?: string; stderr?: string; message?: string } | undefined;
  if (!e) return false;
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
  return /No space left on device|Disk quota exceeded/i.test(`${e.stderr ?? ''} ${e.message ?? ''}`);
}
