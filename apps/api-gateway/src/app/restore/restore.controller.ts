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
  ApiProperty,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { IsString, Length } from 'class-validator';
import type { Request, Response } from 'express';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RestoreServiceError, type RestoreServiceClient, type StreamOptions } from '@sendense/contracts';
import { API_PREFIX } from '../common/api-paths';
import { ErrorResponseDto } from '../common/error-responses';
import { Expensive, READ_ROLES, RESTORE_ROLES, Roles, WRITE_ROLES } from '../auth/roles.decorator';
import { RestoreProxyService } from './restore.service';

/** A query value given once, as text (anything else is left out, as before). */
function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

class MountDto {
  @ApiProperty({ description: 'The backup (restore point) to mount; any point of a chain' })
  @IsString()
  @Length(1, 64)
  backup_id!: string;
}

const PASS_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'content-disposition', 'last-modified'];

@ApiTags('restore')
@Controller(`${API_PREFIX}/restore`)
export class RestoreController {
  constructor(private readonly restore: RestoreProxyService) {}

  @Post('mount')
  @Roles(...RESTORE_ROLES)
  @Expensive('mounting a restore point')
  @ApiOperation({ summary: 'Mount a restore point read-only (the whole chain) and its file systems' })
  @ApiCreatedResponse({ description: 'mount_id, mount_path and the partitions found' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body, or the backup is on another node' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such backup' })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The backup is not completed' })
  mount(@Body() b: MountDto) {
    return this.restore.mount(b.backup_id);
  }

  @Get('mounts')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Active mounts' })
  @ApiOkResponse({ description: 'Mounts' })
  list() {
    return this.restore.list();
  }

  @Get(':mountId/files')
  @Roles(...RESTORE_ROLES)
  @ApiOperation({ summary: 'List a directory of a mount (paths are relative to the mount: "p1/etc"); paginated' })
  @ApiQuery({ name: 'path', required: false })
  @ApiQuery({ name: 'offset', required: false })
  @ApiQuery({ name: 'limit', required: false })
  @ApiOkResponse({ description: 'entries (name, type, size, mode, mtime, symlink target), total, offset, limit' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The path leaves the mount (.., absolute, symlink out, NUL) or is not a directory' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such mount or path' })
  async files(@Param('mountId', new ParseUUIDPipe()) mountId: string, @Query() q: Record<string, unknown>) {
    void this.restore.touch(mountId);
    return this.restore.call((rs) => rs.files(mountId, { path: text(q['path']), offset: text(q['offset']), limit: text(q['limit']) }));
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
  download(@Param('mountId', new ParseUUIDPipe()) mountId: string, @Query('path') path: unknown, @Req() req: Request, @Res() res: Response) {
    return this.stream((rs, o) => rs.download(mountId, text(path) ?? '', o), mountId, req, res);
  }

  @Get(':mountId/archive')
  @Roles(...RESTORE_ROLES)
  @ApiOperation({ summary: 'Download a directory as a streamed tar archive' })
  @ApiQuery({ name: 'path', required: true })
  @ApiProduces('application/x-tar')
  @ApiResponse({ status: 200, description: 'tar stream' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The path leaves the mount or is not a directory' })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such mount or directory' })
  archive(@Param('mountId', new ParseUUIDPipe()) mountId: string, @Query('path') path: unknown, @Req() req: Request, @Res() res: Response) {
    return this.stream((rs, o) => rs.archive(mountId, text(path) ?? '', o), mountId, req, res);
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

  /** Stream the restore-service's answer through, with Range and status intact. */
  private async stream(open: (rs: RestoreServiceClient, o: StreamOptions) => Promise<globalThis.Response>, mountId: string, req: Request, res: Response): Promise<void> {
    void this.restore.touch(mountId);
    const ac = new AbortController();
    req.on('close', () => ac.abort());
    let upstream: globalThis.Response;
    try {
      upstream = await open(this.restore.client, { range: typeof req.headers.range === 'string' ? req.headers.range : undefined, signal: ac.signal });
    } catch (err) {
      if (!(err instanceof RestoreServiceError)) throw err;
      res.status(503).json(err.body);
      return;
    }
    res.status(upstream.status);
    for (const h of PASS_HEADERS) {
      const v = upstream.headers.get(h);
      if (v) res.setHeader(h, v);
    }
    if (!upstream.body) {
      res.end();
      return;
    }
    try {
      await pipeline(Readable.fromWeb(upstream.body as import('node:stream/web').ReadableStream), res);
    } catch {
      // client went away; nothing to tell it
    }
  }
}
