import { BadRequestException, Body, Controller, Delete, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, Res, UseFilters } from '@nestjs/common';
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { ImagesInUseResponse, ListMountsResponse } from '@sendense/contracts';
import { RangeNotSatisfiable } from '../lib/errors';
import type { FileEntry, ListPage } from '../lib/file-browser';
import { contentDisposition, parseRangeHeader } from '../lib/http-range';
import type { MountInfo, MountRequest } from '../lib/mount-manager';
import { RestoreErrorFilter } from './restore-error.filter';
import { RestoreService } from './restore.service';

/**
 * HTTP surface of the restore-service (routes and shapes: the restore-service
 * contract in libs/contracts, client RestoreServiceClient). Deliberately thin: parse and validate
 * the request, call the lib, stream the answer. Paths are mount-relative
 * ("p1/home/alice"); the lib refuses anything that would leave the mount.
 */

function queryString(value: unknown, name: string): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new BadRequestException(`${name} must be given once, as a string`);
  return value;
}

function queryInt(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || !/^\d{1,12}$/.test(value)) throw new BadRequestException(`${name} must be a non-negative integer`);
  return Number(value);
}

export function parseMountBody(body: unknown): MountRequest {
  if (typeof body !== 'object' || body === null) throw new BadRequestException('body must be a JSON object');
  const b = body as Record<string, unknown>;
  const chain = b['chain'];
  if (chain !== undefined && (!Array.isArray(chain) || chain.length === 0 || !chain.every((c) => typeof c === 'string'))) {
    throw new BadRequestException('chain must be a non-empty array of image paths, top first');
  }
  const imagePath = b['imagePath'] ?? (chain as string[] | undefined)?.[0];
  if (typeof imagePath !== 'string' || !imagePath.startsWith('/') || imagePath.includes('\0')) {
    throw new BadRequestException('imagePath (or chain) must give an absolute image path');
  }
  if (b['mountId'] !== undefined && typeof b['mountId'] !== 'string') throw new BadRequestException('mountId must be a string');
  if (b['reuse'] !== undefined && typeof b['reuse'] !== 'boolean') throw new BadRequestException('reuse must be a boolean');
  return {
    imagePath,
    mountId: b['mountId'] as string | undefined,
    reuse: b['reuse'] as boolean | undefined,
    expectedChain: chain as string[] | undefined,
  };
}

async function send(stream: Readable, res: Response, req?: Request): Promise<void> {
  if (req?.method === 'HEAD') {
    // Express routes HEAD to GET; the body would be read in full and dropped.
    stream.destroy();
    res.end();
    return;
  }
  try {
    await pipeline(stream, res);
  } catch {
    // The client went away (or the mount was removed): nothing left to tell it.
    stream.destroy();
  }
}

@Controller('restore')
@UseFilters(RestoreErrorFilter)
export class RestoreController {
  // Explicit token: esbuild-based runners (tsx) emit no decorator metadata.
  constructor(@Inject(RestoreService) private readonly restore: RestoreService) {}

  @Post('mount')
  mount(@Body() body: unknown): Promise<MountInfo> {
    return this.restore.manager.mount(parseMountBody(body));
  }

  @Get()
  list(): ListMountsResponse {
    return { mounts: this.restore.manager.list(), lost: this.restore.manager.lostMounts() };
  }

  /** Images under a mount: the storage layer must not delete or consolidate them. */
  @Get('images-in-use')
  imagesInUse(): ImagesInUseResponse {
    return { images: this.restore.manager.imagesInUse() };
  }

  @Get(':mountId')
  get(@Param('mountId') mountId: string): MountInfo {
    return this.restore.manager.get(mountId);
  }

  @Get(':mountId/files')
  files(@Param('mountId') mountId: string, @Query('path') path: unknown, @Query('offset') offset: unknown, @Query('limit') limit: unknown): Promise<ListPage> {
    return this.restore.browser.list(mountId, queryString(path, 'path'), {
      offset: queryInt(offset, 'offset'),
      limit: queryInt(limit, 'limit'),
    });
  }

  /** One entry (a symlink is described, not followed). */
  @Get(':mountId/stat')
  stat(@Param('mountId') mountId: string, @Query('path') path: unknown): Promise<FileEntry> {
    return this.restore.browser.stat(mountId, queryString(path, 'path'));
  }

  @Get(':mountId/download')
  async download(
    @Param('mountId') mountId: string,
    @Query('path') path: unknown,
    @Headers('range') rangeHeader: string | undefined,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    let partial = false;
    const file = await this.restore.browser.openRead(mountId, queryString(path, 'path'), (size) => {
      const r = parseRangeHeader(rangeHeader, size);
      if (r.kind === 'unsatisfiable') throw new RangeNotSatisfiable(size, String(rangeHeader));
      if (r.kind === 'none') return {};
      partial = true;
      return { start: r.start, end: r.end };
    });
    res.status(partial ? 206 : 200);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(file.length));
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Last-Modified', new Date(file.entry.mtime).toUTCString());
    res.setHeader('Content-Disposition', contentDisposition(file.entry.name));
    if (partial) res.setHeader('Content-Range', `bytes ${file.start}-${file.end}/${file.size}`);
    await send(file.stream, res, req);
  }

  /** A directory as a streamed tar (no Content-Length: it is produced while sent). */
  @Get(':mountId/archive')
  async archive(@Param('mountId') mountId: string, @Query('path') path: unknown, @Res() res: Response): Promise<void> {
    const { stream, fileName } = await this.restore.browser.archive(mountId, queryString(path, 'path'));
    res.status(200);
    res.setHeader('Content-Type', 'application/x-tar');
    res.setHeader('Content-Disposition', contentDisposition(fileName));
    await send(stream, res);
  }

  @Delete(':mountId')
  @HttpCode(204)
  async unmount(@Param('mountId') mountId: string): Promise<void> {
    await this.restore.manager.unmount(mountId);
  }
}
