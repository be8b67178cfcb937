import { ClientProxy, ClientProxyFactory, Transport } from '@nestjs/microservices';
import { internalAuthClientOptions } from './internal-auth';
import { firstValueFrom, timeout } from 'rxjs';
import {
  NBD_EXPORTER_PATTERNS,
  type CreateNbdExportRequest,
  type GetNbdExportResponse,
  type ListNbdExportsRequest,
  type ListNbdExportsResponse,
  type NbdExportInfo,
  type NbdExporterErrorCode,
  type RemoveNbdExportResponse,
  isNbdExporterErrorPayload,
} from './nbd-exporter.contract';

/** An error the exporter answered with (or a transport failure, code INTERNAL). */
export class NbdExporterError extends Error {
  constructor(
    readonly code: NbdExporterErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NbdExporterError';
  }
}

export interface NbdExporterClientOptions {
  /** tcp://host:port (the NBD_EXPORTER_URL setting of the other services). */
  url?: string;
  host?: string;
  port?: number;
  /** Per-request timeout; creating a QCOW2 export takes well under a second. */
  timeoutMs?: number;
  /** SENDENSE_INTERNAL_TOKEN: sent with every message (the exporter refuses messages without it). */
  token?: string;
}

/**
 * Typed client of the nbd-exporter for backup-worker and restore-service.
 * Wraps a ClientProxy so callers never spell pattern names or payload shapes.
 */
export class NbdExporterClient {
  private readonly timeoutMs: number;

  constructor(
    private readonly proxy: ClientProxy,
    options: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /**
   * A client over TCP. Address: options.host/port, else options.url (the
   * caller's NBD_EXPORTER_URL setting, from libs/config), else
   * tcp://127.0.0.1:8091. The client never reads the environment itself.
   */
  static connect(options: NbdExporterClientOptions = {}): NbdExporterClient {
    const url = new URL(options.url ?? 'tcp://127.0.0.1:8091');
    if (url.protocol !== 'tcp:') throw new NbdExporterError('INVALID_ARGUMENT', `nbd-exporter address ${url.href} is not tcp://host:port`);
    const proxy = ClientProxyFactory.create({
      transport: Transport.TCP,
      options: {
        host: options.host ?? (url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'),
        port: options.port ?? Number(url.port || 8091),
        ...internalAuthClientOptions(options.token),
      },
    }) as ClientProxy;
    return new NbdExporterClient(proxy, { timeoutMs: options.timeoutMs });
  }

  createExport(request: CreateNbdExportRequest): Promise<NbdExportInfo> {
    return this.send(NBD_EXPORTER_PATTERNS.createExport, request);
  }

  removeExport(name: string): Promise<RemoveNbdExportResponse> {
    return this.send(NBD_EXPORTER_PATTERNS.removeExport, { name });
  }

  async listExports(request: ListNbdExportsRequest = {}): Promise<NbdExportInfo[]> {
    const res = await this.send<ListNbdExportsResponse>(NBD_EXPORTER_PATTERNS.listExports, request);
    return res.exports;
  }

  async getExport(name: string): Promise<NbdExportInfo | null> {
    const res = await this.send<GetNbdExportResponse>(NBD_EXPORTER_PATTERNS.getExport, { name });
    return res.export;
  }

  async close(): Promise<void> {
    await this.proxy.close();
  }

  private async send<T>(pattern: string, payload: unknown): Promise<T> {
    try {
      return await firstValueFrom(this.proxy.send<T>(pattern, payload).pipe(timeout(this.timeoutMs)));
    } catch (err) {
      // The exporter throws RpcException({ code, message }); Nest delivers the payload as the error.
      if (isNbdExporterErrorPayload(err)) throw new NbdExporterError(err.code, err.message);
      const message = err instanceof Error ? err.message : JSON.stringify(err);
      throw new NbdExporterError('INTERNAL', `nbd-exporter ${pattern} failed: ${message}`);
    }
  }
}
