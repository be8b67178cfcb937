import { JobNames } from '@sendense/contracts';
import { assertEveryJobHandled, type JobHandler } from './job-handler';

const h = (jobName: string): JobHandler => ({ jobName, handle: async () => jobName });

describe('boot-time refusal: every job name of libs/contracts has one handler', () => {
  it('accepts the full set', () => {
    expect(() => assertEveryJobHandled(Object.values(JobNames).map(h))).not.toThrow();
  });

  it('names the job names nobody handles', () => {
    const some = [h(JobNames.BackupVm), h(JobNames.DeleteRestorePoint)];
    expect(() => assertEveryJobHandled(some)).toThrow(
      `the worker has no handler for job ${[JobNames.ConsolidateChain, JobNames.ApplyRetention, JobNames.VerifyRestorePoint, JobNames.RestoreDisk, JobNames.RunPolicy, JobNames.CheckAlerts, JobNames.DeliverWebhook].join(', ')} (libs/contracts JobNames); refusing to start`,
    );
  });

  it('refuses two handlers for one name', () => {
    expect(() => assertEveryJobHandled([...Object.values(JobNames).map(h), h(JobNames.BackupVm)])).toThrow(
      `job ${JobNames.BackupVm} has more than one handler`,
    );
  });
});
