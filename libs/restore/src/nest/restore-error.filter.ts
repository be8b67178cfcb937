import { ArgumentsHost, Catch, HttpStatus, Logger, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
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
  private readonly log = new Logger('RestoreError');

  catch(error: RestoreError, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const status = STATUS_BY_CODE[error.code] ?? HttpStatus.INTERNAL_SERVER_ERROR;
    // A 5xx is ours, not the caller's: the log says which request and why (the gateway passes the answer on).
    if (status >= 500) {
      const req = host.switchToHttp().getRequest<Request>();
      this.log.error(`${req.method} ${req.originalUrl ?? req.url} answered ${status}: ${error.code}: ${error.message}`, error.stack);
    }
    // Mid-stream failure: the status line is gone, only aborting is honest.
    if (res.headersSent) {
      res.destroy(error);
      return;
    }
    if (error instanceof RangeNotSatisfiable) res.setHeader('Content-Range', `bytes */${error.size}`);
    res.status(status).json({ statusCode: status, error: error.code, message: error.message });
  }
}
