import { StorageRegistry, UnusableRepository, type BackupRepository, type RepositoryDescriptor } from '@sendense/storage';
import { PermanentError } from '../common/errors';

/**
 * The worker's door to storage: the backend of a repository row is chosen
 * by its repository_type (libs/storage's registry), opened once per process.
 * A row no backend can use (unknown type, bad config, a directory that does
 * not resolve inside REPOSITORY_ALLOWED_ROOTS) is a permanent failure of the
 * job: the backup stops before the VM snapshot, and is not retried.
 */
export class RepositoryRegistry {
  private readonly storage: StorageRegistry;

  constructor(allowedRoots: readonly string[]) {
    this.storage = new StorageRegistry({ allowedRoots });
  }

  async get(row: RepositoryDescriptor): Promise<BackupRepository> {
    try {
      return await this.storage.open(row);
    } catch (err) {
      if (err instanceof UnusableRepository) throw new PermanentError(err.message);
      throw err;
    }
  }
}
