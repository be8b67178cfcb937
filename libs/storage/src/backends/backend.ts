import type { BackupRepository } from '../lib/repository';
import type { LockHandle, LockPurpose } from '../lib/locks';
import { InvalidRequest } from '../lib/errors';
import type { LocalImageTarget } from '../lib/local-repository';

/**
 * A backup_repositories row as storage needs it (structural: this library
 * does not depend on the database). `repositoryType` picks the backend,
 * `config` is the backend's own JSON.
 */
export interface RepositoryDescriptor {
  id: string;
  name: string;
  repositoryType: string;
  config: unknown;
}

/** Where the image of a restore point is, for a reader on this node. */
export type ImageLocation = {
  kind: 'local-file';
  /** Absolute path of the image (qcow2; its backing files are beside it). */
  path: string;
  format: 'qcow2';
};

/**
 * The capability of backends that keep images as local (or locally mounted)
 * files: the nbd-exporter serves them to the Capture Agent while writing,
 * the restore-service mounts them. Backends without it (object storage)
 * would need a streaming writer instead.
 */
export interface LocalFileAccess {
  /** Paths for the nbd-exporter (writing) or a reader (read-only). */
  localTarget(id: string): Promise<LocalImageTarget>;
  /** Marks a restore point and its whole chain busy (shared), so nothing it reads is merged or deleted. */
  acquireChain(id: string, purpose: Extract<LockPurpose, 'mount' | 'export' | 'read'>): Promise<LockHandle[]>;
}

export type LocalFileRepository = BackupRepository & LocalFileAccess;

export function exposesLocalFiles(repo: BackupRepository): repo is LocalFileRepository {
  const r = repo as Partial<LocalFileAccess>;
  return typeof r.localTarget === 'function' && typeof r.acquireChain === 'function';
}

/** Node-wide settings every backend gets. */
export interface BackendOptions {
  /** Directories local repositories may live in (REPOSITORY_ALLOWED_ROOTS), symlinks resolved. */
  allowedRoots: readonly string[];
}

/** One kind of repository: how to open it from its row and find an image in it. */
export interface StorageBackend {
  /** The backup_repositories.repository_type value it serves. */
  readonly repositoryType: string;
  /** Checks the row's config; throws UnusableRepository saying what is wrong. */
  validate(row: RepositoryDescriptor): void;
  /** Opens the repository (finishing interrupted work first). Called once per row and process. */
  open(row: RepositoryDescriptor, opts: BackendOptions): Promise<BackupRepository>;
  /** Where the image stored under `imageKey` (backup_jobs.repository_path) is; no I/O, no open. */
  locateImage(row: RepositoryDescriptor, imageKey: string): ImageLocation;
  /** A stable identity of the row's storage (a changed config opens a new instance). */
  identity(row: RepositoryDescriptor): string;
}

/** The repository row cannot be used: unknown type, missing or bad config. Retrying does not help. */
export class UnusableRepository extends InvalidRequest {}
