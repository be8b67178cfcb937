import type { RestorePointRecord } from './repository';

/**
 * Write-ahead record of one consolidation in a disk directory
 * (`.consolidation.journal.json`). Phase "building": only a private temp
 * image exists, recovery deletes it (roll back). Phase "built": the merged
 * image is complete, durable and checked; recovery finishes the swap
 * (roll forward). Every roll-forward step is idempotent.
 */
export interface ConsolidationJournal {
  version: 1;
  jobId: string;
  phase: 'building' | 'built';
  pid: number;
  hostname: string;
  startedAt: string;
  survivorId: string;
  survivorOldImage: string;
  newImageName: string;
  tmpName: string;
  newBackingName: string | null;
  removed: { id: string; imageName: string }[];
  children: { id: string; imageName: string }[];
  /** The survivor's sidecar after the merge; set when phase becomes "built". */
  newRecord: RestorePointRecord | null;
}

/** Steps at which tests may kill the process to prove crash safety. */
export type ConsolidationStep =
  | 'journal-written'
  /** Range merges only: the temp copy exists but is not rebased yet (a partial merged image). */
  | 'temp-copied'
  | 'temp-built'
  | 'journal-built'
  | 'renamed'
  | 'child-rebased'
  | 'survivor-sidecar-written'
  | 'old-survivor-removed'
  | 'removed-one'
  | 'done';

/** The steps every consolidation passes (merging into the full). */
export const CONSOLIDATION_STEPS: readonly ConsolidationStep[] = [
  'journal-written',
  'temp-built',
  'journal-built',
  'renamed',
  'child-rebased',
  'survivor-sidecar-written',
  'old-survivor-removed',
  'removed-one',
  'done',
];
