import { ConflictException, HttpException, HttpStatus, Inject, Injectable, ServiceUnavailableException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import type { Request, Response } from 'express';
import type { GatewaySettings } from '@sendense/config';
import { INTERNAL_TOKEN_HEADER, RestoreServiceClient, RestoreServiceError, type ListPage, type MountInfo, type StreamOptions } from '@sendense/contracts';
import { RestoreMountRepository, type BackupJob } from '@sendense/db';
import { RestorePointLocator } from '../common/restore-points';
import { SETTINGS } from '../common/tokens';
import type { MountInfoDto } from './dto/restore.dto';
import type { Principal } from '../auth/api-key.service';

const PASS_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'content-disposition', 'last-modified'];

/** A query value given once, as text (anything else is left out, as before). */
function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

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
    private readonly restorePoints: RestorePointLocator,
    private readonly mounts: RestoreMountRepository,
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
    const { row, imagePath } = await this.restorePoints.onThisNode(backupId, 'mounted');
    // A chain with a point that failed verification would show damaged data as if it were the guest's.
    for (let p: BackupJob | null = row, hops = 0; p && hops < 10_000; hops++) {
      if (p.verifyStatus === 'failed') {
        throw new ConflictException(
          `restore point ${p.id} (${p.repositoryPath}) in the chain of backup ${backupId} failed verification${p.verifiedAt ? ` at ${p.verifiedAt.toISOString()}` : ''}: mounting it would show damaged data, so it is refused; mount a restore point of a newer chain (the next backup is a full)`,
        );
      }
      p = p.parentBackupId ? await this.restorePoints.find(p.parentBackupId) : null;
    }
    return { imagePath, repositoryId: row.repository.id };
  }

  private view(m: MountInfo, backupId: string | null): MountInfoDto {
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

  async mount(backupId: string, principal?: Principal): Promise<MountInfoDto> {
    const { imagePath } = await this.imagePathOf(backupId);
    // Recorded before mounting, so maintenance never sees the chain as free while it is being mounted.
    const pendingId = randomUUID();
    const nodeName = this.settings.NODE_NAME;
    if (principal) {
      const cap = this.settings.RESTORE_MAX_MOUNTS_PER_KEY;
      const r = await this.mounts.createPendingWithinCap({ id: pendingId, backupId, nodeName, apiKeyId: principal.id, cap });
      if (!r.created) {
        throw new HttpException(
          {
            statusCode: HttpStatus.TOO_MANY_REQUESTS,
            error: 'Too Many Requests',
            message: `API key ${principal.name} holds ${r.held} mounts, the most one key may (RESTORE_MAX_MOUNTS_PER_KEY=${cap}); backup ${backupId} was not mounted: unmount one (DELETE /api/v1/restore/{mount_id}, see GET /api/v1/restore/mounts) or wait for the idle unmount`,
          },
          HttpStatus.TOO_MANY_REQUESTS,
        );
      }
    } else {
      await this.mounts.createPending({ id: pendingId, backupId, nodeName });
    }
    try {
      // Mounting the same restore point twice reuses the existing mount.
      const m = await this.call((rs) => rs.mount({ imagePath, reuse: true, mountId: pendingId }));
      if (m.mountId !== pendingId) {
        await this.mounts.remove(pendingId);
        await this.mounts.recordReused({ id: m.mountId, backupId, nodeName, mountPath: m.root, partitions: m.partitions });
      } else {
        await this.mounts.markMounted(pendingId, m.root, m.partitions);
      }
      return this.view(m, backupId);
    } catch (err) {
      await this.mounts.remove(pendingId);
      throw err;
    }
  }

  /** Active mounts; rows of mounts the service no longer has (idle unmount, crash) are dropped. */
  async list(): Promise<MountInfoDto[]> {
    const mounts = await this.call((rs) => rs.list());
    const rows = await this.mounts.listForNode(this.settings.NODE_NAME);
    const live = new Set(mounts.map((m) => m.mountId));
    // Rows still being mounted are not stale yet.
    const stale = rows.filter((r) => !live.has(r.id) && r.state !== 'mounting').map((r) => r.id);
    await this.mounts.remove(...stale);
    return mounts.map((m) => this.view(m, rows.find((r) => r.id === m.mountId)?.backupId ?? null));
  }

  /** The row goes only once the mount is gone (or was already gone): it is what keeps maintenance off the chain. */
  async unmount(mountId: string): Promise<void> {
    try {
      await this.call((rs) => rs.unmount(mountId));
    } catch (err) {
      if (!(err instanceof HttpException && err.getStatus() === 404)) throw err;
      if (!(await this.mounts.remove(mountId))) throw err;
      return;
    }
    await this.mounts.remove(mountId);
  }

  /** A page of a directory listing of a mount. */
  files(mountId: string, q: { path: unknown; offset: unknown; limit: unknown }): Promise<ListPage> {
    void this.touch(mountId);
    return this.call((rs) => rs.files(mountId, { path: text(q.path), offset: text(q.offset), limit: text(q.limit) }));
  }

  /** Stream the restore-service's download or archive answer through, with Range and status intact. */
  async stream(mountId: string, what: 'download' | 'archive', path: unknown, req: Request, res: Response): Promise<void> {
    void this.touch(mountId);
    const ac = new AbortController();
    req.on('close', () => ac.abort());
    const o: StreamOptions = { range: typeof req.headers.range === 'string' ? req.headers.range : undefined, signal: ac.signal };
    let upstream: globalThis.Response;
    try {
      upstream = await (what === 'download' ? this.client.download(mountId, text(path) ?? '', o) : this.client.archive(mountId, text(path) ?? '', o));
    } catch (err) {
      if (!(err instanceof RestoreServiceError)) throw err;
      res.status(503).json(err.body);
      return;
    }
    res.status(upstream.status);
    for (const h of PASS_HEADERS) {
      const v = upstream.headers.get(h);
      if (v) res.setHeader(h, v);
    }
    if (!upstream.body) {
      res.end();
      return;
    }
    try {
      await pipeline(Readable.fromWeb(upstream.body as ReadableStream), res);
    } catch {
      // client went away; nothing to tell it
    }
  }

  async touch(mountId: string): Promise<void> {
    await this.mounts.touch(mountId).catch(() => undefined);
  }
}
