import type { NbdExporterErrorCode } from '@sendense/contracts';

/** An error with a code the RPC layer passes to the caller unchanged. */
export class ExporterError extends Error {
  constructor(
    readonly code: NbdExporterErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ExporterError';
  }
}

export const invalid = (message: string) => new ExporterError('INVALID_ARGUMENT', message);
export const conflict = (message: string) => new ExporterError('CONFLICT', message);
export const internal = (message: string) => new ExporterError('INTERNAL', message);
