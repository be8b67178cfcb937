import { byCreated, childrenOf, groupByDisk } from './chain-manager';
import { StorageError } from './errors';
import type { RetentionPolicy } from '@sendense/contracts';
import type { BackupRepository, RestorePointRecord } from './repository';

/** The policy's shape is libs/contracts' (one definition for API, queue, database and planner). */
export type { RetentionPolicy };

/**
 * Retention policies and the pruning plan. A policy says which restore
 * points to keep; everything else goes, but never by breaking a chain:
 *  - a pruned point that nothing kept reads through is deleted (leaves first);
 *  - a run of pruned points that a kept point reads through is merged into
 *    that kept point (consolidation), so it keeps its exact content;
 *  - a pruned point that several kept branches read through (a full under
 *    differentials) cannot be merged into one of them and is kept, with the
 *    reason said.
 * The newest restore point of every disk is always kept.
 */
export interface KeptRestorePoint {
  id: string;
  reasons: string[];
}

export interface RetentionPlan {
  keep: KeptRestorePoint[];
  /** Deleted outright, in this order (leaves first). */
  delete: string[];
  /** Merged away into `toId` (consolidate fromId..toId). */
  merge: { fromId: string; toId: string; removedIds: string[] }[];
}

export interface RetentionResult extends RetentionPlan {
  dryRun: boolean;
  errors: { id: string; code: string; message: string }[];
}

function dayKey(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function isoWeekKey(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const dow = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dow); // Thursday decides the ISO year
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86400000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

function monthKey(d: Date): string {
  return d.toISOString().slice(0, 7);
}

/** Which restore points of one disk a policy keeps, and why. */
export function selectKept(records: readonly RestorePointRecord[], policy: RetentionPolicy): Map<string, string[]> {
  const newestFirst = [...records].sort(byCreated).reverse();
  const kept = new Map<string, string[]>();
  const add = (id: string, why: string) => kept.set(id, [...(kept.get(id) ?? []), why]);
  if (newestFirst[0]) add(newestFirst[0].id, 'newest');
  newestFirst.slice(0, Math.max(0, policy.keepLast ?? 0)).forEach((r, i) => add(r.id, `last ${i + 1}`));
  const bucket = (n: number | undefined, key: (d: Date) => string, label: string) => {
    if (!n || n <= 0) return;
    const seen = new Set<string>();
    for (const r of newestFirst) {
      const k = key(new Date(r.createdAt));
      if (seen.has(k)) continue;
      if (seen.size >= n) break;
      seen.add(k);
      add(r.id, `${label} ${k}`);
    }
  };
  bucket(policy.daily, dayKey, 'daily');
  bucket(policy.weekly, isoWeekKey, 'weekly');
  bucket(policy.monthly, monthKey, 'monthly');
  return kept;
}

/** Plan for one disk's committed restore points. */
export function planDisk(records: readonly RestorePointRecord[], policy: RetentionPolicy): RetentionPlan {
  const kept = selectKept(records, policy);
  const keptBelow = new Map<string, boolean>();
  // Bottom-up: does anything kept read through this point?
  const hasKeptBelow = (id: string): boolean => {
    const cached = keptBelow.get(id);
    if (cached !== undefined) return cached;
    const v = childrenOf(records, id).some((c) => kept.has(c.id) || hasKeptBelow(c.id));
    keptBelow.set(id, v);
    return v;
  };
  // A pruned point that several kept branches need cannot be merged away.
  let changed = true;
  while (changed) {
    changed = false;
    for (const r of records) {
      if (kept.has(r.id)) continue;
      const branches = childrenOf(records, r.id).filter((c) => kept.has(c.id) || hasKeptBelow(c.id));
      if (branches.length > 1) {
        kept.set(r.id, ['base of several kept restore points (differentials)']);
        keptBelow.clear();
        changed = true;
      }
    }
  }

  const plan: RetentionPlan = { keep: [], delete: [], merge: [] };
  for (const [id, reasons] of kept) plan.keep.push({ id, reasons });
  const byId = new Map(records.map((r) => [r.id, r]));
  const deletions: RestorePointRecord[] = [];
  for (const r of records) {
    if (kept.has(r.id)) continue;
    if (!hasKeptBelow(r.id)) deletions.push(r);
  }
  // Leaves first: deeper (later-created descendants) before their parents.
  const depth = (r: RestorePointRecord): number => (r.parentId && byId.get(r.parentId) ? 1 + depth(byId.get(r.parentId) as RestorePointRecord) : 0);
  plan.delete = deletions.sort((a, b) => depth(b) - depth(a) || byCreated(b, a)).map((r) => r.id);

  // Runs of pruned points above a kept point: merge each run into it.
  for (const r of [...records].sort(byCreated)) {
    if (!kept.has(r.id) || !r.parentId) continue;
    const run: string[] = [];
    let p = byId.get(r.parentId);
    while (p && !kept.has(p.id)) {
      run.unshift(p.id);
      p = p.parentId ? byId.get(p.parentId) : undefined;
    }
    if (run.length) plan.merge.push({ fromId: run[0], toId: r.id, removedIds: run });
  }
  return plan;
}

export function planRetention(records: readonly RestorePointRecord[], policy: RetentionPolicy): RetentionPlan {
  const plan: RetentionPlan = { keep: [], delete: [], merge: [] };
  for (const group of groupByDisk(records.filter((r) => r.state === 'committed')).values()) {
    const p = planDisk(group, policy);
    plan.keep.push(...p.keep);
    plan.delete.push(...p.delete);
    plan.merge.push(...p.merge);
  }
  return plan;
}

/**
 * Apply a policy to one VM (or the whole repository). Deletions run before
 * merges so that the pruned side branches are gone when a run is merged.
 * Errors (a busy restore point, say) are collected; the rest proceeds.
 */
export async function applyRetention(
  repo: BackupRepository,
  policy: RetentionPolicy,
  opts: { vmContextId?: string; dryRun?: boolean } = {},
): Promise<RetentionResult> {
  const records = await repo.list({ vmContextId: opts.vmContextId });
  const plan = planRetention(records, policy);
  const result: RetentionResult = { ...plan, dryRun: !!opts.dryRun, errors: [] };
  if (opts.dryRun) return result;
  const fail = (id: string, err: unknown) => {
    if (!(err instanceof StorageError)) throw err;
    result.errors.push({ id, code: err.code, message: err.message });
  };
  for (const id of plan.delete) {
    try {
      await repo.delete(id);
    } catch (err) {
      fail(id, err);
    }
  }
  for (const m of plan.merge) {
    try {
      await repo.consolidate({ fromId: m.fromId, toId: m.toId });
    } catch (err) {
      fail(m.toId, err);
    }
  }
  return result;
}
