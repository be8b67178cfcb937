import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom, tap, timeout } from 'rxjs';
import {
  CAPTURE_AGENT_PATTERNS,
  isCaptureAgentErrorPayload,
  type CancelResponse,
  type CopyDisksRequest,
  type CopyEvent,
  type DiskCopyResult,
  type PrepareBackupRequest,
  type PrepareBackupResponse,
  type ReleaseResponse,
} from '@sendense/contracts';
import type { CaptureAgentPort } from './ports';

/** The Capture Agent over Nest's TCP transport. Errors arrive as CaptureAgentErrorPayload. */
export class CaptureAgentAdapter implements CaptureAgentPort {
  private readonly proxy: ClientProxy;

  constructor(host: string, port: number) {
    this.proxy = ClientProxyFactory.create({ transport: Transport.TCP, options: { host, port } }) as ClientProxy;
  }

  private call<T>(pattern: string, payload: unknown, ms: number): Promise<T> {
    return firstValueFrom(this.proxy.send<T>(pattern, payload).pipe(timeout(ms))).catch((err: unknown) => {
      throw isCaptureAgentErrorPayload(err) ? err : new Error(`Capture Agent ${pattern} failed: ${err instanceof Error ? err.message : JSON.stringify(err)}`);
    });
  }

  prepare(req: PrepareBackupRequest): Promise<PrepareBackupResponse> {
    return this.call(CAPTURE_AGENT_PATTERNS.prepare, req, 10 * 60_000);
  }

  async copy(req: CopyDisksRequest, onProgress: (e: Extract<CopyEvent, { type: 'progress' }>) => void): Promise<DiskCopyResult[]> {
    let done: DiskCopyResult[] | null = null;
    try {
      await lastValueFrom(
        this.proxy.send<CopyEvent>(CAPTURE_AGENT_PATTERNS.copy, req).pipe(
          tap((e) => {
            if (e.type === 'progress') onProgress(e);
            else done = e.disks;
          }),
        ),
      );
    } catch (err) {
      throw isCaptureAgentErrorPayload(err) ? err : new Error(`Capture Agent copy failed: ${err instanceof Error ? err.message : JSON.stringify(err)}`);
    }
    if (!done) throw new Error('the Capture Agent ended the copy without a result');
    return done;
  }

  release(sessionId: string): Promise<ReleaseResponse> {
    return this.call(CAPTURE_AGENT_PATTERNS.release, { sessionId }, 5 * 60_000);
  }

  cancel(sessionId: string): Promise<CancelResponse> {
    return this.call(CAPTURE_AGENT_PATTERNS.cancel, { sessionId }, 30_000);
  }

  async close(): Promise<void> {
    await this.proxy.close();
  }
}
