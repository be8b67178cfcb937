import type { BackupPolicySpec, BackupType, PolicySelector } from '@sendense/contracts';

/** Pure rules of a policy run: which VMs, which type, until when. */

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export interface CandidateVm {
  contextId: string;
  vmName: string;
}

/**
 * The registered VMs the selector covers: listed by name or context id, or
 * matching the name pattern, or in the folder (folderMembers: context ids the
 * caller resolved from vCenter). A VM matched twice is backed up once.
 */
export function selectVms<T extends CandidateVm>(vms: readonly T[], selector: PolicySelector, folderMembers?: ReadonlySet<string>): T[] {
  const names = new Set(selector.vmNames ?? []);
  const pattern = selector.namePattern ? globToRegExp(selector.namePattern) : null;
  return vms.filter(
    (vm) => names.has(vm.vmName) || names.has(vm.contextId) || (pattern?.test(vm.vmName) ?? false) || (folderMembers?.has(vm.contextId) ?? false),
  );
}

/** Listed names that match no registered VM (reported in the run's history, not silently dropped). */
export function unmatchedNames(vms: readonly CandidateVm[], selector: PolicySelector): string[] {
  return (selector.vmNames ?? []).filter((n) => !vms.some((vm) => vm.vmName === n || vm.contextId === n));
}

export interface TypeDecision {
  type: BackupType;
  /** Consolidate the chain after the incremental (a synthetic full). */
  synthesize: boolean;
  reason: string;
}

const DAY_MS = 86_400_000;

/**
 * A full when the VM has none in the repository, when the last full is
 * fullEveryDays old, or after fullAfterIncrementals incrementals; otherwise an
 * incremental. With syntheticFull, a due full becomes an incremental whose
 * chain is then consolidated (the VM is read only for its changes).
 */
export function chooseType(
  policy: Pick<BackupPolicySpec, 'fullEveryDays' | 'fullAfterIncrementals' | 'syntheticFull'>,
  state: { lastFullAt: Date | null; incrementalsSinceFull: number },
  now: Date,
): TypeDecision {
  if (!state.lastFullAt) return { type: 'full', synthesize: false, reason: 'no full in the repository yet' };
  let due: string | null = null;
  const ageDays = (now.getTime() - state.lastFullAt.getTime()) / DAY_MS;
  if (policy.fullEveryDays != null && ageDays >= policy.fullEveryDays)
    due = `last full is ${ageDays.toFixed(1)} days old (full every ${policy.fullEveryDays} days)`;
  else if (policy.fullAfterIncrementals != null && state.incrementalsSinceFull >= policy.fullAfterIncrementals) {
    due = `${state.incrementalsSinceFull} incrementals since the last full (full after ${policy.fullAfterIncrementals})`;
  }
  if (!due) return { type: 'incremental', synthesize: false, reason: `incremental (${state.incrementalsSinceFull} since the last full)` };
  if (policy.syntheticFull) return { type: 'incremental', synthesize: true, reason: `${due}: synthetic full (incremental, then the chain consolidated)` };
  return { type: 'full', synthesize: false, reason: due };
}

/** Local wall-clock hour and minute of an instant in a time zone. */
function localHourMinute(at: Date, timeZone: string): { h: number; m: number; s: number } {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? '0');
  return { h: get('hour'), m: get('minute'), s: get('second') };
}

/**
 * The end of the start window: the first HH:MM (in the policy's zone) at or
 * after the slot, so a 22:00 slot with window 06:00 may start VMs until 06:00
 * the next morning. Null: no window. (Counted in wall-clock minutes: on a
 * night the clocks change the window is an hour longer or shorter.)
 */
export function windowDeadline(slot: Date, windowEnd: string | null, timeZone: string): Date | null {
  if (!windowEnd) return null;
  const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(windowEnd);
  if (!match) throw new Error(`window end "${windowEnd}" is not HH:MM`);
  const end = Number(match[1]) * 60 + Number(match[2]);
  const local = localHourMinute(slot, timeZone);
  const minutes = (end - (local.h * 60 + local.m) + 1440) % 1440;
  // The deadline is the end of the HH:MM minute.
  return new Date(slot.getTime() + (minutes * 60 + 59 - local.s) * 1000);
}
