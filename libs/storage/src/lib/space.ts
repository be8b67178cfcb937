import { promises as fsp } from 'node:fs';
import type { CreateRestorePointRequest } from './repository';

/**
 * Space needed for a restore point before the writer starts. The writer can
 * write at most `expectedBytes` of guest data (CBT changed bytes for an
 * incremental, the disk size for a full); qcow2 adds refcount and L2 tables
 * (8 bytes per 64 KiB cluster each, rounded generously) and we keep a margin
 * so that a repository never runs completely full: other chains, sidecars and
 * consolidation temp files need room too.
 */
export interface SpacePolicy {
  /** Fixed reserve always kept free (default 64 MiB). */
  marginBytes: number;
  /** Extra fraction of the estimate (default 5 %). */
  marginRatio: number;
}

export const DEFAULT_SPACE_POLICY: SpacePolicy = { marginBytes: 64 * 1024 * 1024, marginRatio: 0.05 };

export function estimateRequiredBytes(req: CreateRestorePointRequest, policy: SpacePolicy = DEFAULT_SPACE_POLICY): number {
  const data = Math.min(req.expectedBytes ?? req.virtualSize, req.virtualSize);
  const clusters = Math.ceil(req.virtualSize / 65536);
  const metadata = clusters * 16 + 1024 * 1024;
  return Math.ceil(data + metadata + data * policy.marginRatio + policy.marginBytes);
}

export async function freeBytes(dir: string): Promise<{ total: number; free: number }> {
  const st = await fsp.statfs(dir);
  // bavail, not bfree: what an unprivileged writer (qemu-nbd) can actually use.
  return { total: st.blocks * st.bsize, free: st.bavail * st.bsize };
}
