import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { GatewaySettings } from '@sendense/config';
import { SETTINGS } from '../common/tokens';

/** The gateway's settings (from libs/config), injectable everywhere as SETTINGS. */
@Global()
@Module({})
export class SettingsModule {
  static forRoot(settings: GatewaySettings): DynamicModule {
    return { module: SettingsModule, providers: [{ provide: SETTINGS, useValue: settings }], exports: [SETTINGS] };
  }
}
