import {
  BadGatewayException,
  BadRequestException,
  ConflictException,
  HttpException,
  Inject,
  Injectable,
  NotFoundException,
  type OnModuleDestroy,
} from '@nestjs/common';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import type { Request, Response } from 'express';
import type { GatewaySettings } from '@sendense/config';
import { INTERNAL_TOKEN_HEADER, NbdExporterClient, NbdExporterError, RestoreServiceClient, RestoreServiceError, type NbdExportInfo } from '@sendense/contracts';
import { RestorePointLocator } from '../common/restore-points';
import { SETTINGS } from '../common/tokens';
import type { ExportDto, ImageFormatParam } from './dto/disk-restore.dto';

const PASS_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'content-disposition'];
const DEFAULT_IDLE_S = 3600;

export interface LocatedRestorePoint {
  id: string;
  vmContextId: string;
  vmName: string;
  diskId: number;
  imagePath: string;
  createdAt: Date;
}

/** Compact UTC timestamp with milliseconds (export names must differ for two exports of one point). */
function exportTimestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace('.', '').replace(/Z$/, '');
}

/**
 * Whole-disk restores as the gateway offers them: instant-access NBD exports
 * (asked of the nbd-exporter, which records them in nbd_exports with the
 * restore point, so maintenance holds the chain) and image downloads
 * (converted and streamed by the restore-service). The gateway only locates
 * the restore point and checks who may ask; the privileged services do the rest.
 */
@Injectable()
export class DiskRestoreService implements OnModuleDestroy {
  readonly exporter: NbdExporterClient;
  private readonly restoreService: RestoreServiceClient;

  constructor(
    private readonly restorePoints: RestorePointLocator,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {
    this.exporter = NbdExporterClient.connect({ url: settings.NBD_EXPORTER_URL, token: settings.SENDENSE_INTERNAL_TOKEN });
    this.restoreService = new RestoreServiceClient({
      baseUrl: settings.RESTORE_SERVICE_URL,
      headers: { [INTERNAL_TOKEN_HEADER]: settings.SENDENSE_INTERNAL_TOKEN },
    });
  }

  async onModuleDestroy(): Promise<void> {
    await this.exporter.close().catch(() => undefined);
  }

  /** A completed restore point of this node and the path of its image. */
  async locate(backupId: string, what: string): Promise<LocatedRestorePoint> {
    const { row, imagePath } = await this.restorePoints.onThisNode(backupId, what);
    return { id: row.id, vmContextId: row.vmContextId, vmName: row.vmName, diskId: row.diskId, imagePath, createdAt: row.createdAt };
  }

  private static mapExporterError(err: unknown, context: string): never {
    if (!(err instanceof NbdExporterError)) throw err;
    const message = `${context}: ${err.message}`;
    if (err.code === 'INVALID_ARGUMENT') throw new BadRequestException(message);
    if (err.code === 'CONFLICT') throw new ConflictException(message);
    if (err.code === 'NOT_FOUND') throw new NotFoundException(message);
    throw new BadGatewayException(message);
  }

  private static view(e: NbdExportInfo): ExportDto {
    return {
      name: e.name,
      backup_id: e.restorePointId ?? '',
      uri: e.uri,
      host: e.host,
      port: e.port,
      size_bytes: e.virtualSize,
      writable: e.overlayPath !== null,
      tls: e.tls,
      tls_mode: e.tlsMode ?? null,
      ...(e.tlsPsk ? { tls_psk: { identity: e.tlsPsk.identity, key: e.tlsPsk.key } } : {}),
      idle_timeout_seconds: e.idleTimeoutSeconds,
      created_at: e.createdAt,
      last_active_at: e.lastActiveAt,
      expires_at: e.expiresAt,
      node_name: e.nodeName,
    };
  }

  async createExport(input: { backupId: string; writable: boolean; idleTimeoutSeconds?: number }): Promise<ExportDto> {
    const rp = await this.locate(input.backupId, 'exported');
    try {
      const e = await this.exporter.createExport({
        vmContextId: rp.vmContextId,
        diskId: rp.diskId,
        type: input.writable ? 'overlay' : 'restore',
        timestamp: exportTimestamp(),
        kind: 'qcow2',
        filePath: rp.imagePath,
        restorePointId: rp.id,
        overlay: input.writable,
        idleTimeoutSeconds: input.idleTimeoutSeconds ?? DEFAULT_IDLE_S,
      });
      return DiskRestoreService.view(e);
    } catch (err) {
      DiskRestoreService.mapExporterError(err, `exporting backup ${rp.id} (VM ${rp.vmName}, disk ${rp.diskId})`);
    }
  }

  async listExports(backupId?: string): Promise<ExportDto[]> {
    try {
      const list = await this.exporter.listExports(backupId ? { restorePointId: backupId } : { restoreOnly: true });
      return list.map((e) => DiskRestoreService.view(e));
    } catch (err) {
      DiskRestoreService.mapExporterError(err, 'listing instant-access exports');
    }
  }

  /** Only instant-access exports end here: a backup's own target export is not the API's to remove. */
  async removeExport(name: string): Promise<void> {
    try {
      const e = await this.exporter.getExport(name);
      if (!e || e.restorePointId === null) throw new NotFoundException(`no instant-access export named ${name}`);
      await this.exporter.removeExport(name);
    } catch (err) {
      if (err instanceof HttpException) throw err;
      DiskRestoreService.mapExporterError(err, `removing export ${name}`);
    }
  }

  /** The restore point's disk as one image, streamed through from the restore-service (status, Range and headers intact). */
  async streamImage(backupId: string, format: ImageFormatParam, req: Request, res: Response): Promise<void> {
    const rp = await this.locate(backupId, 'downloaded');
    const stamp = rp.createdAt
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, '');
    const vm =
      rp.vmName
        .replace(/[^A-Za-z0-9._-]+/g, '_')
        .replace(/^[^A-Za-z0-9]+/, '')
        .slice(0, 80) || 'vm';
    const fileName = `${vm}-disk${rp.diskId}-${stamp}.${format}`;
    // The client going away aborts the upstream request, which stops the conversion there.
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    let upstream: globalThis.Response;
    try {
      upstream = await this.restoreService.image(
        { imagePath: rp.imagePath, format, fileName },
        { range: typeof req.headers.range === 'string' ? req.headers.range : undefined, signal: ac.signal },
      );
    } catch (err) {
      if (ac.signal.aborted) return;
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
      // The client went away; the upstream is aborted with it.
      ac.abort();
    }
  }
}
