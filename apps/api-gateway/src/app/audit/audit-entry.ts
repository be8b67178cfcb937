import type { ExecutionContext } from '@nestjs/common';
import type { NewAuditEntry } from '@sendense/db';
import type { Request } from 'express';

/** Methods whose requests the audit log records. */
export const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** "PoliciesController" + "pause" -> "policies.pause". */
export function actionOf(controller: string, handler: string): string {
  const base = controller.replace(/Controller$/, '');
  return `${base.charAt(0).toLowerCase()}${base.slice(1)}.${handler}`;
}

/** What the request acted on: the id in the path, else a name or VM in the body. */
export function targetOf(params: Record<string, unknown>, body: unknown): string | null {
  for (const k of ['id', 'runId', 'mountId', 'backupId']) if (typeof params[k] === 'string') return params[k];
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    for (const k of ['name', 'vm_name', 'vm_context_id', 'backup_id', 'repository']) if (typeof b[k] === 'string') return b[k];
  }
  return null;
}

type AuditedRequest = Request & { principal?: { id: string; name: string; role: string } };

/**
 * Who (key id, name and role, when authenticated), what (controller.handler,
 * method, path), the target and the peer address of a request: the part of
 * an audit entry known before the answer.
 */
export function auditBase(ctx: ExecutionContext, req: AuditedRequest): Omit<NewAuditEntry, 'result' | 'status' | 'error'> {
  return {
    // The request's time, not the write's: entries sort as the requests came.
    at: new Date(),
    keyId: req.principal?.id ?? null,
    keyName: req.principal?.name ?? null,
    role: req.principal?.role ?? null,
    method: req.method,
    path: req.originalUrl.split('?')[0] ?? req.originalUrl,
    action: actionOf(ctx.getClass().name, ctx.getHandler().name),
    target: targetOf((req.params ?? {}) as Record<string, unknown>, req.body),
    // The peer address (the gateway does not trust X-Forwarded-For), as clientAddress() reads it.
    ip: req.socket.remoteAddress ?? req.ip ?? 'unknown',
  };
}
