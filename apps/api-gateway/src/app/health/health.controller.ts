import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { API_PREFIX } from '../common/api-paths';
import { Public } from '../auth/roles.decorator';
import { HealthDto } from './dto/health.dto';
import { HealthService, type HealthReport } from './health.service';

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
