import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { statfs, mkdir, access } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { GatewaySettings } from '@sendense/config';
import { BackupJobRepository, BackupRepositoryRepository, type BackupRepository } from '@sendense/db';
import { checkRepositoryPath, realLocation, RepositoryPathRefused } from '@sendense/storage';
import { SETTINGS } from '../common/tokens';
import type { RepositoryDto, RepositorySpaceDto, RepositoryTypeName } from './dto/repository.dto';

export function toRepositoryDto(r: BackupRepository): RepositoryDto {
  return {
    id: r.id,
    name: r.name,
    type: r.repositoryType,
    config: r.config,
    enabled: r.enabled,
    storage_node: r.storageNode,
    total_size_bytes: Number(r.totalSizeBytes),
    available_size_bytes: Number(r.availableSizeBytes),
    updated_at: r.updatedAt,
  };
}

@Injectable()
export class RepositoriesService {
  constructor(
    private readonly repositories: BackupRepositoryRepository,
    @Inject(BackupJobRepository) private readonly jobs: BackupJobRepository,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  async create(req: { name: string; type: RepositoryTypeName; path?: string; storageNode?: string; cbtAuditSamples?: number }): Promise<RepositoryDto> {
    if (req.type !== 'local')
      throw new BadRequestException(`repository type ${req.type} is not supported yet; use local (an NFS share mounted locally works as local)`);
    if (await this.repositories.findByName(req.name)) {
      throw new ConflictException(`a repository named ${req.name} exists already`);
    }
    const node = req.storageNode ?? this.settings.NODE_NAME;
    // Resolved (symlinks followed) and checked against the roots and every other repository before anything is created.
    const others = (await this.repositories.list()).map((r) => ({ name: r.name, path: String((r.config as { path?: unknown }).path ?? '') }));
    let path: string;
    try {
      path = await checkRepositoryPath(
        req.path,
        this.settings.REPOSITORY_ALLOWED_ROOTS.split(':').filter(Boolean),
        others.filter((o) => o.path),
      );
    } catch (err) {
      if (err instanceof RepositoryPathRefused) throw new BadRequestException(err.message);
      throw err;
    }
    if (node === this.settings.NODE_NAME) {
      // Same host: check now that the directory is usable rather than at the first backup.
      try {
        await mkdir(path, { recursive: true });
        if ((await realLocation(path)) !== path) throw new Error('the path changed while it was created (a symlink appeared)');
        await access(path, constants.W_OK);
      } catch (err) {
        throw new BadRequestException(`repository path cannot be used: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const row = await this.repositories.create({
      name: req.name,
      repositoryType: 'local',
      config: { path, ...(req.cbtAuditSamples !== undefined ? { cbtAuditSamples: req.cbtAuditSamples } : {}) },
      storageNode: node,
    });
    return toRepositoryDto(await this.refreshSpace(row));
  }

  /**
   * Removes an empty repository (no backups; its retention policies go with it): the row
   * only; its directory stays for the admin to remove. A repository with
   * backups is refused (409): delete them first (SECURITY.md).
   */
  async remove(idOrName: string): Promise<void> {
    const row = await this.findByIdOrName(idOrName);
    const backups = await this.repositories.countBackups(row.id);
    if (backups > 0) {
      throw new ConflictException(`repository ${row.name} still holds ${backups} backup(s); delete them first (newest first), then the repository`);
    }
    try {
      await this.repositories.delete(row.id);
    } catch (err) {
      throw new ConflictException(`repository ${row.name} is still referenced (retention policy?): ${(err as Error).message.split('\n').pop()}`);
    }
  }

  async list(): Promise<RepositoryDto[]> {
    return (await this.repositories.list()).map(toRepositoryDto);
  }

  async findByIdOrName(idOrName: string): Promise<BackupRepository> {
    const row = await this.repositories.findByIdOrName(idOrName);
    if (!row) throw new NotFoundException(`no repository with id or name ${idOrName}`);
    return row;
  }

  /** The repository to use when a request names none: there must be exactly one enabled. */
  async theOnlyEnabled(): Promise<BackupRepository> {
    const [only, ...more] = await this.repositories.list({ enabledOnly: true });
    if (!only || more.length) throw new BadRequestException(`give "repository" (${more.length + (only ? 1 : 0)} enabled repositories exist)`);
    return only;
  }

  /** Measured now when the repository is on this node; else what its node last recorded. */
  async space(idOrName: string): Promise<RepositorySpaceDto> {
    const row = await this.refreshSpace(await this.findByIdOrName(idOrName));
    const used = await this.jobs.usedBytes(row.id);
    return {
      ...toRepositoryDto(row),
      used_by_backups_bytes: Number(used),
      measured: row.storageNode === this.settings.NODE_NAME ? 'now' : 'by its storage node',
    };
  }

  private async refreshSpace(row: BackupRepository): Promise<BackupRepository> {
    if (row.storageNode !== this.settings.NODE_NAME) return row;
    const path = (row.config as { path?: string }).path;
    if (!path) return row;
    try {
      const s = await statfs(path);
      return await this.repositories.recordSpace(row.id, { totalBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize });
    } catch {
      return row;
    }
  }
}
