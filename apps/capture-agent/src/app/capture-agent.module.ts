import { Controller, Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import {
  CAPTURE_AGENT_PATTERNS,
  type CancelResponse,
  type CopyDisksRequest,
  type CopyEvent,
  type PrepareBackupRequest,
  type PrepareBackupResponse,
  type ReleaseResponse,
  type RenewResponse,
  type RestoreDiskEvent,
  type RestoreDiskRequest,
  type SessionRequest,
} from '@sendense/contracts';
import type { CaptureAgentSettings } from '@sendense/config';
import { Observable } from 'rxjs';
import { toCaptureError } from './capture-error';
import { CaptureService, type CaptureServiceOptions } from './capture.service';
import { DiskRestoreService } from './disk-restore.service';
import { InternalAuthRefusal } from '@sendense/contracts';
import { captureMetrics, createRegistry, serveMetrics, type CaptureMetrics, type Registry } from '@sendense/metrics';

export const SETTINGS = Symbol('SETTINGS');
export const CAPTURE_SERVICE = Symbol('CAPTURE_SERVICE');
export const DISK_RESTORE_SERVICE = Symbol('DISK_RESTORE_SERVICE');
export const METRICS = Symbol('METRICS');

/** The agent's registry and the families it moves. */
export interface AgentMetrics {
  registry: Registry;
  m: CaptureMetrics;
}

function rpcError(what: string, err: unknown, logger: Logger): RpcException {
  const ce = toCaptureError(err);
  if (ce.code === 'INTERNAL') logger.error(`${what}: ${ce.message}`);
  else logger.warn(`${what}: ${ce.code}: ${ce.message}`);
  return new RpcException(ce.toPayload());
}

/** Thin RPC layer over CaptureService. */
@Controller()
export class CaptureAgentController {
  private readonly logger = new Logger('CaptureAgentController');

  constructor(
    @Inject(SETTINGS) private readonly settings: CaptureAgentSettings,
    @Inject(CAPTURE_SERVICE) private readonly service: CaptureService,
    @Inject(DISK_RESTORE_SERVICE) private readonly restores: DiskRestoreService,
    @Inject(METRICS) private readonly metrics: AgentMetrics,
  ) {}

  private count<T>(call: string, p: Promise<T>): Promise<T> {
    return p.then(
      (v) => {
        this.metrics.m.calls.inc({ call, result: 'ok' });
        return v;
      },
      (err: unknown) => {
        this.metrics.m.calls.inc({ call, result: 'error' });
        throw err;
      },
    );
  }

  @MessagePattern(CAPTURE_AGENT_PATTERNS.health)
  health() {
    return {
      ok: true,
      node: this.settings.NODE_NAME,
      diskParallelism: this.settings.CAPTURE_DISK_PARALLELISM,
      sessions: this.service.sessions.size,
    };
  }

  @MessagePattern(CAPTURE_AGENT_PATTERNS.prepare)
  async prepare(@Payload() req: PrepareBackupRequest): Promise<PrepareBackupResponse> {
    try {
      return await this.count('prepare', this.service.prepare(req));
    } catch (err) {
      throw rpcError('prepare', err, this.logger);
    }
  }

  /** A stream: progress events (throttled), then one done event, then complete. */
  @MessagePattern(CAPTURE_AGENT_PATTERNS.copy)
  copy(@Payload() req: CopyDisksRequest): Observable<CopyEvent> {
    return new Observable<CopyEvent>((subscriber) => {
      this.count('copy', this.service.copy(req, { onProgress: (ev) => subscriber.next(ev) })).then(
        (disks) => {
          for (const d of disks) {
            this.metrics.m.bytesRead.inc(d.bytesRead);
            this.metrics.m.bytesZeroed.inc(d.bytesZeroed);
            this.metrics.m.copyDuration.observe(d.durationMs / 1000);
          }
          subscriber.next({ type: 'done', disks });
          subscriber.complete();
        },
        (err: unknown) => subscriber.error(rpcError('copy', err, this.logger)),
      );
    });
  }

  /** A disk restore into a powered-off VM: progress events, then one done event. */
  @MessagePattern(CAPTURE_AGENT_PATTERNS.restoreDisk)
  restoreDisk(@Payload() req: RestoreDiskRequest): Observable<RestoreDiskEvent> {
    return new Observable<RestoreDiskEvent>((subscriber) => {
      this.restores.restore(req, { onProgress: (ev) => subscriber.next(ev) }).then(
        (result) => {
          subscriber.next({ type: 'done', result });
          subscriber.complete();
        },
        (err: unknown) => subscriber.error(rpcError('restoreDisk', err, this.logger)),
      );
    });
  }

  @MessagePattern(CAPTURE_AGENT_PATTERNS.release)
  async release(@Payload() req: SessionRequest): Promise<ReleaseResponse> {
    try {
      return await this.count('release', this.service.release(req?.sessionId));
    } catch (err) {
      throw rpcError('release', err, this.logger);
    }
  }

  /** The worker's heartbeat for a session: without it the agent stops the copy and removes the snapshot. */
  @MessagePattern(CAPTURE_AGENT_PATTERNS.renew)
  renew(@Payload() req: SessionRequest): RenewResponse {
    try {
      return this.service.renew(req?.sessionId);
    } catch (err) {
      throw rpcError('renew', err, this.logger);
    }
  }

  @MessagePattern(CAPTURE_AGENT_PATTERNS.cancel)
  cancel(@Payload() req: SessionRequest): CancelResponse {
    try {
      // A restore id cancels that disk restore; anything else is a backup session.
      if (typeof req?.sessionId === 'string' && this.restores.cancel(req.sessionId)) return { sessionId: req.sessionId, cancelled: true };
      return this.service.cancel(req?.sessionId);
    } catch (err) {
      throw rpcError('cancel', err, this.logger);
    }
  }
}

/**
 * Releases every snapshot when the agent stops (SIGTERM → app.close()); the
 * loopback metrics listener (CAPTURE_AGENT_METRICS_PORT) lives as long as the agent.
 */
@Injectable()
class CaptureLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('CaptureAgent');
  private server: { close(): Promise<void> } | null = null;

  constructor(
    @Inject(CAPTURE_SERVICE) private readonly service: CaptureService,
    @Inject(SETTINGS) private readonly settings: CaptureAgentSettings,
    @Inject(METRICS) private readonly metrics: AgentMetrics,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const port = this.settings.CAPTURE_AGENT_METRICS_PORT;
    if (!port) return;
    // Metrics are not worth refusing backups for: a port in use is logged.
    this.server = await serveMetrics(this.metrics.registry, port).then(
      (s) => {
        this.log.log(`metrics on http://127.0.0.1:${s.port}/metrics`);
        return s;
      },
      (err: unknown) => {
        this.log.error(`metrics listener on 127.0.0.1:${port} not started: ${err instanceof Error ? err.message : String(err)}`);
        return null;
      },
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.close();
    await this.service.releaseAll();
  }
}

@Module({})
export class CaptureAgentModule {
  static forRoot(settings: CaptureAgentSettings, overrides: Partial<CaptureServiceOptions> = {}): DynamicModule {
    const service = new CaptureService({
      diskParallelism: settings.CAPTURE_DISK_PARALLELISM,
      allowEnableCbt: settings.CAPTURE_ALLOW_ENABLE_CBT,
      defaultLeaseMs: settings.CAPTURE_SESSION_LEASE * 1000,
      sourceRetries: settings.CAPTURE_SOURCE_RETRIES,
      ...overrides,
    });
    return {
      module: CaptureAgentModule,
      controllers: [CaptureAgentController, InternalAuthRefusal],
      providers: [
        { provide: SETTINGS, useValue: settings },
        { provide: CAPTURE_SERVICE, useValue: service },
        { provide: DISK_RESTORE_SERVICE, useValue: new DiskRestoreService() },
        {
          provide: METRICS,
          useFactory: (): AgentMetrics => {
            const registry = createRegistry('capture-agent');
            return {
              registry,
              m: captureMetrics(registry, () => service.sessions.size),
            };
          },
        },
        CaptureLifecycle,
      ],
    };
  }
}
