import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { ADMIN_ROLES, Expensive, READ_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import { requesterOf, type AuthedRequest } from '../auth/api-key.guard';
import { BackupsService } from './backups.service';
import { BackupDetailDto, BackupListDto, ListBackupsQuery, StartBackupDto, StartedBackupDto, VerificationDto } from './dto/backup.dto';

/**
 * Restore points: start, list, show, delete, verify. The chain routes under
 * /backup/chain belong to the chains module, which is imported before this
 * one so that "chain" is never taken for a backup id.
 */
@ApiTags('backups')
@Controller(`${API_PREFIX}/backup`)
export class BackupsController {
  constructor(private readonly backups: BackupsService) {}

  @Post('start')
  @HttpCode(202)
  @Roles(...WRITE_ROLES)
  @Expensive('starting a backup')
  @ApiOperation({ summary: 'Start a full, incremental or differential backup of a VM' })
  @ApiAcceptedResponse({ type: StartedBackupDto, description: 'Queued; follow it with GET /api/v1/jobs/{run_id}' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM or repository' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'A backup of this VM is already queued or running (its run_id is in the answer)' })
  start(@Body() b: StartBackupDto, @Req() req: AuthedRequest): Promise<StartedBackupDto> {
    return this.backups.start({
      vmContextId: b.vm_context_id,
      vmName: b.vm_name,
      backupType: b.backup_type,
      repository: b.repository,
      requestedBy: requesterOf(req),
    });
  }

  @Get('list')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'List backups (restore points, one per disk), newest first' })
  @ApiOkResponse({ type: BackupListDto, description: '{ total, items }' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM' })
  list(@Query() q: ListBackupsQuery): Promise<BackupListDto> {
    return this.backups.list({ vmContextId: q.vm_context_id, vmName: q.vm_name, status: q.status, limit: q.limit ?? 100, offset: q.offset ?? 0 });
  }

  @Get(':id')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'One backup with its chain and the restore points that depend on it' })
  @ApiOkResponse({ type: BackupDetailDto, description: 'The backup' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  get(@Param('id') id: string): Promise<BackupDetailDto> {
    return this.backups.get(id);
  }

  @Delete(':id')
  @HttpCode(204)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Delete a backup; refused while other restore points depend on it' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'Others depend on it (they are named), it is mounted, or it is still running' })
  remove(@Param('id') id: string, @Req() req: AuthedRequest): Promise<void> {
    return this.backups.remove(id, requesterOf(req));
  }

  @Post(':id/verify')
  @HttpCode(200)
  @Roles(...WRITE_ROLES)
  @ApiOperation({ summary: 'Verify a restore point: qemu-img check and the content checksum taken at backup time' })
  @ApiOkResponse({ type: VerificationDto, description: 'Verification result (ok false names the problems)' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The backup is not completed' })
  verify(@Param('id') id: string, @Req() req: AuthedRequest): Promise<VerificationDto> {
    return this.backups.verify(id, requesterOf(req));
  }
}
