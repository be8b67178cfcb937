import { ClientProxy, ClientProxyFactory, Transport } from '@nestjs/microservices';
import { internalAuthClientOptions } from './internal-auth';
import { firstValueFrom, timeout, type Observable } from 'rxjs';
import {
  CAPTURE_AGENT_PATTERNS,
  type CancelResponse,
  type CaptureAgentErrorCode,
  type RestoreDiskEvent,
  type RestoreDiskRequest,
  type RestoreDiskResult,
  type CopyDisksRequest,
  type CopyEvent,
  type DiskCopyResult,
  type PrepareBackupRequest,
  type PrepareBackupResponse,
  type ReleaseResponse,
  type RenewResponse,
  isCaptureAgentErrorPayload,
} from './capture-agent.contract';

/** An error the agent answered with (or a transport failure: code INTERNAL, retryable). */
export class CaptureAgentError extends Error {
  constructor(
    readonly code: CaptureAgentErrorCode,
    message: string,
    /** Transient: the worker may retry (with backoff). */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'CaptureAgentError';
  }
}

export type CopyProgressEvent = Extract<CopyEvent, { type: 'progress' }>;
export type CopyDoneEvent = Extract<CopyEvent, { type: 'done' }>;

export interface CaptureAgentClientOptions {
  /** tcp://host:port (CAPTURE_AGENT_URL); host/port win when given. */
  url?: string;
  host?: string;
  port?: number;
  /** prepare and release: snapshot tasks (and quiescing) can take minutes. Default 10 min. */
  timeoutMs?: number;
  /** copy: fail when no event arrives for this long (the agent sends several per second). Default 2 min. */
  copyIdleTimeoutMs?: number;
  /** SENDENSE_INTERNAL_TOKEN: sent with every message (the agent refuses messages without it). */
  token?: string;
}

export interface CopyCallOptions {
  onProgress?: (event: CopyProgressEvent) => void;
  /** Aborting sends cancel for the session; the copy then fails with code CANCELLED. */
  signal?: AbortSignal;
}

/**
 * Typed client of the Capture Agent for the backup-worker:
 *
 *   const prep = await agent.prepare({ runId, vcenter, vm, disks, allowEnableCbt: true, reader });
 *   try {
 *     const results = await agent.copy({ sessionId: prep.sessionId, targets }, { onProgress, signal });
 *   } finally {
 *     await agent.release(prep.sessionId);
 *   }
 */
export class CaptureAgentClient {
  private readonly timeoutMs: number;
  private readonly copyIdleTimeoutMs: number;

  constructor(
    private readonly proxy: ClientProxy,
    options: { timeoutMs?: number; copyIdleTimeoutMs?: number } = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 10 * 60_000;
    this.copyIdleTimeoutMs = options.copyIdleTimeoutMs ?? 2 * 60_000;
  }

  /**
   * A client over TCP: options.host/port, else options.url (the caller's
   * CAPTURE_AGENT_URL setting, from libs/config), else 127.0.0.1:8093. The
   * client never reads the environment itself.
   */
  static connect(options: CaptureAgentClientOptions = {}): CaptureAgentClient {
    const url = new URL(options.url ?? 'tcp://127.0.0.1:8093');
    const proxy = ClientProxyFactory.create({
      transport: Transport.TCP,
      options: {
        host: options.host ?? url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: options.port ?? Number(url.port || 8093),
        ...internalAuthClientOptions(options.token),
      },
    }) as ClientProxy;
    return new CaptureAgentClient(proxy, { timeoutMs: options.timeoutMs, copyIdleTimeoutMs: options.copyIdleTimeoutMs });
  }

  health(): Promise<{ ok: boolean; node: string; diskParallelism: number; sessions: number }> {
    return this.send(CAPTURE_AGENT_PATTERNS.health, {}, 30_000);
  }

  /** Snapshot, CBT and the per-disk plan (full or incremental, and why). */
  prepare(request: PrepareBackupRequest): Promise<PrepareBackupResponse> {
    return this.send(CAPTURE_AGENT_PATTERNS.prepare, request, this.timeoutMs);
  }

  /** Remove the snapshot; `released: false` when the session was already gone. */
  release(sessionId: string): Promise<ReleaseResponse> {
    return this.send(CAPTURE_AGENT_PATTERNS.release, { sessionId }, this.timeoutMs);
  }

  /** Renew the session's lease; LEASE_EXPIRED when it had already run out. */
  renew(sessionId: string): Promise<RenewResponse> {
    return this.send(CAPTURE_AGENT_PATTERNS.renew, { sessionId }, 10_000);
  }

