import { Module, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { GatewayMetrics } from './gateway-metrics.service';
import { HttpMetricsMiddleware } from './http-metrics.middleware';
import { MetricsController } from './metrics.controller';

@Module({ controllers: [MetricsController], providers: [GatewayMetrics, HttpMetricsMiddleware] })
export class MetricsModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(HttpMetricsMiddleware).forRoutes('*');
  }
}
