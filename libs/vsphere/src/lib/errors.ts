/**
 * Typed errors for vSphere SOAP faults and transport failures. Every fault
 * error keeps the fault type (e.g. `FileFault`) and the server's fault text
 * so callers can log what vCenter said, not just what we concluded.
 */

export class VSphereError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VSphereError';
  }
}

/** HTTP, TLS or network failure before a SOAP answer was read. */
export class TransportError extends VSphereError {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}

/** A SOAP fault; subclasses name the faults a backup product acts on. */
export class SoapFaultError extends VSphereError {
  constructor(
    /** vSphere fault type, e.g. `ManagedObjectNotFound`, `FileFault`. */
    readonly faultType: string,
    /** The server's faultstring (its own wording). */
    readonly faultText: string,
    /** The SOAP method that failed. */
    readonly method: string,
    /** The parsed fault detail element (fields of the fault type). */
    readonly detail: Record<string, unknown> = {},
  ) {
    super(`${method}: ${faultType}${faultText ? `: ${faultText}` : ''}`);
    this.name = 'SoapFaultError';
  }
}

/** ManagedObjectNotFound or NotFound, or a lookup that matched nothing. */
export class NotFoundError extends SoapFaultError {
  constructor(faultType: string, faultText: string, method: string, detail?: Record<string, unknown>) {
    super(faultType, faultText, method, detail);
    this.name = 'NotFoundError';
  }
}

export class InvalidLoginError extends SoapFaultError {
  constructor(faultType: string, faultText: string, method: string, detail?: Record<string, unknown>) {
    super(faultType, faultText, method, detail);
    this.name = 'InvalidLoginError';
  }
}

/** The session expired or was terminated (the client re-logs in once). */
export class NotAuthenticatedError extends SoapFaultError {
  constructor(faultType: string, faultText: string, method: string, detail?: Record<string, unknown>) {
    super(faultType, faultText, method, detail);
    this.name = 'NotAuthenticatedError';
  }
}

export class MethodNotFoundError extends SoapFaultError {
  constructor(faultType: string, faultText: string, method: string, detail?: Record<string, unknown>) {
    super(faultType, faultText, method, detail);
    this.name = 'MethodNotFoundError';
  }
}

/**
 * QueryChangedDiskAreas refused the changeId: vCenter reports an unknown
 * or stale changeId, and a CBT reset, as a FileFault on the disk. The only
 * safe reaction is a full backup of the disk.
 */
export class InvalidChangeIdError extends SoapFaultError {
  constructor(faultType: string, faultText: string, method: string, detail?: Record<string, unknown>) {
    super(faultType, faultText, method, detail);
    this.name = 'InvalidChangeIdError';
  }
}

/** A name or UUID matched several VMs (vCenter allows equal names in different folders). */
export class AmbiguousVmError extends VSphereError {
  constructor(
    readonly selector: string,
    readonly matches: readonly string[],
  ) {
    super(`${matches.length} virtual machines ${selector}: ${matches.join(', ')}`);
    this.name = 'AmbiguousVmError';
  }
}

/** A task ended in state `error`; carries the task's fault type and message. */
export class TaskFailedError extends VSphereError {
  constructor(
    readonly task: string,
    readonly faultType: string,
    readonly faultText: string,
  ) {
    super(`task ${task} failed: ${faultType}${faultText ? `: ${faultText}` : ''}`);
    this.name = 'TaskFailedError';
  }
}

export class TaskTimeoutError extends VSphereError {
  constructor(
    readonly task: string,
    readonly timeoutMs: number,
    readonly lastState: string,
  ) {
    super(`task ${task} did not finish within ${timeoutMs} ms (last state: ${lastState})`);
    this.name = 'TaskTimeoutError';
  }
}

type FaultCtor = new (faultType: string, faultText: string, method: string, detail?: Record<string, unknown>) => SoapFaultError;

const BY_FAULT: Record<string, FaultCtor> = {
  ManagedObjectNotFound: NotFoundError,
  NotFound: NotFoundError,
  InvalidLogin: InvalidLoginError,
  NotAuthenticated: NotAuthenticatedError,
  MethodNotFound: MethodNotFoundError,
};

/** Build the typed error for a fault; `overrides` let a call remap types. */
export function faultError(
  faultType: string,
  faultText: string,
  method: string,
  detail: Record<string, unknown> = {},
  overrides: Record<string, FaultCtor> = {},
): SoapFaultError {
  const Ctor = overrides[faultType] ?? BY_FAULT[faultType] ?? SoapFaultError;
  return new Ctor(faultType, faultText, method, detail);
}

export type { FaultCtor };
