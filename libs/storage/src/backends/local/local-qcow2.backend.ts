import * as path from 'node:path';
import { LocalQcow2Repository } from '../../lib/local-repository';
import { assertDiskIndex, assertSafeId, IMAGE_RE } from '../../lib/layout';
import { checkRepositoryPath, RepositoryPathRefused } from '../../lib/repository-path';
import { UnusableRepository, type ImageLocation, type RepositoryDescriptor, type StorageBackend } from '../backend';

/** config of a `local` repository row: `{ "path": "/srv/backups" }`. */
export interface LocalRepositoryConfig {
  path: string;
}

export function localRepositoryConfig(row: RepositoryDescriptor): LocalRepositoryConfig {
  const cfg = row.config as { path?: unknown } | null;
  if (!cfg || typeof cfg.path !== 'string' || !cfg.path.startsWith('/')) {
    throw new UnusableRepository(`repository ${row.name} has no absolute "path" in its config`);
  }
  return { path: cfg.path };
}

/** QCOW2 chains in a local (or locally mounted, e.g. NFS) directory. */
export const localQcow2Backend: StorageBackend = {
  repositoryType: 'local',
  validate: (row) => void localRepositoryConfig(row),
  identity: (row) => localRepositoryConfig(row).path,
  async open(row, opts) {
    const { path: root } = localRepositoryConfig(row);
    // Before anything is created there: the directory must resolve (symlinks followed) inside an allowed root.
    await checkRepositoryPath(root, opts.allowedRoots).catch((err: unknown) => {
      throw err instanceof RepositoryPathRefused ? new UnusableRepository(`repository ${row.name} cannot be used: ${err.message}`) : err;
    });
    return LocalQcow2Repository.open({ root });
  },
  locateImage(row, imageKey): ImageLocation {
    // Only the layout storage itself writes: a key from a tampered row never leaves the root.
    const m = /^([^/]+)\/disk-(\d{1,4})\/([^/]+)$/.exec(imageKey);
    const [, vmContextId = '', , file = ''] = m ?? [];
    if (!m || !IMAGE_RE.test(file)) throw new UnusableRepository(`"${imageKey.slice(0, 200)}" is not the location of a restore point image`);
    assertSafeId('vmContextId', vmContextId);
    assertDiskIndex(Number(m[2]));
    return { kind: 'local-file', path: path.join(localRepositoryConfig(row).path, imageKey), format: 'qcow2' };
  },
};
