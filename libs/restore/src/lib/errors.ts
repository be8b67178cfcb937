/**
 * Typed errors so that an API layer can map them to status codes without
 * parsing messages: PathRejected -> 400, NotFound -> 404, MountNotFound -> 404,
 * NotAFile / NotADirectory -> 400 (or 409), RangeNotSatisfiable -> 416.
 */
export class RestoreError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A user-supplied path was refused: it would escape the mount or is malformed. */
export class PathRejected extends RestoreError {
  constructor(readonly reason: string) {
    super(`path rejected: ${reason}`, 'PATH_REJECTED');
  }
}

export class EntryNotFound extends RestoreError {
  constructor(path: string) {
    super(`no such file or directory: ${path}`, 'NOT_FOUND');
  }
}

export class NotADirectory extends RestoreError {
  constructor(path: string) {
    super(`not a directory: ${path}`, 'NOT_A_DIRECTORY');
  }
}

export class NotAFile extends RestoreError {
  constructor(path: string) {
    super(`not a regular file: ${path}`, 'NOT_A_FILE');
  }
}

export class RangeNotSatisfiable extends RestoreError {
  constructor(
    readonly size: number,
    detail: string,
  ) {
    super(`range not satisfiable: ${detail}`, 'RANGE_NOT_SATISFIABLE');
  }
}

export class MountNotFound extends RestoreError {
  constructor(readonly mountId: string) {
    super(`no active mount ${mountId}`, 'MOUNT_NOT_FOUND');
  }
}

/** The mount was listed but its file system or export vanished under the service; it is being cleaned up. */
export class MountGone extends RestoreError {
  constructor(
    readonly mountId: string,
    readonly problems: string[],
  ) {
    super(`mount ${mountId} is gone (${problems.join('; ')}); it is being cleaned up: mount the restore point again`, 'MOUNT_GONE');
  }
}

/** Mounting failed; partial state has been torn down before this is thrown. */
export class MountFailed extends RestoreError {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message, 'MOUNT_FAILED');
  }
}

/** The service holds as many mounts as it may (RESTORE_MAX_MOUNTS); nothing was mounted. */
export class MountLimitReached extends RestoreError {
  constructor(
    readonly limit: number,
    readonly active: number,
  ) {
    super(
      `this restore-service holds ${active} mounts, its limit (RESTORE_MAX_MOUNTS=${limit}): unmount restore points that are no longer needed (sendense-ctl backup unmount <mount-id>) and try again`,
      'MOUNT_LIMIT',
    );
  }
}
