import { BadRequestException, Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import {
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
import { Expensive, READ_ROLES, RESTORE_ROLES, Roles } from '../auth/roles.decorator';
import { CreateExportDto, ExportDto } from './dto/disk-restore.dto';
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
      'Listens on the exporter\'s NBD_LISTEN_ADDRESS (loopback by default); with NBD_RESTORE_TLS=psk only clients holding the key in tls_psk (shown once, here) connect.',
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
  @ApiOperation({ summary: 'End an instant-access export (its connections close; a writable export\'s overlay is discarded)' })
  @ApiNoContentResponse({ description: 'Ended' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Not an export name' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such instant-access export' })
  async remove(@Param('name') name: string): Promise<void> {
    if (!EXPORT_NAME_RE.test(name)) throw new BadRequestException(`${JSON.stringify(name)} is not an export name`);
    await this.disks.removeExport(name);
  }
}
