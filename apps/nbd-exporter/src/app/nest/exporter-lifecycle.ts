import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NbdExportManager } from '../exports/export-manager';
import { EXPORT_MANAGER } from './tokens';

/** Reconcile before serving requests; stop every server on shutdown (SIGTERM via enableShutdownHooks). */
@Injectable()
export class ExporterLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('NbdExporter');

  constructor(@Inject(EXPORT_MANAGER) private readonly manager: NbdExportManager) {}

  async onApplicationBootstrap(): Promise<void> {
    const report = await this.manager.start();
    this.logger.log(`reconciled: ${report.kept.length} export(s) kept, ${report.killedPids.length} orphan server(s) stopped`);
  }

  async onApplicationShutdown(signal?: string): Promise<void> {
    this.logger.log(`shutting down${signal ? ` on ${signal}` : ''}: stopping NBD servers`);
    await this.manager.shutdown();
  }
}
