import { ApiError, ApiUnreachableError } from '@sendense/api-client';

/** Exit codes (documented in --help). */
export const EXIT = {
  ok: 0,
  /** unexpected failure inside sendense-ctl */
  internal: 1,
  usage: 2,
  notFound: 3,
  denied: 4,
  unreachable: 5,
  jobFailed: 6,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_HELP = `Exit codes:
  0  success
  2  usage error or refused request (bad option or argument; the gateway refused it as
     it stands, e.g. deleting a restore point others depend on)
  3  not found (VM, backup, job, mount, path)
  4  permission denied or bad API key
  5  the API gateway (or a service behind it) is unreachable
  6  the job ran and failed (its error is printed)`;

/** An error with the exit code it deserves and what to do next. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: ExitCode,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Map anything thrown to a CliError with a next step. */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ApiUnreachableError) {
    return new CliError(
      err.message,
      EXIT.unreachable,
      'check that the gateway runs and that --api-url / SENDENSE_API_URL points at it (sendense-ctl login --api-url URL)',
    );
  }
  if (err instanceof ApiError) {
    const s = err.status;
    if (s === 401)
      return new CliError(
        `the gateway refused the API key: ${err.message}`,
        EXIT.denied,
        'give a valid key with --api-key, SENDENSE_API_KEY or sendense-ctl login',
      );
    if (s === 403) return new CliError(`permission denied: ${err.message}`, EXIT.denied, 'use a key with a role allowed to do this (operator or admin)');
    if (s === 404) return new CliError(err.message, EXIT.notFound, 'check the name or id (sendense-ctl vm list, backup list --vm NAME, job list)');
    if (s === 400 || s === 409 || s === 416 || s === 422) return new CliError(err.message, EXIT.usage, hintFor(s));
    if (s === 502 || s === 503 || s === 504)
      return new CliError(
        `a service behind the gateway is unreachable: ${err.message}`,
        EXIT.unreachable,
        'check the services (sendense-ctl health) and their logs',
      );
    return new CliError(`the gateway answered ${s}: ${err.message}`, EXIT.internal, 'see the gateway log for details');
  }
  const report = 'this is a fault in sendense-ctl or the gateway: run again with the same options; if it repeats, report it with this message';
  if (err instanceof Error) return new CliError(err.message, EXIT.internal, report);
  return new CliError(String(err), EXIT.internal, report);
}

function hintFor(status: number): string {
  if (status === 409) return 'the message says what is in the way; resolve that first';
  if (status === 416) return 'the local partial file is larger than the remote one: extract again without --resume';
  return 'see --help for the expected input';
}
