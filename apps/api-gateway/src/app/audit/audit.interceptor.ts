import { HttpException, Inject, Injectable, Logger, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { catchError, tap, throwError, type Observable } from 'rxjs';
import type { GatewaySettings } from '@sendense/config';
import { AuditLogRepository, type NewAuditEntry } from '@sendense/db';
import { SETTINGS } from '../common/tokens';
import type { AuthedRequest } from '../auth/api-key.guard';
import { auditBase, MUTATING } from './audit-entry';

const DAY_MS = 86_400_000;
const PRUNE_EVERY_MS = 3_600_000;

/**
 * The audit log: every request that can change something (POST, PUT, PATCH,
 * DELETE) that passed authentication and the role check, with who (key id
 * and name), what (controller.handler, method, route), the target, when and
 * the result (status, error message). Refusals (401/403) never reach an
 * interceptor: the ApiKeyGuard records those as 'denied'. Entries older than
 * AUDIT_RETENTION_DAYS are removed (checked at most hourly, on a write).
 * Writing the entry never changes the answer.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  private readonly log = new Logger('Audit');
  private lastPrune = 0;

  constructor(
    @Inject(AuditLogRepository) private readonly audit: AuditLogRepository,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'http') return next.handle();
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    if (!MUTATING.has(req.method)) return next.handle();
    const base = auditBase(ctx, req);
    const record = (e: Pick<NewAuditEntry, 'result' | 'status' | 'error'>) => {
      void this.audit.append({ ...base, ...e }).catch((err: unknown) => this.log.error(`audit entry for ${base.action} not written: ${String(err)}`));
      this.pruneSometimes();
    };
    return next.handle().pipe(
      tap(() => record({ result: 'ok', status: ctx.switchToHttp().getResponse<{ statusCode: number }>().statusCode, error: null })),
      catchError((err: unknown) => {
        const status = err instanceof HttpException ? err.getStatus() : 500;
        const msg = err instanceof HttpException ? JSON.stringify(err.getResponse()) : err instanceof Error ? err.message : String(err);
        record({ result: 'error', status, error: msg });
        return throwError(() => err);
      }),
    );
  }

  private pruneSometimes(): void {
    const now = Date.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    void this.audit.prune(new Date(now - this.settings.AUDIT_RETENTION_DAYS * DAY_MS)).catch(() => undefined);
  }
}
