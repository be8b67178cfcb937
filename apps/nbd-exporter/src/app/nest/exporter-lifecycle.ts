import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NbdExportManager } from '../exports/export-manager';
import type { OpenedRecordStore } from '../store/record-store-factory';
import type { ExporterConfig } from '../config/exporter-config';
import { serveMetrics, type Registry } from '@sendense/metrics';
import { EXPORT_MANAGER, EXPORTER_CONFIG, METRICS_REGISTRY, RECORD_STORE_HANDLE } from './tokens';

/**
 * Reconcile before serving requests; look for idle instant-access exports,
 * and for exports whose image file is gone, every NBD_IDLE_SWEEP_SECONDS;
 * stop every server on shutdown (SIGTERM via enableShutdownHooks). Metrics
 * on a loopback listener (NBD_EXPORTER_METRICS_PORT) while the exporter runs.
 */
@Injectable()
export class ExporterLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('NbdExporter');
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  private metricsServer: { close(): Promise<void> } | null = null;

  constructor(
    @Inject(EXPORT_MANAGER) private readonly manager: NbdExportManager,
    @Inject(RECORD_STORE_HANDLE) private readonly records: OpenedRecordStore,
    @Inject(EXPORTER_CONFIG) private readonly config: ExporterConfig,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const report = await this.manager.start();
    this.logger.log(`reconciled: ${report.kept.length} export(s) kept, ${report.killedPids.length} orphan server(s) stopped`);
    this.sweeper = setInterval(() => void this.sweep(), this.config.idleSweepMs);
    this.sweeper.unref();
    if (this.config.metricsPort) {
      // Metrics are not worth refusing exports for: a port in use is logged.
      this.metricsServer = await serveMetrics(this.registry, this.config.metricsPort).then(
        (srv) => {
          this.logger.log(`metrics on http://127.0.0.1:${srv.port}/metrics`);
          return srv;
        },
        (err: unknown) => {
          this.logger.error(`metrics listener on 127.0.0.1:${this.config.metricsPort} not started: ${err instanceof Error ? err.message : String(err)}`);
          return null;
        },
      );
    }
  }

  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      await this.manager.sweepIdle();
      await this.manager.closeOrphans();
    } catch (err) {
      this.logger.warn(`sweep: ${(err as Error).message}`);
    } finally {
      this.sweeping = false;
    }
  }

  async onApplicationShutdown(signal?: string): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.metricsServer?.close();
    this.logger.log(`shutting down${signal ? ` on ${signal}` : ''}: stopping NBD servers`);
    try {
      await this.manager.shutdown();
    } finally {
      // Records are removed by shutdown(), so the store closes last.
      await this.records.close();
    }
  }
}
