import { Controller, Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import {
  CAPTURE_AGENT_PATTERNS,
  type CancelResponse,
  type CopyDisksRequest,
  type CopyEvent,
  type PrepareBackupRequest,
  type PrepareBackupResponse,
  type ReleaseResponse,
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

export const SETTINGS = Symbol('SETTINGS');
export const CAPTURE_SERVICE = Symbol('CAPTURE_SERVICE');
export const DISK_RESTORE_SERVICE = Symbol('DISK_RESTORE_SERVICE');

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
  ) {}

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
      return await this.service.prepare(req);
    } catch (err) {
      throw rpcError('prepare', err, this.logger);
    }
  }

  /** A stream: progress events (throttled), then one done event, then complete. */
  @MessagePattern(CAPTURE_AGENT_PATTERNS.copy)
  copy(@Payload() req: CopyDisksRequest): Observable<CopyEvent> {
    return new Observable<CopyEvent>((subscriber) => {
      this.service.copy(req, { onProgress: (ev) => subscriber.next(ev) }).then(
        (disks) => {
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
      return await this.service.release(req?.sessionId);
    } catch (err) {
      throw rpcError('release', err, this.logger);
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

/** Releases every snapshot when the agent stops (SIGTERM → app.close()). */
@Injectable()
class CaptureLifecycle implements OnApplicationShutdown {
  constructor(@Inject(CAPTURE_SERVICE) private readonly service: CaptureService) {}

  async onApplicationShutdown(): Promise<void> {
    await this.service.releaseAll();
  }
}

@Module({})
export class CaptureAgentModule {
  static forRoot(settings: CaptureAgentSettings, overrides: Partial<CaptureServiceOptions> = {}): DynamicModule {
    const service = new CaptureService({
      diskParallelism: settings.CAPTURE_DISK_PARALLELISM,
      allowEnableCbt: settings.CAPTURE_ALLOW_ENABLE_CBT,
      ...overrides,
    });
    return {
      module: CaptureAgentModule,
      controllers: [CaptureAgentController, InternalAuthRefusal],
      providers: [
        { provide: SETTINGS, useValue: settings },
        { provide: CAPTURE_SERVICE, useValue: service },
        { provide: DISK_RESTORE_SERVICE, useValue: new DiskRestoreService() },
        CaptureLifecycle,
      ],
    };
  }
}
