import { Controller, Get, Inject, Module, type DynamicModule } from '@nestjs/common';
import type { RestoreSettings } from '@sendense/config';

export const SETTINGS = Symbol('SETTINGS');

@Controller('internal')
export class RestoreHealthController {
  constructor(@Inject(SETTINGS) private readonly settings: RestoreSettings) {}

  @Get('health')
  health() {
    return { ok: true, node: this.settings.NODE_NAME, mountRoot: this.settings.RESTORE_MOUNT_ROOT };
  }
}

@Module({})
export class RestoreServiceModule {
  static forRoot(settings: RestoreSettings): DynamicModule {
    return { module: RestoreServiceModule, controllers: [RestoreHealthController], providers: [{ provide: SETTINGS, useValue: settings }] };
  }
}
