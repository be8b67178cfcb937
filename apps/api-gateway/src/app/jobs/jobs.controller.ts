import { Controller, Get, HttpCode, Param, Post, Query, Sse, type MessageEvent } from '@nestjs/common';
import { ApiAcceptedResponse, ApiConflictResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Observable } from 'rxjs';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { READ_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import { CancelledJobDto, JobListDto, JobStatusDto, ListJobsQuery } from './dto/job.dto';
import { JobsService } from './jobs.service';
import { progressEvents } from './progress-stream';
import { RunListService } from './run-list.service';

@ApiTags('jobs')
@Controller(`${API_PREFIX}/jobs`)
export class JobsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly runList: RunListService,
  ) {}

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({
    summary: 'Backup runs, newest first, filtered by state and VM; paginated with limit and offset',
    description:
      "Runs the queue still holds (queued, waiting to retry, running) come first with the queue's state, then the runs their " +
      'restore points record, with the state their disks say. Page with offset += limit until offset >= total. ' +
      'GET /api/v1/jobs/{run_id} has the full status of one run.',
  })
  @ApiOkResponse({ type: JobListDto, description: '{ total, offset, limit, items }' })
  list(@Query() q: ListJobsQuery): Promise<JobListDto> {
    return this.runList.list({ state: q.state, vm: q.vm, limit: q.limit ?? 50, offset: q.offset ?? 0 });
  }

  @Get(':runId')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Status of a backup job with live progress and its event log' })
  @ApiOkResponse({ type: JobStatusDto, description: 'Status' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such job' })
  status(@Param('runId') runId: string): Promise<JobStatusDto> {
    return this.jobs.status(runId);
  }

  @Sse(':runId/progress')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Live progress as server-sent events until the job ends' })
  @ApiProduces('text/event-stream')
  @ApiResponse({ status: 200, description: 'event: progress (JSON status), then event: end' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such job' })
  async progress(@Param('runId') runId: string): Promise<Observable<MessageEvent>> {
    await this.jobs.runRef(runId); // 404 before the stream starts
    return progressEvents(runId, () => this.jobs.status(runId));
  }

  @Post(':runId/cancel')
  @HttpCode(202)
  @Roles(...WRITE_ROLES)
  @ApiOperation({ summary: 'Cancel a queued or running backup (the snapshot, exports and half restore points are removed)' })
  @ApiAcceptedResponse({ type: CancelledJobDto, description: 'cancelled (was queued) or cancelling (running)' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such job' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The job has already ended' })
  cancel(@Param('runId') runId: string): Promise<CancelledJobDto> {
    return this.jobs.cancel(runId);
  }
}
