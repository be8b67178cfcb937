import type { Job } from 'bullmq';
import { JobNames, type RunPolicyJobData } from '@sendense/contracts';
import type { JobHandler } from '../common/job-handler';
import type { AlertsService } from '../alerts/alerts.service';
import type { PolicyRunner } from './policy-runner';

export class RunPolicyHandler implements JobHandler {
  readonly jobName = JobNames.RunPolicy;
  constructor(private readonly runner: PolicyRunner) {}
  handle(job: Job<RunPolicyJobData>) {
    return this.runner.run(job);
  }
}

export class CheckAlertsHandler implements JobHandler {
  readonly jobName = JobNames.CheckAlerts;
  constructor(private readonly alerts: AlertsService) {}
  handle() {
    return this.alerts.check();
  }
}
