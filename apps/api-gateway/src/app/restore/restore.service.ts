import { BadRequestException, ConflictException, HttpException, Inject, Injectable, NotFoundException, ServiceUnavailableException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { GatewaySettings } from '@sendense/config';
import { INTERNAL_TOKEN_HEADER, RestoreServiceClient, RestoreServiceError, type MountInfo } from '@sendense/contracts';
import type { PrismaClient } from '@sendense/db';
import { PRISMA, SETTINGS } from '../common/tokens';

/**
 * File-level restore as the gateway offers it: restore points by backup id,
 * mounts recorded in restore_mounts (so maintenance refuses to merge or
 * delete what is mounted), everything else proxied to the restore-service,
 * which is the only process that mounts.
 */
@Injectable()
export class RestoreProxyService {
  /** Typed client of the restore-service (libs/contracts). */
  readonly client: RestoreServiceClient;

  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {
    // Every call carries the internal token: the restore-service refuses calls without it.
    this.client = new RestoreServiceClient({ baseUrl: settings.RESTORE_SERVICE_URL, headers: { [INTERNAL_TOKEN_HEADER]: settings.SENDENSE_INTERNAL_TOKEN } });
  }

  /** Call the restore-service; its JSON errors come back with their status. */
  async call<T>(request: (client: RestoreServiceClient) => Promise<T>): Promise<T> {
    try {
      return await request(this.client);
    } catch (err) {
      if (!(err instanceof RestoreServiceError)) throw err;
      if (!err.reachable) throw new ServiceUnavailableException(err.message);
      throw new HttpException(err.body, err.status);
    }
  }

  private async imagePathOf(backupId: string): Promise<{ imagePath: string; repositoryId: string }> {
    const row = await this.prisma.backupJob.findUnique({ where: { id: backupId }, include: { repository: true } });
    if (!row) throw new NotFoundException(`no backup with id ${backupId}`);
    if (row.status !== 'completed') throw new ConflictException(`backup ${backupId} is ${row.status}; only completed backups can be mounted`);
    if (!row.repository) throw new ConflictException(`backup ${backupId} has no repository`);
    if (row.repository.storageNode !== this.settings.NODE_NAME) {
      throw new BadRequestException(`backup ${backupId} is on storage node ${row.repository.storageNode}; mount it through that node's gateway`);
    }
    const root = (row.repository.config as { path?: string }).path;
    if (!root) throw new ConflictException(`repository ${row.repository.name} has no path`);
    return { imagePath: join(root, row.repositoryPath), repositoryId: row.repository.id };
  }

  private view(m: MountInfo, backupId: string | null) {
    return {
      mount_id: m.mountId,
      backup_id: backupId,
      mount_path: m.root,
      created_at: m.createdAt,
      last_access_at: m.lastAccessAt,
      partition_table: m.partitionTable,
      partitions: m.partitions,
    };
  }

  async mount(backupId: string) {
    const { imagePath } = await this.imagePathOf(backupId);
    // Recorded before mounting, so maintenance never sees the chain as free while it is being mounted.
    const pendingId = randomUUID();
    await this.prisma.restoreMount.create({
      data: { id: pendingId, backupId, mountPath: '', state: 'mounting', nodeName: this.settings.NODE_NAME },
    });
    try {
      // Mounting the same restore point twice reuses the existing mount.
      const m = await this.call((rs) => rs.mount({ imagePath, reuse: true, mountId: pendingId }));
      if (m.mountId !== pendingId) {
        await this.prisma.restoreMount.delete({ where: { id: pendingId } });
        await this.prisma.restoreMount.upsert({
          where: { id: m.mountId },
          create: { id: m.mountId, backupId, mountPath: m.root, state: 'mounted', nodeName: this.settings.NODE_NAME, partitions: m.partitions as object },
          update: { state: 'mounted', lastAccessAt: new Date() },
        });
      } else {
        await this.prisma.restoreMount.update({ where: { id: pendingId }, data: { mountPath: m.root, state: 'mounted', partitions: m.partitions as object } });
      }
      return this.view(m, backupId);
    } catch (err) {
      await this.prisma.restoreMount.deleteMany({ where: { id: pendingId } });
      throw err;
    }
  }

  /** Active mounts; rows of mounts the service no longer has (idle unmount, crash) are dropped. */
  async list() {
    const mounts = await this.call((rs) => rs.list());
    const rows = await this.prisma.restoreMount.findMany({ where: { nodeName: this.settings.NODE_NAME } });
    const live = new Set(mounts.map((m) => m.mountId));
    // Rows still being mounted are not stale yet.
    const stale = rows.filter((r) => !live.has(r.id) && r.state !== 'mounting').map((r) => r.id);
    if (stale.length) await this.prisma.restoreMount.deleteMany({ where: { id: { in: stale } } });
    return mounts.map((m) => this.view(m, rows.find((r) => r.id === m.mountId)?.backupId ?? null));
  }

  /** The row goes only once the mount is gone (or was already gone): it is what keeps maintenance off the chain. */
  async unmount(mountId: string) {
    try {
      await this.call((rs) => rs.unmount(mountId));
    } catch (err) {
      if (!(err instanceof HttpException && err.getStatus() === 404)) throw err;
      const known = await this.prisma.restoreMount.count({ where: { id: mountId } });
      await this.prisma.restoreMount.deleteMany({ where: { id: mountId } });
      if (!known) throw err;
      return;
    }
    await this.prisma.restoreMount.deleteMany({ where: { id: mountId } });
  }

  async touch(mountId: string) {
    await this.prisma.restoreMount.updateMany({ where: { id: mountId }, data: { lastAccessAt: new Date() } }).catch(() => undefined);
  }
}
