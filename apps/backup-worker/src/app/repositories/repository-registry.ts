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

/** One LocalQcow2Repository per repository row, opened on first use. */
export class RepositoryRegistry {
  private readonly open = new Map<string, LocalQcow2Repository>();

  get(row: Pick<RepositoryRow, 'id' | 'name' | 'repositoryType' | 'config'>): LocalQcow2Repository {
    const { path } = localRepositoryConfig(row);
    const key = `${row.id}:${path}`;
    let repo = this.open.get(key);
    if (!repo) {
      repo = new LocalQcow2Repository({ root: path });
      this.open.set(key, repo);
    }
    return repo;
  }
}
