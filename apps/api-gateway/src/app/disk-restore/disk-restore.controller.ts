import { BadRequestException, Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadGatewayResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { Expensive, READ_ROLES, RESTORE_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import { requesterOf, type AuthedRequest } from '../auth/api-key.guard';
import { CreateExportDto, ExportDto, RestoreDiskDto, StartedRestoreDto } from './dto/disk-restore.dto';
import { DiskWritebackService } from './disk-writeback.service';
import { DiskRestoreService } from './disk-restore.service';

const EXPORT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Instant access: a restore point's whole disk served over NBD. */
@ApiTags('restore')
@Controller(`${API_PREFIX}/restore/export`)
export class DiskExportController {
  constructor(private readonly disks: DiskRestoreService) {}

  @Post()
  @Roles(...RESTORE_ROLES)
  @Expensive('exporting a restore point')
  @ApiOperation({
    summary: 'Serve a restore point (its whole chain) over NBD for instant access; read-only, or writable through a temporary overlay',
    description:
      'Any NBD client reads the URI. The restore point is held against delete and merge while the export lives; the export ends on DELETE or after idle_timeout_seconds without a client. ' +
      "Listens on the exporter's NBD_LISTEN_ADDRESS (loopback by default); with NBD_RESTORE_TLS=psk only clients holding the key in tls_psk (shown once, here) connect.",
  })
  @ApiCreatedResponse({ type: ExportDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body, or the backup is on another node' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The backup is not completed, or its image is being written' })
  @ApiBadGatewayResponse({ type: ErrorResponseDto, description: 'The nbd-exporter failed (its message says why)' })
  create(@Body() b: CreateExportDto): Promise<ExportDto> {
    return this.disks.createExport({ backupId: b.backup_id, writable: b.writable ?? false, idleTimeoutSeconds: b.idle_timeout_seconds });
  }

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Instant-access exports of this storage node (keys are never listed)' })
  @ApiQuery({ name: 'backup_id', required: false })
  @ApiOkResponse({ type: [ExportDto] })
  list(@Query('backup_id') backupId?: string): Promise<ExportDto[]> {
    return this.disks.listExports(typeof backupId === 'string' && backupId !== '' ? backupId : undefined);
  }

  @Delete(':name')
  @HttpCode(204)
  @Roles(...RESTORE_ROLES)
  @ApiOperation({ summary: "End an instant-access export (its connections close; a writable export's overlay is discarded)" })
  @ApiNoContentResponse({ description: 'Ended' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Not an export name' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such instant-access export' })
  async remove(@Param('name') name: string): Promise<void> {
    if (!EXPORT_NAME_RE.test(name)) throw new BadRequestException(`${JSON.stringify(name)} is not an export name`);
    await this.disks.removeExport(name);
  }
}

/** A restore point written back into a VM's disk through the Capture Agent. */
@ApiTags('restore')
@Controller(`${API_PREFIX}/restore/disk`)
export class DiskWritebackController {
  constructor(private readonly writeback: DiskWritebackService) {}

  @Post()
  @HttpCode(202)
  @Roles(...WRITE_ROLES)
  @Expensive('restoring a disk')
  @ApiOperation({
    summary: 'Write a restore point back into a disk of a powered-off VM: quick rollback (only what changed since it) or a full write',
    description:
      "The target defaults to the restore point's own VM and disk. The VM must be powered off (the run fails with the reason otherwise). " +
      "quick asks vCenter which areas changed since the restore point's changeId and writes only those; when that changeId is no longer valid it writes the whole disk and the run's events say why. " +
      'Follow the run with GET /api/v1/jobs/{run_id}; cancel it with POST /api/v1/jobs/{run_id}/cancel.',
  })
  @ApiAcceptedResponse({ type: StartedRestoreDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body, or the target VM has no such disk' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup or VM' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The backup is not completed, or a restore into that VM is already queued or running' })
  start(@Body() b: RestoreDiskDto, @Req() req: AuthedRequest): Promise<StartedRestoreDto> {
    return this.writeback.start({
      backupId: b.backup_id,
      mode: b.mode ?? 'quick',
      targetVmContextId: b.target_vm_context_id,
      targetDeviceKey: b.target_device_key,
      requestedBy: requesterOf(req),
    });
  }
}
