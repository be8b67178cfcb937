import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post, Query, Req, Res } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { Expensive, READ_ROLES, RESTORE_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import type { AuthedRequest } from '../auth/api-key.guard';
import { FileListingDto, MountDto, MountInfoDto } from './dto/restore.dto';
import { RestoreProxyService } from './restore.service';

@ApiTags('restore')
@Controller(`${API_PREFIX}/restore`)
export class RestoreController {
  constructor(private readonly restore: RestoreProxyService) {}

  @Post('mount')
  @Roles(...RESTORE_ROLES)
  @Expensive('mounting a restore point')
  @ApiOperation({
    summary: 'Mount a restore point read-only (the whole chain) and its file systems',
    description:
      'A restore point that is mounted already (or being mounted) on its node is shared: the answer is that mount. One API key holds at most RESTORE_MAX_MOUNTS_PER_KEY mounts (429 beyond it; unmount one or let the idle unmount end it).',
  })
  @ApiCreatedResponse({ type: MountInfoDto, description: 'mount_id, mount_path and the partitions found' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body, or the backup is on another node' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The backup is not completed' })
  mount(@Body() b: MountDto, @Req() req: AuthedRequest): Promise<MountInfoDto> {
    return this.restore.mount(b.backup_id, req.principal);
  }

  @Get('mounts')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Active mounts' })
  @ApiOkResponse({ type: [MountInfoDto], description: 'Mounts' })
  list(): Promise<MountInfoDto[]> {
    return this.restore.list();
  }

  @Get(':mountId/files')
  @Roles(...RESTORE_ROLES)
  @ApiOperation({ summary: 'List a directory of a mount (paths are relative to the mount: "p1/etc"); paginated' })
  @ApiQuery({ name: 'path', required: false })
  @ApiQuery({ name: 'offset', required: false })
  @ApiQuery({ name: 'limit', required: false })
  @ApiOkResponse({ type: FileListingDto, description: 'entries (name, type, size, mode, mtime, symlink target), total, offset, limit' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The path leaves the mount (.., absolute, symlink out, NUL) or is not a directory' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such mount or path' })
  files(@Param('mountId', new ParseUUIDPipe()) mountId: string, @Query() q: Record<string, unknown>): Promise<FileListingDto> {
    return this.restore.files(mountId, { path: q['path'], offset: q['offset'], limit: q['limit'] });
  }

  @Get(':mountId/download')
  @Roles(...RESTORE_ROLES)
  @ApiOperation({ summary: 'Download a file (streamed; Range requests give 206)' })
  @ApiQuery({ name: 'path', required: true })
  @ApiProduces('application/octet-stream')
  @ApiResponse({ status: 200, description: 'The file' })
  @ApiResponse({ status: 206, description: 'The requested range' })
  @ApiResponse({ status: 416, description: 'The range lies outside the file', type: ErrorResponseDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The path leaves the mount or is not a regular file' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such mount or file' })
  download(@Param('mountId', new ParseUUIDPipe()) mountId: string, @Query('path') path: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.restore.stream(mountId, 'download', path, req, res);
  }

  @Get(':mountId/archive')
  @Roles(...RESTORE_ROLES)
  @ApiOperation({ summary: 'Download a directory as a streamed tar archive' })
  @ApiQuery({ name: 'path', required: true })
  @ApiProduces('application/x-tar')
  @ApiResponse({ status: 200, description: 'tar stream' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The path leaves the mount or is not a directory' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such mount or directory' })
  archive(@Param('mountId', new ParseUUIDPipe()) mountId: string, @Query('path') path: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.restore.stream(mountId, 'archive', path, req, res);
  }

  @Delete(':mountId')
  @HttpCode(204)
  @Roles(...WRITE_ROLES)
  @ApiOperation({ summary: 'Unmount' })
  @ApiNoContentResponse({ description: 'Unmounted' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such mount' })
  async unmount(@Param('mountId', new ParseUUIDPipe()) mountId: string): Promise<void> {
    await this.restore.unmount(mountId);
  }
}
