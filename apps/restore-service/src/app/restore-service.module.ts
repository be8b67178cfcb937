import {
  Controller,
  Get,
  Inject,
  Injectable,
  Logger,
  Module,
  type DynamicModule,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { RestoreSettings } from '@sendense/config';
import type { RestoreServiceHealth } from '@sendense/contracts';
import { createRegistry, Gauge, serveMetrics } from '@sendense/metrics';
import { RestoreModule, RestoreService } from '@sendense/restore';

export const SETTINGS = Symbol('SETTINGS');

/** GET /internal/health (RESTORE_SERVICE_ROUTES.health). */
@Controller('internal')
export class RestoreHealthController {
  constructor(@Inject(SETTINGS) private readonly settings: RestoreSettings) {}

  @Get('health')
  health(): RestoreServiceHealth {
    return { ok: true, node: this.settings.NODE_NAME, mountRoot: this.settings.RESTORE_MOUNT_ROOT };
  }
}

/**
 * Prometheus metrics on a loopback listener (RESTORE_METRICS_PORT), apart
 * from the internal API so a local scraper needs no internal token.
 */
@Injectable()
export class RestoreMetricsListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('RestoreMetrics');
  private server: { close(): Promise<void> } | null = null;

  constructor(
    @Inject(SETTINGS) private readonly settings: RestoreSettings,
    @Inject(RestoreService) private readonly restore: RestoreService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const port = this.settings.RESTORE_METRICS_PORT;
    if (!port) return;
    const registry = createRegistry('restore-service');
    const manager = this.restore.manager;
    new Gauge({
      name: 'sendense_restore_active_mounts',
      help: 'Restore points this restore-service has mounted',
      registers: [registry],
      collect() {
        this.set(manager.list().length);
      },
    });
    // Metrics are not worth refusing restores for: a port in use is logged.
    this.server = await serveMetrics(registry, port).then(
      (srv) => {
        this.log.log(`metrics on http://127.0.0.1:${srv.port}/metrics`);
        return srv;
      },
      (err: unknown) => {
        this.log.error(`metrics listener on 127.0.0.1:${port} not started: ${err instanceof Error ? err.message : String(err)}`);
        return null;
      },
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.close();
  }
}

/**
 * The restore-service: the mount engine and file browser of libs/restore
 * behind an internal HTTP API (the gateway authenticates and proxies).
 */
@Module({})
export class RestoreServiceModule {
  static forRoot(settings: RestoreSettings): DynamicModule {
    return {
      module: RestoreServiceModule,
      imports: [
        RestoreModule.forRoot({
          mountRoot: settings.RESTORE_MOUNT_ROOT,
          runDir: settings.RESTORE_STATE_DIR,
          idleTimeoutMs: settings.RESTORE_IDLE_TIMEOUT,
          maxMounts: settings.RESTORE_MAX_MOUNTS,
          mode: settings.RESTORE_BLOCK_BACKEND,
          allowedImageRoots: settings.RESTORE_ALLOWED_ROOTS.split(':').filter(Boolean),
          ...(settings.RESTORE_IMAGE_DIR ? { imageWorkDir: settings.RESTORE_IMAGE_DIR } : {}),
          cleanupOnStart: true,
        }),
      ],
      controllers: [RestoreHealthController],
      providers: [{ provide: SETTINGS, useValue: settings }, RestoreMetricsListener],
    };
  }
}
