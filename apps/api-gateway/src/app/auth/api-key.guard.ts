import { CanActivate, ExecutionContext, ForbiddenException, HttpException, Inject, Injectable, Logger, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuditLogRepository, type ApiRole } from '@sendense/db';
import type { Request } from 'express';
import { ApiKeyService, type Principal } from './api-key.service';
import { RequestLimiter } from './request-limiter.service';
import { EXPENSIVE_KEY, PUBLIC_KEY, ROLES_KEY } from './roles.decorator';
import { auditBase, MUTATING } from '../audit/audit-entry';

export type AuthedRequest = Request & { principal?: Principal };

/** The name of the key that made the request, recorded as who asked for a job. */
export function requesterOf(req: AuthedRequest): string {
  return req.principal?.name ?? 'unknown';
}

/** The peer address (the gateway does not trust X-Forwarded-For). */
export function clientAddress(req: Request): string {
  return req.socket.remoteAddress ?? req.ip ?? 'unknown';
}

/**
 * Global guard: every endpoint needs a valid key unless marked @Public(),
 * and a role listed by @Roles(). An endpoint that declares no roles is
 * refused (fail closed), so a forgotten decorator cannot open an endpoint.
 * Basic auth is refused here (only browser pages take it); failed
 * authentications are counted per client address, @Expensive() calls per key.
 * A refused request that could change something (POST, PUT, PATCH, DELETE)
 * is written to the audit log as 'denied' with its status and reason, and
 * who sent it when the key was valid (a 403).
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly log = new Logger('Audit');

  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyService,
    private readonly limiter: RequestLimiter,
    @Inject(AuditLogRepository) private readonly audit: AuditLogRepository,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    try {
      return await this.check(ctx);
    } catch (err) {
      if (err instanceof HttpException && (err.getStatus() === 401 || err.getStatus() === 403)) this.recordDenied(ctx, err);
      throw err;
    }
  }

  /** Never changes the answer: a failed write is logged. */
  private recordDenied(ctx: ExecutionContext, err: HttpException): void {
    if (ctx.getType() !== 'http') return;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    if (!MUTATING.has(req.method)) return;
    const base = auditBase(ctx, req);
    const body = err.getResponse();
    const reason = typeof body === 'object' && body !== null && 'message' in body ? String((body as { message: unknown }).message) : err.message;
    void this.audit
      .append({ ...base, result: 'denied', status: err.getStatus(), error: reason })
      .catch((e: unknown) => this.log.error(`audit entry for the refused ${base.method} ${base.path} (${base.action}) not written: ${String(e)}`));
  }

  private async check(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const ip = clientAddress(req);
    this.limiter.assertNotBlocked(ip);
    const key = ApiKeyService.extractKey(req.headers);
    if (!key) {
      if (ApiKeyService.isBasic(req.headers)) {
        throw new UnauthorizedException(
          'HTTP Basic auth is accepted only by the browser pages (console, /api/docs, /admin/queues); send the key as "Authorization: Bearer <key>" or "X-API-Key: <key>"',
        );
      }
      throw new UnauthorizedException('an API key is required: send "Authorization: Bearer <key>" or "X-API-Key: <key>"');
    }
    const principal = await this.keys.authenticate(key);
    if (!principal) {
      await this.limiter.failed(ip);
      this.limiter.assertNotBlocked(ip);
      throw new UnauthorizedException('the API key is invalid or revoked');
    }
    req.principal = principal;
    const roles = this.reflector.getAllAndOverride<ApiRole[] | undefined>(ROLES_KEY, targets);
    if (!roles || !roles.includes(principal.role)) {
      throw new ForbiddenException(
        roles ? `this endpoint needs one of the roles ${roles.join(', ')}; your key has ${principal.role}` : 'this endpoint declares no roles and is closed',
      );
    }
    const expensive = this.reflector.getAllAndOverride<string | undefined>(EXPENSIVE_KEY, targets);
    if (expensive) await this.limiter.expensive(principal.id, expensive);
    return true;
  }
}
