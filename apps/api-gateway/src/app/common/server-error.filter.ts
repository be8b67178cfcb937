import { ArgumentsHost, Catch, HttpException, HttpStatus, InternalServerErrorException, Logger } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { randomUUID } from 'node:crypto';
import type { Request } from 'express';

/** The message of an error and of each `cause` under it (Prisma and driver errors carry the SQL error there). */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (e instanceof HttpException) parts.push(`${e.getStatus()} ${JSON.stringify(e.getResponse())}`);
    else if (e instanceof Error) parts.push(`${e.name}${'code' in e && e.code ? ` ${String(e.code)}` : ''}: ${e.message}`);
    else parts.push(String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(' <- caused by: ');
}

/**
 * Every answer of 500 or above is logged with the request it answered
 * (method, path, API key) and the error with its causes and stack, and
 * carries an error id that names the log line. Nest logs unknown errors
 * without the request and does not log an HttpException at all, so a 500
 * passed through from the restore-service, or one built by a service, left
 * nothing in the log (issue 14: every mount answered 500 in a CI run and
 * neither service logged why). 4xx answers are the client's and stay quiet.
 */
@Catch()
export class ServerErrorFilter extends BaseExceptionFilter {
  private readonly log = new Logger('ServerError');

  override catch(err: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') {
      super.catch(err, host);
      return;
    }
    const status = err instanceof HttpException ? err.getStatus() : HttpStatus.INTERNAL_SERVER_ERROR;
    if (status < 500) {
      super.catch(err, host);
      return;
    }
    const req = host.switchToHttp().getRequest<Request & { principal?: { name: string; role: string } }>();
    const errorId = randomUUID();
    const who = req.principal ? ` for key ${req.principal.name} (${req.principal.role})` : '';
    const stack = err instanceof Error ? err.stack : undefined;
    this.log.error(`${req.method} ${req.originalUrl ?? req.url}${who} answered ${status} [error ${errorId}]: ${describeError(err)}`, stack);
    if (err instanceof HttpException) {
      super.catch(err, host);
      return;
    }
    // The client learns that it failed and how to find out why, never the internals.
    super.catch(
      new InternalServerErrorException({
        statusCode: HttpStatus.INTERNAL_SERVER_ERROR,
        error: 'Internal Server Error',
        message: `the gateway failed on this request (error ${errorId}); its log has the cause under that id: report it with the log line if it happens again`,
        error_id: errorId,
      }),
      host,
    );
  }
}
