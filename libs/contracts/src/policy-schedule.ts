import { getNextMillis, type Queue } from 'bullmq';
import { DefaultJobOptions, JobIds, JobNames, type RunPolicyJobData } from './queues';

/**
 * A policy's schedule is a BullMQ job scheduler on the `policies` queue, keyed
 * by the policy id. BullMQ keeps one delayed job per scheduler, with an id
 * made of the slot's time (`repeat:policy.<id>:<millis>`), so however many
 * gateways and workers run, a slot is one job and one run. When that job
 * starts, the worker schedules the next slot from the current time: slots
 * missed while every worker was down collapse into the one late job (one
 * catch-up run), never one run per missed slot.
 */

export interface PolicySchedule {
  id: string;
  cron: string;
  timezone: string;
}

/** The next slot after `from` (ms), or an Error naming what is wrong with the expression or zone. */
export function nextSlot(s: Pick<PolicySchedule, 'cron' | 'timezone'>, from = Date.now()): number | Error {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: s.timezone });
  } catch {
    return new Error(`unknown time zone "${s.timezone}"`);
  }
  try {
    const next = getNextMillis(from, { pattern: s.cron, tz: s.timezone });
    return next === undefined ? new Error(`cron expression "${s.cron}" has no next time`) : next;
  } catch (err) {
    return new Error(`cron expression "${s.cron}": ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Create or replace a policy's scheduler. Replacing re-plans the next slot
 * from now, so it is called when a policy is created, changed or resumed,
 * never at every start of a service (that would drop a pending catch-up).
 */
export async function schedulePolicy(queue: Queue, s: PolicySchedule): Promise<void> {
  const data: RunPolicyJobData = { policyId: s.id, trigger: 'schedule', requestedBy: 'scheduler' };
  await queue.upsertJobScheduler(
    JobIds.policyScheduler(s.id),
    { pattern: s.cron, tz: s.timezone },
    { name: JobNames.RunPolicy, data, opts: DefaultJobOptions.RunPolicyJob },
  );
}

/** Stops new runs (a running one goes on). */
export async function unschedulePolicy(queue: Queue, policyId: string): Promise<void> {
  await queue.removeJobScheduler(JobIds.policyScheduler(policyId));
}

/** Whether the policy has a scheduler, and its next slot. */
export async function policySchedulerState(queue: Queue, policyId: string): Promise<{ scheduled: boolean; next: number | null }> {
  const s = await queue.getJobScheduler(JobIds.policyScheduler(policyId));
  return { scheduled: !!s, next: s?.next ?? null };
}
