import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { statfs, mkdir, access } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { GatewaySettings } from '@sendense/config';
import type { BackupRepository, PrismaClient } from '@sendense/db';
import { PRISMA, SETTINGS } from '../common/tokens';

export function publicRepository(r: BackupRepository) {
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
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  async create(req: { name: string; type: 'local' | 's3' | 'azure' | 'nfs'; path?: string; storageNode?: string }) {
    if (req.type !== 'local') throw new BadRequestException(`repository type ${req.type} is not supported yet; use local (an NFS share mounted locally works as local)`);
    if (!req.path || !req.path.startsWith('/') || /[\0\n]/.test(req.path) || req.path.split('/').includes('..')) {
      throw new BadRequestException('a local repository needs an absolute "path" without ".." segments');
    }
    if (await this.prisma.backupRepository.findUnique({ where: { name: req.name } })) {
      throw new ConflictException(`a repository named ${req.name} exists already`);
    }
    const node = req.storageNode ?? this.settings.NODE_NAME;
    if (node === this.settings.NODE_NAME) {
      // Same host: check now that the directory is usable rather than at the first backup.
      try {
        await mkdir(req.path, { recursive: true });
        await access(req.path, constants.W_OK);
      } catch (err) {
        throw new BadRequestException(`repository path cannot be used: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const row = await this.prisma.backupRepository.create({
      data: { id: randomUUID(), name: req.name, repositoryType: 'local', config: { path: req.path }, storageNode: node },
    });
    return publicRepository(await this.refreshSpace(row));
  }

  async list() {
    const rows = await this.prisma.backupRepository.findMany({ orderBy: { name: 'asc' } });
    return rows.map(publicRepository);
  }

  async findByIdOrName(idOrName: string): Promise<BackupRepository> {
    const row =
      (await this.prisma.backupRepository.findUnique({ where: { id: idOrName } })) ??
      (await this.prisma.backupRepository.findUnique({ where: { name: idOrName } }));
    if (!row) throw new NotFoundException(`no repository with id or name ${idOrName}`);
    return row;
  }

  /** Measured now when the repository is on this node; else what its node last recorded. */
  async space(idOrName: string) {
    const row = await this.refreshSpace(await this.findByIdOrName(idOrName));
    const used = await this.prisma.backupJob.aggregate({ where: { repositoryId: row.id, status: 'completed' }, _sum: { allocatedBytes: true } });
    return {
      ...publicRepository(row),
      used_by_backups_bytes: Number(used._sum.allocatedBytes ?? 0n),
      measured: row.storageNode === this.settings.NODE_NAME ? 'now' : 'by its storage node',
    };
  }

  private async refreshSpace(row: BackupRepository): Promise<BackupRepository> {
    if (row.storageNode !== this.settings.NODE_NAME) return row;
    const path = (row.config as { path?: string }).path;
    if (!path) return row;
    try {
      const s = await statfs(path);
      return await this.prisma.backupRepository.update({
        where: { id: row.id },
        data: { totalSizeBytes: BigInt(s.blocks) * BigInt(s.bsize), availableSizeBytes: BigInt(s.bavail) * BigInt(s.bsize) },
      });
    } catch {
      return row;
    }
  }
}