  /**
   * Keep the session's lease from prepare until release: renew every quarter
   * of `leaseMs` (so three renewals in a row may be lost to a slow network).
   * `onLost` is called once when the agent says the session is gone
   * (LEASE_EXPIRED, NOT_FOUND); transport failures are retried at the next tick.
   */
  holdLease(sessionId: string, leaseMs: number, onLost?: (err: CaptureAgentError) => void): { stop(): void } {
    const every = Math.max(100, Math.floor(leaseMs / 4));
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = () => {
      timer = undefined;
      this.renew(sessionId)
        .then(
          () => undefined,
          (err: unknown) => {
            const e = err instanceof CaptureAgentError ? err : toClientError(CAPTURE_AGENT_PATTERNS.renew, err);
            if (e.code === 'LEASE_EXPIRED' || e.code === 'NOT_FOUND') {
              stopped = true;
              onLost?.(e);
            }
          },
        )
        .finally(() => {
          if (!stopped) timer = setTimeout(tick, every).unref();
        });
    };
    timer = setTimeout(tick, every).unref();
    return {
      stop: () => {
        stopped = true;
        if (timer) clearTimeout(timer);
      },
    };
  }

  /** Abort the running copy of the session (`cancelled: false` when none ran). */
  cancel(sessionId: string): Promise<CancelResponse> {
    return this.send(CAPTURE_AGENT_PATTERNS.cancel, { sessionId }, 30_000);
  }

  /** The copy stream as an async iterator: progress events, then one done event. */
  async *copyEvents(request: CopyDisksRequest, options: { signal?: AbortSignal } = {}): AsyncGenerator<CopyEvent, void, undefined> {
    const pattern = CAPTURE_AGENT_PATTERNS.copy;
    const stream: Observable<CopyEvent> = this.proxy.send<CopyEvent>(pattern, request).pipe(timeout({ each: this.copyIdleTimeoutMs }));
    const queue: CopyEvent[] = [];
    let finished = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    const sub = stream.subscribe({
      next: (ev) => {
        queue.push(ev);
        notify();
      },
      error: (err: unknown) => {
        failure = err ?? new Error('copy stream failed');
        finished = true;
        notify();
      },
      complete: () => {
        finished = true;
        notify();
      },
    });
    const onAbort = () => {
      this.cancel(request.sessionId).catch(() => undefined);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    try {
      for (;;) {
        const ev = queue.shift();
        if (ev) {
          yield ev;
          continue;
        }
        if (finished) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (failure !== undefined) throw toClientError(pattern, failure);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      sub.unsubscribe();
    }
  }

  /** The copy, resolved with the per-disk results of the done event. */
  async copy(request: CopyDisksRequest, options: CopyCallOptions = {}): Promise<DiskCopyResult[]> {
    let done: CopyDoneEvent | undefined;
    for await (const ev of this.copyEvents(request, { signal: options.signal })) {
      if (ev.type === 'done') done = ev;
      else options.onProgress?.(ev);
    }
    if (!done) throw new CaptureAgentError('INTERNAL', `${CAPTURE_AGENT_PATTERNS.copy}: the stream ended without a done event`, true);
    return done.disks;
  }

  /**
   * Write a restore point back into a VM's disk (the VM powered off); the
   * reply streams progress like copy. Aborting `signal` cancels it.
   */
  async restoreDisk(
    request: RestoreDiskRequest,
    options: { onProgress?: (e: Extract<RestoreDiskEvent, { type: 'progress' }>) => void; signal?: AbortSignal } = {},
  ): Promise<RestoreDiskResult> {
    const pattern = CAPTURE_AGENT_PATTERNS.restoreDisk;
    const stream: Observable<RestoreDiskEvent> = this.proxy.send<RestoreDiskEvent>(pattern, request).pipe(timeout({ each: this.copyIdleTimeoutMs }));
    const onAbort = () => void this.cancel(request.restoreId).catch(() => undefined);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    try {
      let result: RestoreDiskResult | undefined;
      await new Promise<void>((resolve, reject) => {
        stream.subscribe({
          next: (ev) => {
            if (ev.type === 'done') result = ev.result;
            else options.onProgress?.(ev);
          },
          error: (err: unknown) => reject(toClientError(pattern, err)),
          complete: () => resolve(),
        });
      });
      if (!result) throw new CaptureAgentError('INTERNAL', `${pattern}: the stream ended without a done event`, true);
      return result;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    await this.proxy.close();
  }

  private async send<T>(pattern: string, payload: unknown, timeoutMs: number): Promise<T> {
    try {
      return await firstValueFrom(this.proxy.send<T>(pattern, payload).pipe(timeout(timeoutMs)));
    } catch (err) {
      throw toClientError(pattern, err);
    }
  }
}

function toClientError(pattern: string, err: unknown): CaptureAgentError {
  // The agent throws RpcException({ code, message, retryable }); Nest delivers the payload as the error.
  if (isCaptureAgentErrorPayload(err)) return new CaptureAgentError(err.code, err.message, err.retryable);
  const message = err instanceof Error ? err.message : JSON.stringify(err);
  return new CaptureAgentError('INTERNAL', `capture-agent ${pattern} failed: ${message}`, true);
}
