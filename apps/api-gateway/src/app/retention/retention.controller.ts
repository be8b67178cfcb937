import { Body, Controller, Get, HttpCode, Post, Put, Req } from '@nestjs/common';
import { ApiBadRequestResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiTags, ApiUnprocessableEntityResponse } from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, READ_ROLES, Roles } from '../auth/roles.decorator';
import { requesterOf, type AuthedRequest } from '../auth/api-key.guard';
import { ApplyRetentionDto, policyOfApi, RetentionPolicyDto, RetentionPolicyResponseDto, RetentionResultDto } from './dto/retention.dto';
import { RetentionService } from './retention.service';

@ApiTags('retention')
@Controller(`${API_PREFIX}/retention`)
export class RetentionController {
  constructor(private readonly retention: RetentionService) {}

  @Put('policy')
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Set the retention policy of a repository, or of one VM in it (keep-last-N and GFS)' })
  @ApiOkResponse({ type: RetentionPolicyResponseDto, description: 'The policy' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'A policy that keeps nothing, or an invalid body' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such repository or VM' })
  set(@Body() b: RetentionPolicyDto): Promise<RetentionPolicyResponseDto> {
    return this.retention.set({ repository: b.repository, vmContextId: b.vm_context_id, policy: policyOfApi(b) });
  }

  @Get('policy')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'List retention policies' })
  @ApiOkResponse({ type: [RetentionPolicyResponseDto], description: 'Policies' })
  list(): Promise<RetentionPolicyResponseDto[]> {
    return this.retention.list();
  }

  @Post('apply')
  @HttpCode(200)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Apply the retention policy (dry_run lists what would go); pruning merges instead of breaking chains' })
  @ApiOkResponse({ type: RetentionResultDto, description: 'keep, delete, merge, errors' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such repository' })
  @ApiUnprocessableEntityResponse({ type: ErrorResponseDto, description: 'No policy, or it keeps nothing' })
  apply(@Body() b: ApplyRetentionDto, @Req() req: AuthedRequest): Promise<RetentionResultDto> {
    return this.retention.apply({ repository: b.repository, vmContextId: b.vm_context_id, dryRun: b.dry_run ?? true, requestedBy: requesterOf(req) });
  }
}
