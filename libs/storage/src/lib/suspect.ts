import type { RestorePoint } from './repository';

/**
 * A restore point is "suspect" when a check after its backup (the CBT audit)
 * found that it may not hold what the guest held: its sidecar metadata
 * carries `suspect: { reason, at }`, so the mark survives a lost database.
 * Every point built on a suspect one inherits the doubt, so the next backup
 * of that disk must be a full.
 */
export interface SuspectMark {
  reason: string;
  at: string;
}

export const SUSPECT_METADATA_KEY = 'suspect';

/** The sidecar metadata that marks a restore point suspect. */
export function suspectMetadata(reason: string, at = new Date()): Record<string, unknown> {
  return { [SUSPECT_METADATA_KEY]: { reason, at: at.toISOString() } satisfies SuspectMark };
}

export function suspectMarkOf(point: Pick<RestorePoint, 'metadata'>): SuspectMark | null {
  const m = point.metadata?.[SUSPECT_METADATA_KEY] as Partial<SuspectMark> | undefined;
  return m && typeof m.reason === 'string' ? { reason: m.reason, at: typeof m.at === 'string' ? m.at : '' } : null;
}

/**
 * The first point of a chain (oldest first) that must not be built on: one
 * marked suspect, or one whose last verification failed (the chain is
 * damaged). Null when the chain can be trusted.
 */
export function chainSuspicion(points: readonly RestorePoint[]): { restorePointId: string; mark: SuspectMark; damaged: boolean } | null {
  for (const p of points) {
    const mark = suspectMarkOf(p);
    if (mark) return { restorePointId: p.id, mark, damaged: false };
    const v = p.lastVerification;
    if (v && !v.ok) {
      const what = [!v.checkClean && 'qemu-img check found problems', !v.checksumMatches && 'its data no longer matches its checksum', ...v.problems].filter(
        Boolean,
      );
      return { restorePointId: p.id, mark: { reason: `verification of ${p.imageName} failed: ${what.join('; ')}`, at: v.at }, damaged: true };
    }
  }
  return null;
}
