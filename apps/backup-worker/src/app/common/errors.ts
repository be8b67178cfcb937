/**
 * A failure that retrying cannot fix (VM gone, repository full, bad
 * configuration). The processor turns it into BullMQ's UnrecoverableError.
 */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** The job was cancelled by an operator. */
export class CancelledError extends Error {
  override name = 'CancelledError';
}
