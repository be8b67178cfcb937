import type { CaptureAgentErrorCode, CaptureAgentErrorPayload } from '@sendense/contracts';
import { NbdConnectionError, NbdError, isRetryable } from '@sendense/nbd';
import { CommandError } from '@sendense/process';
import { InvalidLoginError, NotFoundError, SoapFaultError, TaskFailedError, TaskTimeoutError, TransportError, VSphereError } from '@sendense/vsphere';

/** An error with the code and retry flag the RPC layer passes to the caller unchanged. */
export class CaptureError extends Error {
  constructor(
    readonly code: CaptureAgentErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CaptureError';
  }

  toPayload(): CaptureAgentErrorPayload {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

export const invalidArgument = (message: string) => new CaptureError('INVALID_ARGUMENT', message);
export const notFound = (message: string) => new CaptureError('NOT_FOUND', message);

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Classify any error into a CaptureError. `context` prefixes the message
 * (VM, disk, what was being done) so the worker's log says where it failed.
 */
export function toCaptureError(err: unknown, context?: string): CaptureError {
  const prefix = context ? `${context}: ` : '';
  if (err instanceof CaptureError) {
    return context ? new CaptureError(err.code, prefix + err.message, err.retryable, { cause: err }) : err;
  }
  if (err instanceof Error && err.name === 'AbortError') return new CaptureError('CANCELLED', `${prefix}${err.message}`, false, { cause: err });
  if (err instanceof NbdError) {
    // NbdError messages name server, export and offset already.
    return new CaptureError('COPY_FAILED', prefix + err.message, isRetryable(err) || err instanceof NbdConnectionError, { cause: err });
  }
  if (err instanceof InvalidLoginError) return new CaptureError('VCENTER', `${prefix}vCenter login refused: ${err.message}`, false, { cause: err });
  if (err instanceof NotFoundError) return new CaptureError('NOT_FOUND', prefix + err.message, false, { cause: err });
  if (err instanceof TransportError) return new CaptureError('VCENTER', prefix + err.message, true, { cause: err });
  if (err instanceof TaskTimeoutError) return new CaptureError('VCENTER', prefix + err.message, true, { cause: err });
  if (err instanceof TaskFailedError || err instanceof SoapFaultError || err instanceof VSphereError) {
    return new CaptureError('VCENTER', prefix + err.message, false, { cause: err });
  }
  if (err instanceof CommandError) return new CaptureError('COPY_FAILED', prefix + err.message, false, { cause: err });
  // Socket-level failures outside the NBD client (e.g. the harness API).
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? (err as { cause?: NodeJS.ErrnoException } | undefined)?.cause?.code;
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EPIPE') {
    return new CaptureError('COPY_FAILED', prefix + messageOf(err), true, { cause: err });
  }
  return new CaptureError('INTERNAL', prefix + messageOf(err), false, { cause: err });
}
