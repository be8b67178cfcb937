import type { CbtAuditRequest, DiskCopyResult } from '@sendense/contracts';
import type { BackupRepository as BackupRepositoryRow } from '@sendense/db';
import { chainSuspicion, suspectMetadata, type LocalFileRepository } from '@sendense/storage';

/**
 * The worker's half of the CBT audit (the Capture Agent compares the blocks:
 * apps/capture-agent/src/app/cbt-audit.ts). Here: how many blocks to ask
 * for, what a mismatch does to the restore point (sidecar + row marked
 * suspect), and that a suspect chain is not built on.
 */

/** Blocks per incremental disk: the repository's `cbtAuditSamples`, else CBT_AUDIT_SAMPLES. */
export function auditRequestFor(repo: Pick<BackupRepositoryRow, 'config'>, defaultSamples: number): CbtAuditRequest | undefined {
  const configured = (repo.config as { cbtAuditSamples?: unknown } | null)?.cbtAuditSamples;
  const samples = typeof configured === 'number' && Number.isInteger(configured) && configured >= 0 ? configured : defaultSamples;
  return samples > 0 ? { samples } : undefined;
}

export interface AuditFindings {
  /** Merged into the sidecar at commit. */
  metadata: Record<string, unknown>;
  /** Set on the backup_jobs row: the chain from this point on is suspect. */
  suspectReason: string | null;
  /** For the job log. */
  message: string | null;
}

export function auditFindings(r: Pick<DiskCopyResult, 'audit'>, disk: string): AuditFindings {
  const a = r.audit;
  if (!a) return { metadata: {}, suspectReason: null, message: null };
  const metadata: Record<string, unknown> = { cbtAudit: a };
  if (a.mismatched === 0) {
    return { metadata, suspectReason: null, message: `${disk}: CBT audit compared ${a.sampled} blocks CBT reported unchanged: all equal (${a.durationMs} ms)` };
  }
  const reason =
    `CBT audit: ${a.mismatched} of ${a.sampled} blocks that CBT reported unchanged differ between the snapshot and this restore point ` +
    `(first at byte ${a.mismatchOffsets[0] ?? '?'}): the incremental missed changes`;
  return {
    metadata: { ...metadata, ...suspectMetadata(reason) },
    suspectReason: reason,
    message: `${disk}: ${reason}; the chain is marked suspect and the next backup of this disk will be full`,
  };
}

/** Why the chain ending at `baseId` must not be built on, or null. */
export async function suspectChainReason(repo: LocalFileRepository, baseId: string): Promise<string | null> {
  const s = chainSuspicion((await repo.chain(baseId)).restorePoints);
  return s ? `the chain is ${s.damaged ? 'damaged' : 'suspect'} since restore point ${s.restorePointId} (${s.mark.reason})` : null;
}
