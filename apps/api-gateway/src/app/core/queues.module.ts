import { Global, Inject, Module, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { GatewaySettings } from '@sendense/config';
import { REDIS, SETTINGS } from '../common/tokens';
import { QueueRegistry } from '../queues/queue-registry.service';

class RedisLifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}
  onModuleInit(): void {
    // Connected up front; while Redis is away commands fail at once (no offline queue).
    this.redis.connect().catch(() => undefined);
  }
  onApplicationShutdown(): void {
    this.redis.disconnect();
  }
}

/** Redis (run references, cancel requests, health) and the BullMQ producers. */
@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      inject: [SETTINGS],
      // Health checks must fail fast, not queue commands while Redis is away.
      useFactory: (settings: GatewaySettings) =>
        new Redis(settings.REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 1000 }).on(
          'error',
          () => undefined,
        ),
    },
    RedisLifecycle,
    QueueRegistry,
  ],
  exports: [REDIS, QueueRegistry],
})
export class QueuesModule {}
