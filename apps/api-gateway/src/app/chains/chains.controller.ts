import { Body, Controller, Get, HttpCode, Post, Query, Req } from '@nestjs/common';
import { ApiConflictResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiTags, ApiUnprocessableEntityResponse } from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { READ_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import { requesterOf, type AuthedRequest } from '../auth/api-key.guard';
import { ChainsService } from './chains.service';
import { ChainQuery, ConsolidateDto, ConsolidationDto, VmChainsDto } from './dto/chain.dto';

@ApiTags('backups')
@Controller(`${API_PREFIX}/backup/chain`)
export class ChainsController {
  constructor(private readonly chains: ChainsService) {}

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'The backup chain of each disk of a VM: full, then incrementals, with sizes' })
  @ApiOkResponse({ type: VmChainsDto, description: 'Chains per disk' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM' })
  chain(@Query() q: ChainQuery): Promise<VmChainsDto> {
    return this.chains.chain({ vmContextId: q.vm_context_id, vmName: q.vm_name, diskId: q.disk_id });
  }

  @Post('consolidate')
  @HttpCode(200)
  @Roles(...WRITE_ROLES)
  @ApiOperation({ summary: 'Merge the oldest restore points of a disk chain into one (every remaining restore point reads as before)' })
  @ApiOkResponse({ type: ConsolidationDto, description: 'survivorId, removedIds, rebasedIds' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM or chain' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'A restore point involved is mounted or being written' })
  @ApiUnprocessableEntityResponse({ type: ErrorResponseDto, description: 'Nothing to merge, or the merge failed (message says why)' })
  consolidate(@Body() b: ConsolidateDto, @Req() req: AuthedRequest): Promise<ConsolidationDto> {
    return this.chains.consolidate({
      vmContextId: b.vm_context_id,
      vmName: b.vm_name,
      diskId: b.disk_id,
      upToBackupId: b.up_to_backup_id,
      requestedBy: requesterOf(req),
    });
  }
}
