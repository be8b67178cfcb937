import { Controller, Get, Param, Query, Req, Res } from '@nestjs/common';
import { ApiBadRequestResponse, ApiConflictResponse, ApiNotFoundResponse, ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { Expensive, RESTORE_ROLES, Roles } from '../auth/roles.decorator';
import { ImageQuery } from './dto/disk-restore.dto';
import { DiskRestoreService } from './disk-restore.service';

/** GET /backup/{id}/image: a restore point's disk as one self-contained image file. */
@ApiTags('restore')
@Controller(`${API_PREFIX}/backup`)
export class DiskImageController {
  constructor(private readonly disks: DiskRestoreService) {}

  @Get(':id/image')
  @Roles(...RESTORE_ROLES)
  @Expensive('downloading a disk image')
  @ApiOperation({
    summary: "Download the restore point's whole disk as one image: raw (Range gives 206), qcow2 or streamOptimized vmdk, without a backing chain",
    description:
      'qcow2 and vmdk are converted by the restore-service into scratch space first (checked before it starts: 507 when short; freed afterwards), so the answer starts after the conversion; ' +
      'a client that goes away stops it.',
  })
  @ApiProduces('application/octet-stream', 'application/x-qemu-disk', 'application/x-vmdk')
  @ApiResponse({ status: 200, description: 'The image' })
  @ApiResponse({ status: 206, description: 'Part of the raw image (Range)' })
  @ApiResponse({ status: 416, type: ErrorResponseDto, description: 'Range not satisfiable' })
  @ApiResponse({ status: 507, type: ErrorResponseDto, description: 'Not enough scratch space for the conversion' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Unknown format, or the backup is on another node' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The backup is not completed' })
  async image(@Param('id') id: string, @Query() q: ImageQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.disks.streamImage(id, q.format ?? 'raw', req, res);
  }
}
