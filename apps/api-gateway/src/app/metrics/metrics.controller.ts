import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { READ_ROLES, Roles } from '../auth/roles.decorator';
import { GatewayMetrics } from './gateway-metrics.service';

/** Prometheus scrape endpoint: any API key (Prometheus sends it as `authorization: Bearer <key>`). */
@ApiTags('metrics')
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(GatewayMetrics) private readonly metrics: GatewayMetrics) {}

  @Get()
  @Roles(...READ_ROLES)
  @Header('cache-control', 'no-store')
  @ApiProduces('text/plain')
  @ApiOperation({
    summary:
      'Prometheus metrics of the gateway and of the system as it sees it (text exposition format 0.0.4); the other services serve theirs on loopback (docs/metrics.md)',
  })
  @ApiOkResponse({ description: 'Prometheus text format', schema: { type: 'string' } })
  async scrape(@Res() res: Response): Promise<void> {
    const text = await this.metrics.registry.metrics();
    res.type(this.metrics.registry.contentType).send(text);
  }
}
