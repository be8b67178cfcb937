import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { API_PREFIX } from '../common/api-paths';
import { Public } from '../auth/roles.decorator';
import { HealthService, type HealthReport } from './health.service';

class DependencyStateDto {
  @ApiProperty({ example: 'database' }) name!: string;
  @ApiProperty() ok!: boolean;
  @ApiProperty({ description: 'A critical dependency down makes the answer 503' }) critical!: boolean;
  @ApiProperty() latencyMs!: number;
  @ApiProperty({ required: false }) detail?: string;
}

class HealthDto {
  @ApiProperty({ enum: ['ok', 'degraded', 'down'] }) status!: string;
  @ApiProperty() checkedAt!: string;
  @ApiProperty({ type: [DependencyStateDto] }) dependencies!: DependencyStateDto[];
}

@ApiTags('health')
@Controller(`${API_PREFIX}/health`)
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  @Public()
  @ApiOperation({ summary: 'State of the database, Redis, the queue and the services (no key needed)' })
  @ApiOkResponse({ type: HealthDto, description: 'Database and Redis reachable' })
  @ApiServiceUnavailableResponse({ type: HealthDto, description: 'The database or Redis is down; the body names which' })
  async get(@Res() res: Response): Promise<void> {
    const report: HealthReport = await this.health.report();
    res.status(report.status === 'down' ? 503 : 200).json(report);
  }
}
