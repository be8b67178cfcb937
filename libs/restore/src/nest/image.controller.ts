import { BadRequestException, Controller, Get, Headers, Inject, Query, Req, Res, UseFilters } from '@nestjs/common';
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { RangeNotSatisfiable } from '../lib/errors';
import { contentDisposition, parseRangeHeader } from '../lib/http-range';
import { IMAGE_FORMATS, type ImageFormat } from '../lib/image-download';
import { RestoreErrorFilter } from './restore-error.filter';
import { RestoreService } from './restore.service';

const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function once(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BadRequestException(`${name} must be given once, as a string`);
  return value;
}

/**
 * GET /images/download?imagePath=&format=raw|qcow2|vmdk[&fileName=][&chain=...]
 * (RESTORE_SERVICE_ROUTES.image): a restore point's disk as one
 * self-contained image (ImageDownloader). Raw honours Range; qcow2 and vmdk
 * are converted first, and a client that goes away stops the conversion.
 */
@Controller('images')
@UseFilters(RestoreErrorFilter)
export class ImageController {
  constructor(@Inject(RestoreService) private readonly restore: RestoreService) {}

  @Get('download')
  async download(
    @Query() q: Record<string, unknown>,
    @Headers('range') rangeHeader: string | undefined,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const imagePath = once(q['imagePath'], 'imagePath');
    if (!imagePath || !imagePath.startsWith('/') || imagePath.includes('\0')) throw new BadRequestException('imagePath must be an absolute image path');
    const format = (once(q['format'], 'format') ?? 'raw') as ImageFormat;
    if (!IMAGE_FORMATS.includes(format)) throw new BadRequestException(`format must be one of ${IMAGE_FORMATS.join(', ')}`);
    const fileName = once(q['fileName'], 'fileName');
    if (fileName !== undefined && !FILE_NAME_RE.test(fileName))
      throw new BadRequestException('fileName must be 1-128 letters, digits, dot, dash or underscore');
    const chainRaw = once(q['chain'], 'chain');
    const expectedChain = chainRaw === undefined ? undefined : chainRaw.split('\n').filter(Boolean);

    // The client going away (before or during the answer) stops the conversion and frees the scratch file.
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const image = await this.restore.images.prepare({
      imagePath,
      format,
      expectedChain,
      signal: abort.signal,
      range: (size) => {
        const r = parseRangeHeader(rangeHeader, size);
        if (r.kind === 'unsatisfiable') throw new RangeNotSatisfiable(size, String(rangeHeader));
        return r.kind === 'range' ? { start: r.start, end: r.end } : null;
      },
    });
    res.status(image.partial ? 206 : 200);
    res.setHeader('Content-Type', image.contentType);
    res.setHeader('Content-Length', String(image.length));
    res.setHeader('Accept-Ranges', format === 'raw' ? 'bytes' : 'none');
    res.setHeader('Content-Disposition', contentDisposition(fileName ?? image.fileName));
    if (image.partial) res.setHeader('Content-Range', `bytes ${image.start}-${image.end}/${image.size}`);
    if (req.method === 'HEAD') {
      image.stream.destroy();
      await image.release();
      res.end();
      return;
    }
    try {
      await pipeline(image.stream, res);
    } catch {
      // The client went away mid-stream: nothing left to tell it.
    } finally {
      await image.release();
    }
  }
}
