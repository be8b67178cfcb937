import { Controller, Inject, Module, type DynamicModule } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import type { CaptureAgentSettings } from '@sendense/config';

export const SETTINGS = Symbol('SETTINGS');

@Controller()
export class CaptureAgentController {
  constructor(@Inject(SETTINGS) private readonly settings: CaptureAgentSettings) {}

  @MessagePattern('capture.health')
  health() {
    return { ok: true, node: this.settings.NODE_NAME, diskParallelism: this.settings.CAPTURE_DISK_PARALLELISM };
  }
}

@Module({})
export class CaptureAgentModule {
  static forRoot(settings: CaptureAgentSettings): DynamicModule {
    return { module: CaptureAgentModule, controllers: [CaptureAgentController], providers: [{ provide: SETTINGS, useValue: settings }] };
  }
}
