import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { createRegistry, exporterMetrics } from '@sendense/metrics';
import type { ExporterConfig } from './config/exporter-config';
import { NbdExportManager } from './exports/export-manager';
import { ExporterController } from './nest/exporter.controller';
import { ExporterLifecycle } from './nest/exporter-lifecycle';
import { EXPORT_MANAGER, EXPORTER_CONFIG, METRICS_REGISTRY, RECORD_STORE_HANDLE } from './nest/tokens';
import { openRecordStore, type OpenedRecordStore } from './store/record-store-factory';
import { InternalAuthRefusal } from '@sendense/contracts';

@Module({})
export class AppModule {
  /** `opened` replaces the store the config selects (tests pass an in-memory one). */
  static forRoot(config: ExporterConfig, opened?: OpenedRecordStore): DynamicModule {
    const logger = new Logger('NbdExportManager');
    const registry = createRegistry('nbd-exporter');
    return {
      module: AppModule,
      controllers: [ExporterController, InternalAuthRefusal],
      providers: [
        { provide: EXPORTER_CONFIG, useValue: config },
        { provide: METRICS_REGISTRY, useValue: registry },
        { provide: RECORD_STORE_HANDLE, useFactory: () => opened ?? openRecordStore(config) },
        {
          provide: EXPORT_MANAGER,
          useFactory: (cfg: ExporterConfig, handle: OpenedRecordStore) => {
            // The gauges read the manager at each scrape; the counters move with its events.
            let manager: NbdExportManager | null = null;
            const m = exporterMetrics(registry, () => (manager ? manager.counts() : Promise.resolve({ exports: [], servers: [] })));
            manager = new NbdExportManager(
              cfg,
              handle.store,
              { log: (msg) => logger.log(msg), warn: (msg) => logger.warn(msg) },
              {
                created: (kind) => m.exportsCreated.inc({ kind }),
                removed: (reason) => m.exportsRemoved.inc({ reason }),
                reconciled: (r) => {
                  m.reconcileActions.inc({ action: 'kept' }, r.kept.length);
                  m.reconcileActions.inc({ action: 'record_dropped' }, r.removedRecords.length);
                  m.reconcileActions.inc({ action: 'server_stopped' }, r.killedPids.length);
                  m.reconcileActions.inc({ action: 'config_deleted' }, r.removedConfigs.length);
                },
              },
            );
            return manager;
          },
          inject: [EXPORTER_CONFIG, RECORD_STORE_HANDLE],
        },
        ExporterLifecycle,
      ],
    };
  }
}
