import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, READ_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import { requesterOf, type AuthedRequest } from '../auth/api-key.guard';
import { CreatePolicyDto, PolicyDto, PolicyRunPageDto, PolicyRunsQueryDto, PolicyRunStartedDto } from './dto/policy.dto';
import { PoliciesService } from './policies.service';

const ID = { name: 'id', description: 'Policy id or name' };

@ApiTags('policies')
@Controller(`${API_PREFIX}/policies`)
export class PoliciesController {
  constructor(private readonly policies: PoliciesService) {}

  @Post()
  @Roles(...ADMIN_ROLES)
  @ApiOperation({
    summary:
      'Create a backup policy (cron schedule with a time zone, VMs by name or pattern, type rules, retention, start window, concurrency); scheduled at once unless paused',
  })
  @ApiCreatedResponse({ type: PolicyDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid cron expression, time zone, VM selection or retention' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such repository' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'A policy of that name exists' })
  create(@Body() b: CreatePolicyDto): Promise<PolicyDto> {
    return this.policies.create(b);
  }

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'List backup policies with their next slot and last run' })
  @ApiOkResponse({ type: [PolicyDto] })
  list(): Promise<PolicyDto[]> {
    return this.policies.list();
  }

  @Get(':id')
  @Roles(...READ_ROLES)
  @ApiParam(ID)
  @ApiOperation({ summary: 'One backup policy' })
  @ApiOkResponse({ type: PolicyDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  get(@Param('id') id: string): Promise<PolicyDto> {
    return this.policies.get(id);
  }

  @Get(':id/runs')
  @Roles(...READ_ROLES)
  @ApiParam(ID)
  @ApiOperation({ summary: "The policy's history, newest first: each run with its VMs, result, bytes and duration" })
  @ApiOkResponse({ type: PolicyRunPageDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  runs(@Param('id') id: string, @Query() q: PolicyRunsQueryDto): Promise<PolicyRunPageDto> {
    return this.policies.runs(id, { limit: q.limit ?? 20, offset: q.offset ?? 0 });
  }

  @Post(':id/pause')
  @HttpCode(200)
  @Roles(...WRITE_ROLES)
  @ApiParam(ID)
  @ApiOperation({ summary: 'Pause: no new runs (a run already going finishes)' })
  @ApiOkResponse({ type: PolicyDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  pause(@Param('id') id: string): Promise<PolicyDto> {
    return this.policies.pause(id);
  }

  @Post(':id/resume')
  @HttpCode(200)
  @Roles(...WRITE_ROLES)
  @ApiParam(ID)
  @ApiOperation({ summary: 'Resume: scheduled again from now' })
  @ApiOkResponse({ type: PolicyDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  resume(@Param('id') id: string): Promise<PolicyDto> {
    return this.policies.resume(id);
  }

  @Post(':id/run')
  @HttpCode(202)
  @Roles(...WRITE_ROLES)
  @ApiParam(ID)
  @ApiOperation({ summary: 'Run now (as a slot would; its history entry has trigger "manual")' })
  @ApiAcceptedResponse({ type: PolicyRunStartedDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  run(@Param('id') id: string, @Req() req: AuthedRequest): Promise<PolicyRunStartedDto> {
    return this.policies.runNow(id, requesterOf(req));
  }

  @Delete(':id')
  @Roles(...ADMIN_ROLES)
  @ApiParam(ID)
  @ApiOperation({ summary: 'Delete a policy and its history (its restore points stay)' })
  @ApiOkResponse({ description: '{ deleted: id }' })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  delete(@Param('id') id: string): Promise<{ deleted: string }> {
    return this.policies.delete(id);
  }
}
