import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { join } from 'node:path';
import type { GatewaySettings } from '@sendense/config';
import { BackupJobRepository, type BackupJob, type BackupRepository } from '@sendense/db';
import { SETTINGS } from './tokens';

export type RestorePointRow = BackupJob & { repository: BackupRepository };

/**
 * The checks every restore starts with, in one place: the backup exists
 * (404), is completed and lives in a repository (409), and, for restores that
 * read its image here, lies on this gateway's storage node (400, naming the
 * node to use). `what` completes "only completed backups can be ...".
 */
@Injectable()
export class RestorePointLocator {
  constructor(
    @Inject(BackupJobRepository) private readonly jobs: BackupJobRepository,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  async completed(backupId: string, what: string): Promise<RestorePointRow> {
    const row = await this.jobs.findWithRepository(backupId);
    if (!row) throw new NotFoundException(`no backup with id ${backupId}`);
    if (row.status !== 'completed') throw new ConflictException(`backup ${backupId} is ${row.status}; only completed backups can be ${what}`);
    const { repository } = row;
    if (!repository) throw new ConflictException(`backup ${backupId} has no repository`);
    return { ...row, repository };
  }

  /** A completed restore point of this node's repositories and the path of its image file. */
  async onThisNode(backupId: string, what: string): Promise<{ row: RestorePointRow; imagePath: string }> {
    const row = await this.completed(backupId, what);
    if (row.repository.storageNode !== this.settings.NODE_NAME) {
      throw new BadRequestException(`backup ${backupId} is on storage node ${row.repository.storageNode}; use that node's gateway`);
    }
    const root = (row.repository.config as { path?: string }).path;
    if (!root) throw new ConflictException(`repository ${row.repository.name} has no path`);
    return { row, imagePath: join(root, row.repositoryPath) };
  }

  /** The row of a restore point (any status), or null. */
  find(id: string): Promise<BackupJob | null> {
    return this.jobs.find(id);
  }
}
