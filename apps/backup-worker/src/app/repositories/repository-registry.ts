import { LocalQcow2Repository } from '@sendense/storage';
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
 */
export class RepositoryRegistry {
  private readonly open = new Map<string, Promise<LocalQcow2Repository>>();

  get(row: Pick<RepositoryRow, 'id' | 'name' | 'repositoryType' | 'config'>): Promise<LocalQcow2Repository> {
    const { path } = localRepositoryConfig(row);
    const key = `${row.id}:${path}`;
    let repo = this.open.get(key);
    if (!repo) {
      repo = LocalQcow2Repository.open({ root: path });
      repo.catch(() => this.open.delete(key));
      this.open.set(key, repo);
    }
    return repo;
  }
}
