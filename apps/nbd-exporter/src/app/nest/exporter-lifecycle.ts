import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NbdExportManager } from '../exports/export-manager';
import type { OpenedRecordStore } from '../store/record-store-factory';
import { EXPORT_MANAGER, RECORD_STORE_HANDLE } from './tokens';

/** Reconcile before serving requests; stop every server on shutdown (SIGTERM via enableShutdownHooks). */
@Injectable()
export class ExporterLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('NbdExporter');

  constructor(
    @Inject(EXPORT_MANAGER) private readonly manager: NbdExportManager,
    @Inject(RECORD_STORE_HANDLE) private readonly records: OpenedRecordStore,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const report = await this.manager.start();
    this.logger.log(`reconciled: ${report.kept.length} export(s) kept, ${report.killedPids.length} orphan server(s) stopped`);
  }

  async onApplicationShutdown(signal?: string): Promise<void> {
    this.logger.log(`shutting down${signal ? ` on ${signal}` : ''}: stopping NBD servers`);
    try {
      await this.manager.shutdown();
    } finally {
      // Records are removed by shutdown(), so the store closes last.
      await this.records.close();
    }
  }
}
