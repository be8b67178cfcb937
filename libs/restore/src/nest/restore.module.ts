import { Module, type DynamicModule } from '@nestjs/common';
import { ImageController } from './image.controller';
import { RestoreController } from './restore.controller';
import { RESTORE_OPTIONS, type RestoreModuleOptions } from './restore.options';
import { RestoreService } from './restore.service';

/**
 * Import into the restore-service app:
 * `RestoreModule.forRoot({ mountRoot, runDir, idleTimeoutMs, mode })`.
 */
@Module({})
export class RestoreModule {
  static forRoot(options: RestoreModuleOptions = {}): DynamicModule {
    return {
      module: RestoreModule,
      controllers: [RestoreController, ImageController],
      providers: [{ provide: RESTORE_OPTIONS, useValue: options }, RestoreService],
      exports: [RestoreService],
    };
  }
}
