import { checkRepositoryPath, LocalQcow2Repository, RepositoryPathRefused } from '@sendense/storage';
import type { BackupRepository as RepositoryRow } from '@sendense/db';
import { PermanentError } from '../common/errors';

export interface LocalRepositoryConfig {
  path: string;
}

/** Reads the `config` JSON of a local repository row, refusing what is not usable. */
export function localRepositoryConfig(row: Pick<RepositoryRow, 'name' | 'repositoryType' | 'config'>): LocalRepositoryConfig {
  if (row.repositoryType !== 'local') {
    throw new PermanentError(`repository ${row.name} is of type ${row.repositoryType}; only local repositories are supported so far`);
  }
  const cfg = row.config as { path?: unknown } | null;
  if (!cfg || typeof cfg.path !== 'string' || !cfg.path.startsWith('/')) {
    throw new PermanentError(`repository ${row.name} has no absolute "path" in its config`);
  }
  return { path: cfg.path };
}

/**
 * One LocalQcow2Repository per repository row, opened on first use.
 * Opening finishes (or rolls back) a consolidation that a crash interrupted,
 * so no backup ever starts on a half-merged chain.
 * A repository whose directory does not resolve (symlinks followed) inside
 * REPOSITORY_ALLOWED_ROOTS is refused before anything is created there, as a
 * permanent error: the backup stops before the VM snapshot, and is not retried.
 */
export class RepositoryRegistry {
  private readonly open = new Map<string, Promise<LocalQcow2Repository>>();

  constructor(private readonly allowedRoots: readonly string[]) {}

  get(row: Pick<RepositoryRow, 'id' | 'name' | 'repositoryType' | 'config'>): Promise<LocalQcow2Repository> {
    const { path } = localRepositoryConfig(row);
    const key = `${row.id}:${path}`;
    let repo = this.open.get(key);
    if (!repo) {
      repo = checkRepositoryPath(path, this.allowedRoots).then(
        () => LocalQcow2Repository.open({ root: path }),
        (err: unknown) => {
          throw err instanceof RepositoryPathRefused ? new PermanentError(`repository ${row.name} cannot be used: ${err.message}`) : err;
        },
      );
      repo.catch(() => this.open.delete(key));
      this.open.set(key, repo);
    }
    return repo;
  }
}
