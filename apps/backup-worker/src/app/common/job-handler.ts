import type { Job } from 'bullmq';
import { JobNames } from '@sendense/contracts';

/** A processor for one job name; processors are thin and call services. */
export interface JobHandler {
  readonly jobName: string;
  handle(job: Job): Promise<unknown>;
}

/**
 * Refuses to start a worker that would fail jobs it is sent: every job name
 * in libs/contracts needs a handler, and no name may have two.
 */
export function assertEveryJobHandled(handlers: readonly JobHandler[], jobNames: readonly string[] = Object.values(JobNames)): void {
  const names = handlers.map((h) => h.jobName);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length) throw new Error(`job ${twice.join(', ')} has more than one handler`);
  const missing = jobNames.filter((n) => !names.includes(n));
  if (missing.length) throw new Error(`the worker has no handler for job ${missing.join(', ')} (libs/contracts JobNames); refusing to start`);
}
