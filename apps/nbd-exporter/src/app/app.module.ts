import { Logger, Module, type DynamicModule } from '@nestjs/common';
import type { ExporterConfig } from './config/exporter-config';
import { NbdExportManager } from './exports/export-manager';
import { ExporterController } from './nest/exporter.controller';
import { ExporterLifecycle } from './nest/exporter-lifecycle';
import { EXPORT_MANAGER, EXPORTER_CONFIG, RECORD_STORE_HANDLE } from './nest/tokens';
import { openRecordStore, type OpenedRecordStore } from './store/record-store-factory';
import { InternalAuthRefusal } from '@sendense/contracts';

@Module({})
export class AppModule {
  /** `opened` replaces the store the config selects (tests pass an in-memory one). */
  static forRoot(config: ExporterConfig, opened?: OpenedRecordStore): DynamicModule {
    const logger = new Logger('NbdExportManager');
    return {
      module: AppModule,
      controllers: [ExporterController, InternalAuthRefusal],
      providers: [
        { provide: EXPORTER_CONFIG, useValue: config },
        { provide: RECORD_STORE_HANDLE, useFactory: () => opened ?? openRecordStore(config) },
        {
          provide: EXPORT_MANAGER,
          useFactory: (cfg: ExporterConfig, handle: OpenedRecordStore) =>
            new NbdExportManager(cfg, handle.store, { log: (m) => logger.log(m), warn: (m) => logger.warn(m) }),
          inject: [EXPORTER_CONFIG, RECORD_STORE_HANDLE],
        },
        ExporterLifecycle,
      ],
    };
  }
}
