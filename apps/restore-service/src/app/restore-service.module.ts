import { Controller, Get, Inject, Module, type DynamicModule } from '@nestjs/common';
import type { RestoreSettings } from '@sendense/config';
import type { RestoreServiceHealth } from '@sendense/contracts';
import { RestoreModule } from '@sendense/restore';

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
      providers: [{ provide: SETTINGS, useValue: settings }],
    };
  }
}
