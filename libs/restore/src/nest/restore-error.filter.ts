import { ArgumentsHost, Catch, HttpStatus, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { RangeNotSatisfiable, RestoreError } from '../lib/errors';

/** The lib's typed errors as HTTP statuses (PathRejected -> 400 and so on). */
export const STATUS_BY_CODE: Record<string, number> = {
  PATH_REJECTED: HttpStatus.BAD_REQUEST,
  NOT_A_DIRECTORY: HttpStatus.BAD_REQUEST,
  NOT_A_FILE: HttpStatus.BAD_REQUEST,
  NOT_FOUND: HttpStatus.NOT_FOUND,
  MOUNT_NOT_FOUND: HttpStatus.NOT_FOUND,
  MOUNT_GONE: HttpStatus.GONE,
  RANGE_NOT_SATISFIABLE: HttpStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
  MOUNT_FAILED: HttpStatus.UNPROCESSABLE_ENTITY,
  MOUNT_LIMIT: HttpStatus.TOO_MANY_REQUESTS,
  IMAGE_FAILED: HttpStatus.UNPROCESSABLE_ENTITY,
  INSUFFICIENT_SPACE: HttpStatus.INSUFFICIENT_STORAGE,
  // Nobody is left to read it; logged as a client abort.
  DOWNLOAD_ABORTED: 499,
};

@Catch(RestoreError)
export class RestoreErrorFilter implements ExceptionFilter {
  catch(error: RestoreError, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    // Mid-stream failure: the status line is gone, only aborting is honest.
    if (res.headersSent) {
      res.destroy(error);
      return;
    }
    const status = STATUS_BY_CODE[error.code] ?? HttpStatus.INTERNAL_SERVER_ERROR;
    if (error instanceof RangeNotSatisfiable) res.setHeader('Content-Range', `bytes */${error.size}`);
    res.status(status).json({ statusCode: status, error: error.code, message: error.message });
  }
}
