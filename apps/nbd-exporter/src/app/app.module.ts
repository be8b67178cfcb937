import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { join } from 'node:path';
import type { ExporterConfig } from './config/exporter-config';
import { NbdExportManager } from './exports/export-manager';
import { ExporterController } from './nest/exporter.controller';
import { ExporterLifecycle } from './nest/exporter-lifecycle';
import { EXPORT_MANAGER, EXPORTER_CONFIG } from './nest/tokens';
import { EXPORT_RECORD_STORE, type ExportRecordStore } from './store/export-record';
import { FileExportRecordStore } from './store/file-export-record-store';

@Module({})
export class AppModule {
  /**
   * `store` defaults to the JSON file in the state dir; the Prisma store
   * (table nbd_exports) replaces it once libs/db is available.
   */
  static forRoot(config: ExporterConfig, store?: ExportRecordStore): DynamicModule {
    const logger = new Logger('NbdExportManager');
    return {
      module: AppModule,
      controllers: [ExporterController],
      providers: [
        { provide: EXPORTER_CONFIG, useValue: config },
        { provide: EXPORT_RECORD_STORE, useValue: store ?? new FileExportRecordStore(join(config.stateDir, 'exports.json')) },
        {
          provide: EXPORT_MANAGER,
          useFactory: (cfg: ExporterConfig, s: ExportRecordStore) =>
            new NbdExportManager(cfg, s, { log: (m) => logger.log(m), warn: (m) => logger.warn(m) }),
          inject: [EXPORTER_CONFIG, EXPORT_RECORD_STORE],
        },
        ExporterLifecycle,
      ],
    };
  }
}
