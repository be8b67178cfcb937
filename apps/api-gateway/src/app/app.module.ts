import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { GatewaySettings } from '@sendense/config';
import { AuthModule } from './auth/auth.module';
import { DbModule } from './core/db.module';
import { QueuesModule } from './core/queues.module';
import { SettingsModule } from './core/settings.module';
import { BackupsModule } from './backups/backups.module';
import { ConsoleModule } from './console/console.module';
import { DiskRestoreModule } from './disk-restore/disk-restore.module';
import { ChainsModule } from './chains/chains.module';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import { KeysModule } from './keys/keys.module';
import { RepositoriesModule } from './repositories/repositories.module';
import { RestoreModule } from './restore/restore.module';
import { RetentionModule } from './retention/retention.module';
import { VCentersModule } from './vcenters/vcenters.module';
import { VmsModule } from './vms/vms.module';
import { PoliciesModule } from './policies/policies.module';
import { WebhooksModule } from './webhooks/webhooks.module';
import { AuditModule } from './audit/audit.module';
import { MetricsModule } from './metrics/metrics.module';
import { ServerErrorFilter } from './common/server-error.filter';

/**
 * The gateway: shared providers (settings, database repositories, Redis and
 * the queues, API key auth) and one module per feature.
 */
@Module({})
export class AppModule {
  static forRoot(settings: GatewaySettings): DynamicModule {
    return {
      module: AppModule,
      // Every 5xx answer is logged with its request and cause (common/server-error.filter.ts).
      providers: [{ provide: APP_FILTER, useClass: ServerErrorFilter }],
      imports: [
        SettingsModule.forRoot(settings),
        DbModule.forRoot(settings.DATABASE_URL),
        QueuesModule,
        AuthModule,
        HealthModule,
        KeysModule,
        VCentersModule,
        VmsModule,
        RepositoriesModule,
        // Before BackupsModule: routes register in module order, and GET /backup/chain must not be taken for GET /backup/:id.
        ChainsModule,
        BackupsModule,
        RetentionModule,
        JobsModule,
        // Before RestoreModule: /restore/export must never be taken for a mount id.
        DiskRestoreModule,
        RestoreModule,
        PoliciesModule,
        WebhooksModule,
        AuditModule,
        MetricsModule,
        ConsoleModule,
      ],
    };
  }
}
