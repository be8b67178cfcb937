import { Module, type DynamicModule, type OnApplicationShutdown, type OnModuleInit, Inject } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { Redis } from 'ioredis';
import type { GatewaySettings } from '@sendense/config';
import { createPrismaClient, type PrismaClient } from '@sendense/db';
import { PRISMA, REDIS, SETTINGS } from './common/tokens';
import { ApiKeyService } from './auth/api-key.service';
import { ApiKeyGuard } from './auth/api-key.guard';
import { RequestLimiter } from './auth/request-limiter.service';
import { HealthController } from './health/health.controller';
import { HealthService } from './health/health.service';
import { ApiKeysController } from './apikeys/apikeys.controller';
import { QueueRegistry } from './queues/queue-registry.service';
import { VCentersController } from './vcenters/vcenters.controller';
import { VCentersService } from './vcenters/vcenters.service';
import { RepositoriesController } from './repositories/repositories.controller';
import { RepositoriesService } from './repositories/repositories.service';
import { BackupsController, JobsController, RetentionController, VmsController } from './backups/backups.controller';
import { BackupsService } from './backups/backups.service';
import { RestoreController } from './restore/restore.controller';
import { RestoreProxyService } from './restore/restore.service';
import { ConsoleModule } from './console/console.module';

class Lifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}
  onModuleInit(): void {
    // Connected up front; while Redis is away commands fail at once (no offline queue).
    this.redis.connect().catch(() => undefined);
  }
  async onApplicationShutdown(): Promise<void> {
    this.redis.disconnect();
    await this.prisma.$disconnect();
  }
}

@Module({})
export class AppModule {
  static forRoot(settings: GatewaySettings): DynamicModule {
    return {
      module: AppModule,
      imports: [ConsoleModule],
      controllers: [HealthController, ApiKeysController, VCentersController, RepositoriesController, BackupsController, RetentionController, JobsController, VmsController, RestoreController],
      providers: [
        { provide: SETTINGS, useValue: settings },
        { provide: PRISMA, useFactory: () => createPrismaClient(settings.DATABASE_URL) },
        {
          provide: REDIS,
          // Health checks must fail fast, not queue commands while Redis is away.
          useFactory: () =>
            new Redis(settings.REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 1000 }).on(
              'error',
              () => undefined,
            ),
        },
        ApiKeyService,
        RequestLimiter,
        QueueRegistry,
        HealthService,
        VCentersService,
        RepositoriesService,
        BackupsService,
        RestoreProxyService,
        Lifecycle,
        { provide: APP_GUARD, useClass: ApiKeyGuard },
      ],
    };
  }
}
