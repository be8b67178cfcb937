import { UnrecoverableError, type Job } from 'bullmq';
import { JobNames, type JobName } from '@sendense/contracts';
import type { JobHandler } from '../common/job-handler';
import { PermanentError } from '../common/errors';
import type { MaintenanceService } from './maintenance.service';

function handler(jobName: JobName, fn: (data: never) => Promise<unknown>): JobHandler {
  return {
    jobName,
    async handle(job: Job) {
      try {
        return await fn(job.data as never);
      } catch (err) {
        if (err instanceof PermanentError) throw new UnrecoverableError(err.message);
        throw err;
      }
    },
  };
}

export function maintenanceHandlers(m: MaintenanceService): JobHandler[] {
  return [
    handler(JobNames.DeleteRestorePoint, (d) => m.delete(d)),
    handler(JobNames.VerifyRestorePoint, (d) => m.verify(d)),
    handler(JobNames.ConsolidateChain, (d) => m.consolidate(d)),
    handler(JobNames.ApplyRetention, (d) => m.retention(d)),
  ];
}
