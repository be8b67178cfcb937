import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Req, Sse, type MessageEvent } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiProperty,
  ApiPropertyOptional,
  ApiResponse,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import { IsBoolean, IsIn, IsOptional, IsString } from 'class-validator';
import { Observable } from 'rxjs';
import type { BackupType } from '@sendense/contracts';
import type { PrismaClient } from '@sendense/db';
import { Inject } from '@nestjs/common';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { PRISMA } from '../common/tokens';
import { ADMIN_ROLES, Expensive, READ_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import { StrictInt } from '../common/validation';
import type { AuthedRequest } from '../auth/api-key.guard';
import { BackupsService } from './backups.service';

const TYPES = ['full', 'incremental', 'differential'] as const;

class VmSelectorDto {
  @ApiPropertyOptional({ example: 'pgtest2' }) @IsOptional() @IsString() vm_name?: string;
  @ApiPropertyOptional({ example: 'ctx-pgtest2-1a2b3c4d' }) @IsOptional() @IsString() vm_context_id?: string;
}

class StartBackupDto extends VmSelectorDto {
  @ApiProperty({ enum: TYPES }) @IsIn(TYPES) backup_type!: BackupType;
  @ApiPropertyOptional({ description: 'Repository id or name (optional when only one exists)', example: 'local' })
  @IsOptional()
  @IsString()
  repository?: string;
}

class ListBackupsQuery extends VmSelectorDto {
  @ApiPropertyOptional({ enum: ['pending', 'running', 'completed', 'failed', 'cancelled'] })
  @IsOptional()
  @IsIn(['pending', 'running', 'completed', 'failed', 'cancelled'])
  status?: string;
  @ApiPropertyOptional({ default: 100 }) @IsOptional() @StrictInt({ min: 1, max: 1000 }) limit?: number;
  @ApiPropertyOptional({ default: 0 }) @IsOptional() @StrictInt() offset?: number;
}

class ChainQuery extends VmSelectorDto {
  @ApiPropertyOptional({ description: 'Only this disk' }) @IsOptional() @StrictInt({ max: 1023 }) disk_id?: number;
}

class ConsolidateDto extends VmSelectorDto {
  @ApiProperty() @StrictInt({ max: 1023 }) disk_id!: number;
  @ApiPropertyOptional({ description: 'Merge the full and everything up to this restore point (default: all but the newest)' })
  @IsOptional()
  @IsString()
  up_to_backup_id?: string;
}

class RetentionPolicyDto {
  @ApiProperty({ description: 'Repository id or name' }) @IsString() repository!: string;
  @ApiPropertyOptional({ description: 'Only this VM (default: the whole repository)' }) @IsOptional() @IsString() vm_context_id?: string;
  @ApiPropertyOptional({ default: 0 }) @IsOptional() @StrictInt({ max: 10000 }) keep_last?: number;
  @ApiPropertyOptional({ default: 0 }) @IsOptional() @StrictInt({ max: 10000 }) daily?: number;
  @ApiPropertyOptional({ default: 0 }) @IsOptional() @StrictInt({ max: 10000 }) weekly?: number;
  @ApiPropertyOptional({ default: 0 }) @IsOptional() @StrictInt({ max: 10000 }) monthly?: number;
}

class ApplyRetentionDto {
  @ApiProperty({ description: 'Repository id or name' }) @IsString() repository!: string;
  @ApiPropertyOptional() @IsOptional() @IsString() vm_context_id?: string;
  @ApiPropertyOptional({ default: true, description: 'Only list what would go' }) @IsOptional() @IsBoolean() dry_run?: boolean;
}

@ApiTags('backups')
@Controller(`${API_PREFIX}/backup`)
export class BackupsController {
  constructor(private readonly backups: BackupsService) {}

  @Post('start')
  @HttpCode(202)
  @Roles(...WRITE_ROLES)
  @Expensive('starting a backup')
  @ApiOperation({ summary: 'Start a full, incremental or differential backup of a VM' })
  @ApiAcceptedResponse({ description: 'Queued; follow it with GET /api/v1/jobs/{run_id}' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM or repository' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'A backup of this VM is already queued or running (its run_id is in the answer)' })
  start(@Body() b: StartBackupDto, @Req() req: AuthedRequest) {
    return this.backups.start({
      vmContextId: b.vm_context_id,
      vmName: b.vm_name,
      backupType: b.backup_type,
      repository: b.repository,
      requestedBy: req.principal?.name ?? 'unknown',
    });
  }

  @Get('list')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'List backups (restore points, one per disk), newest first' })
  @ApiOkResponse({ description: '{ total, items }' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM' })
  list(@Query() q: ListBackupsQuery) {
    return this.backups.list({ vmContextId: q.vm_context_id, vmName: q.vm_name, status: q.status, limit: q.limit ?? 100, offset: q.offset ?? 0 });
  }

  @Get('chain')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'The backup chain of each disk of a VM: full, then incrementals, with sizes' })
  @ApiOkResponse({ description: 'Chains per disk' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM' })
  chain(@Query() q: ChainQuery) {
    return this.backups.chain({ vmContextId: q.vm_context_id, vmName: q.vm_name, diskId: q.disk_id });
  }

  @Post('chain/consolidate')
  @HttpCode(200)
  @Roles(...WRITE_ROLES)
  @ApiOperation({ summary: 'Merge the oldest restore points of a disk chain into one (every remaining restore point reads as before)' })
  @ApiOkResponse({ description: 'survivorId, removedIds, rebasedIds' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such VM or chain' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'A restore point involved is mounted or being written' })
  @ApiUnprocessableEntityResponse({ type: ErrorResponseDto, description: 'Nothing to merge, or the merge failed (message says why)' })
  consolidate(@Body() b: ConsolidateDto, @Req() req: AuthedRequest) {
    return this.backups.consolidate({
      vmContextId: b.vm_context_id,
      vmName: b.vm_name,
      diskId: b.disk_id,
      upToBackupId: b.up_to_backup_id,
      requestedBy: req.principal?.name ?? 'unknown',
    });
  }

  @Get(':id')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'One backup with its chain and the restore points that depend on it' })
  @ApiOkResponse({ description: 'The backup' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  get(@Param('id') id: string) {
    return this.backups.get(id);
  }

  @Delete(':id')
  @HttpCode(204)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Delete a backup; refused while other restore points depend on it' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'Others depend on it (they are named), it is mounted, or it is still running' })
  async remove(@Param('id') id: string, @Req() req: AuthedRequest): Promise<void> {
    await this.backups.remove(id, req.principal?.name ?? 'unknown');
  }

  @Post(':id/verify')
  @HttpCode(200)
  @Roles(...WRITE_ROLES)
  @ApiOperation({ summary: 'Verify a restore point: qemu-img check and the content checksum taken at backup time' })
  @ApiOkResponse({ description: 'Verification result (ok false names the problems)' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The backup is not completed' })
  verify(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.backups.verify(id, req.principal?.name ?? 'unknown');
  }
}

@ApiTags('retention')
@Controller(`${API_PREFIX}/retention`)
export class RetentionController {
  constructor(private readonly backups: BackupsService) {}

  @Put('policy')
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Set the retention policy of a repository, or of one VM in it (keep-last-N and GFS)' })
  @ApiOkResponse({ description: 'The policy' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'A policy that keeps nothing, or an invalid body' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such repository or VM' })
  set(@Body() b: RetentionPolicyDto) {
    return this.backups.setRetention({
      repository: b.repository,
      vmContextId: b.vm_context_id,
      keepLast: b.keep_last ?? 0,
      daily: b.daily ?? 0,
      weekly: b.weekly ?? 0,
      monthly: b.monthly ?? 0,
    });
  }

  @Get('policy')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'List retention policies' })
  @ApiOkResponse({ description: 'Policies' })
  list() {
    return this.backups.listRetention();
  }

  @Post('apply')
  @HttpCode(200)
  @Roles(...ADMIN_ROLES)
  @ApiOperation({ summary: 'Apply the retention policy (dry_run lists what would go); pruning merges instead of breaking chains' })
  @ApiOkResponse({ description: 'keep, delete, merge, errors' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such repository' })
  @ApiUnprocessableEntityResponse({ type: ErrorResponseDto, description: 'No policy, or it keeps nothing' })
  apply(@Body() b: ApplyRetentionDto, @Req() req: AuthedRequest) {
    return this.backups.applyRetention({ repository: b.repository, vmContextId: b.vm_context_id, dryRun: b.dry_run ?? true, requestedBy: req.principal?.name ?? 'unknown' });
  }
}

@ApiTags('jobs')
@Controller(`${API_PREFIX}/jobs`)
export class JobsController {
  constructor(private readonly backups: BackupsService) {}

  @Get(':runId')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Status of a backup job with live progress and its event log' })
  @ApiOkResponse({ description: 'Status' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such job' })
  status(@Param('runId') runId: string) {
    return this.backups.jobStatus(runId);
  }

  @Sse(':runId/progress')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Live progress as server-sent events until the job ends' })
  @ApiProduces('text/event-stream')
  @ApiResponse({ status: 200, description: 'event: progress (JSON status), then event: end' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such job' })
  async progress(@Param('runId') runId: string): Promise<Observable<MessageEvent>> {
    await this.backups.runRef(runId); // 404 before the stream starts
    return new Observable<MessageEvent>((sub) => {
      let stopped = false;
      let last = '';
      const tick = async () => {
        if (stopped) return;
        try {
          const s = await this.backups.jobStatus(runId);
          const body = JSON.stringify({ status: s.status, progress: s.progress, error: s.error });
          if (body !== last) {
            last = body;
            sub.next({ type: 'progress', data: { run_id: runId, status: s.status, progress: s.progress, error: s.error } });
          }
          if (['completed', 'failed', 'cancelled'].includes(s.status)) {
            sub.next({ type: 'end', data: { run_id: runId, status: s.status } });
            sub.complete();
            return;
          }
        } catch (err) {
          sub.error(err);
          return;
        }
        timer = setTimeout(tick, 500);
      };
      let timer = setTimeout(tick, 0);
      return () => {
        stopped = true;
        clearTimeout(timer);
      };
    });
  }

  @Post(':runId/cancel')
  @HttpCode(202)
  @Roles(...WRITE_ROLES)
  @ApiOperation({ summary: 'Cancel a queued or running backup (the snapshot, exports and half restore points are removed)' })
  @ApiAcceptedResponse({ description: 'cancelled (was queued) or cancelling (running)' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such job' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The job has already ended' })
  cancel(@Param('runId') runId: string) {
    return this.backups.cancel(runId);
  }
}

@ApiTags('vms')
@Controller(`${API_PREFIX}/vms`)
export class VmsController {
  constructor(@Inject(PRISMA) private readonly prisma: PrismaClient) {}

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'VMs registered for backup, with their disks' })
  @ApiOkResponse({ description: 'VMs' })
  async list() {
    const vms = await this.prisma.vmContext.findMany({ include: { disks: { orderBy: { diskIndex: 'asc' } } }, orderBy: { vmName: 'asc' } });
    return vms.map((v) => ({
      context_id: v.contextId,
      vm_name: v.vmName,
      vcenter_id: v.vcenterId,
      moref: v.vmMoref,
      instance_uuid: v.instanceUuid,
      cbt_enabled: v.cbtEnabled,
      cbt_state: v.cbtState,
      disks: v.disks.map((d) => ({
        disk_id: d.diskIndex,
        device_key: d.deviceKey,
        label: d.label,
        capacity_bytes: Number(d.capacityBytes),
        last_change_id: d.lastChangeId,
        last_backup_id: d.lastBackupId,
      })),
    }));
  }
}
