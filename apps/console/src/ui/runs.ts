import type { Backup, JobState } from '../api/types';

/** A backup run (one job): its restore points, one per disk, grouped by run_id. */
export interface Run {
  runId: string;
  vmContextId: string;
  vmName: string;
  status: JobState;
  types: string[];
  createdAt: string;
  completedAt: string | null;
  bytes: number;
  disks: number;
  errors: string[];
}

export function runsOf(rows: Backup[]): Run[] {
  const by = new Map<string, Backup[]>();
  for (const b of rows) {
    if (!b.run_id) continue;
    const list = by.get(b.run_id) ?? [];
    list.push(b);
    by.set(b.run_id, list);
  }
  const runs: Run[] = [];
  for (const [runId, list] of by) {
    const st = list.map((b) => b.status);
    const status: JobState = st.some((s) => s === 'running')
      ? 'running'
      : st.some((s) => s === 'pending')
        ? 'queued'
        : st.some((s) => s === 'failed')
          ? 'failed'
          : st.some((s) => s === 'cancelled')
            ? 'cancelled'
            : 'completed';
    const done = list
      .map((b) => b.completed_at)
      .filter((d): d is string => !!d)
      .sort();
    const first = list[0];
    if (!first) continue;
    runs.push({
      runId,
      vmContextId: first.vm_context_id,
      vmName: first.vm_name,
      status,
      types: [...new Set(list.map((b) => b.backup_type))],
      createdAt: list.map((b) => b.created_at).sort()[0] ?? first.created_at,
      completedAt: status === 'completed' || status === 'failed' || status === 'cancelled' ? (done[done.length - 1] ?? null) : null,
      bytes: list.reduce((s, b) => s + (b.bytes_transferred || 0), 0),
      disks: list.length,
      errors: [...new Set(list.map((b) => b.error_message).filter((e): e is string => !!e))],
    });
  }
  return runs.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export const ENDED: JobState[] = ['completed', 'failed', 'cancelled'];

/** Runs started from this tab, so a queued run shows before it has restore points (and a disk restore, which makes none, at all). */
const STARTED = 'sendense.startedRuns';
export interface StartedRun {
  runId: string;
  vmName: string;
  at: string;
  /** A disk write-back (POST /api/v1/restore/disk) rather than a backup. */
  kind?: 'backup' | 'restore';
}
export function rememberRun(runId: string, vmName: string, kind: StartedRun['kind'] = 'backup'): void {
  const list = startedRuns().filter((r) => r.runId !== runId);
  list.unshift({ runId, vmName, at: new Date().toISOString(), kind });
  sessionStorage.setItem(STARTED, JSON.stringify(list.slice(0, 50)));
}
export function startedRuns(): StartedRun[] {
  try {
    const v = JSON.parse(sessionStorage.getItem(STARTED) ?? '[]') as unknown;
    return Array.isArray(v) ? (v as StartedRun[]) : [];
  } catch {
    return [];
  }
}

/** The job page of a run (a disk restore's says so: it has no restore points to show). */
export function jobLink(runId: string, kind?: StartedRun['kind']): string {
  return `/jobs/${runId}${kind === 'restore' ? '?kind=restore' : ''}`;
}
