import type { BackupRepository } from '../lib/repository';
import { UnusableRepository, type BackendOptions, type ImageLocation, type RepositoryDescriptor, type StorageBackend } from './backend';
import { localQcow2Backend } from './local/local-qcow2.backend';

/**
 * Every backend this build knows, by repository_type. Adding one: a folder
 * under backends/ with its StorageBackend, and one line here.
 */
export const STORAGE_BACKENDS: readonly StorageBackend[] = [localQcow2Backend];

/**
 * Opens the repository of a backup_repositories row with the backend its
 * `repository_type` names, once per row and process (opening finishes
 * interrupted consolidations, so no caller ever works on a half-merged chain).
 */
export class StorageRegistry {
  private readonly byType: Map<string, StorageBackend>;
  private readonly opened = new Map<string, Promise<BackupRepository>>();

  private readonly options: BackendOptions;

  constructor(opts: BackendOptions & { backends?: readonly StorageBackend[] }) {
    this.byType = new Map((opts.backends ?? STORAGE_BACKENDS).map((b) => [b.repositoryType, b]));
    this.options = { allowedRoots: opts.allowedRoots };
  }

  /** The backend of a row; UnusableRepository when this build has none for its type. */
  backendOf(row: RepositoryDescriptor): StorageBackend {
    const b = this.byType.get(row.repositoryType);
    if (!b) {
      throw new UnusableRepository(`repository ${row.name} is of type ${row.repositoryType}; this build supports ${[...this.byType.keys()].join(', ')}`);
    }
    return b;
  }

  open(row: RepositoryDescriptor): Promise<BackupRepository> {
    let backend: StorageBackend;
    let key: string;
    try {
      backend = this.backendOf(row);
      backend.validate(row);
      key = `${row.id}:${row.repositoryType}:${backend.identity(row)}`;
    } catch (err) {
      return Promise.reject(err);
    }
    let repo = this.opened.get(key);
    if (!repo) {
      repo = backend.open(row, this.options);
      repo.catch(() => this.opened.delete(key));
      this.opened.set(key, repo);
    }
    return repo;
  }

  /**
   * Where the image of a restore point is: `imageKey` is what the repository
   * reported when the point was created (backup_jobs.repository_path). No
   * caller joins paths itself.
   */
  locateImage(row: RepositoryDescriptor, imageKey: string): ImageLocation {
    const backend = this.backendOf(row);
    backend.validate(row);
    return backend.locateImage(row, imageKey);
  }
}
