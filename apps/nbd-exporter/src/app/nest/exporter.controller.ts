import { Controller, Inject, Logger } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import {
  NBD_EXPORTER_PATTERNS,
  type CreateNbdExportRequest,
  type CreateNbdExportResponse,
  type GetNbdExportRequest,
  type GetNbdExportResponse,
  type ListNbdExportsRequest,
  type ListNbdExportsResponse,
  type NbdExporterErrorPayload,
  type RemoveNbdExportRequest,
  type RemoveNbdExportResponse,
} from '@sendense/contracts';
import { ExporterError } from '../exporter-error';
import type { NbdExportManager } from '../exports/export-manager';
import { EXPORT_MANAGER } from './tokens';

/** Thin RPC layer: every handler delegates to NbdExportManager and maps its errors. */
@Controller()
export class ExporterController {
  private readonly logger = new Logger('ExporterController');

  constructor(@Inject(EXPORT_MANAGER) private readonly manager: NbdExportManager) {}

  @MessagePattern(NBD_EXPORTER_PATTERNS.createExport)
  createExport(@Payload() req: CreateNbdExportRequest): Promise<CreateNbdExportResponse> {
    return this.guard('createExport', () => this.manager.create(req));
  }

  @MessagePattern(NBD_EXPORTER_PATTERNS.removeExport)
  removeExport(@Payload() req: RemoveNbdExportRequest): Promise<RemoveNbdExportResponse> {
    return this.guard('removeExport', () => this.manager.remove(req?.name));
  }

  @MessagePattern(NBD_EXPORTER_PATTERNS.listExports)
  async listExports(@Payload() req: ListNbdExportsRequest | null): Promise<ListNbdExportsResponse> {
    return this.guard('listExports', async () => ({ exports: await this.manager.list(req ?? {}) }));
  }

  @MessagePattern(NBD_EXPORTER_PATTERNS.getExport)
  async getExport(@Payload() req: GetNbdExportRequest): Promise<GetNbdExportResponse> {
    return this.guard('getExport', async () => ({ export: await this.manager.get(req?.name) }));
  }

  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const payload: NbdExporterErrorPayload =
        err instanceof ExporterError
          ? { code: err.code, message: err.message }
          : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
      if (payload.code === 'INTERNAL') this.logger.error(`${what}: ${payload.message}`);
      throw new RpcException(payload);
    }
  }
}
