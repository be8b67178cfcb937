import { Logger } from '@nestjs/common';
import type { CbtAuditRequest, CbtAuditResult } from '@sendense/contracts';
import { NbdClient, type Extent } from '@sendense/nbd';

/** CBT's granularity in vSphere (and the stand-in's bitmaps). */
export const DEFAULT_AUDIT_BLOCK = 64 * 1024;
const MAX_REPORTED = 8;
const PARALLEL_READS = 4;

/**
 * Offsets of up to `samples` distinct whole blocks that lie entirely outside
 * the changed extents (sorted). Rejection sampling, so a disk of any size
 * costs only the samples; `random` returns [0, 1).
 */
export function pickUnchangedBlocks(
  changed: readonly Extent[],
  capacityBytes: number,
  samples: number,
  blockSize: number,
  random: () => number = Math.random,
): number[] {
  const blocks = Math.floor(capacityBytes / blockSize);
  // Merged, sorted, non-overlapping: a block touches a change iff the last
  // extent that starts before the block's end reaches past its start.
  const merged: { start: number; end: number }[] = [];
  for (const e of [...changed].filter((x) => x.length > 0).sort((a, b) => a.offset - b.offset)) {
    const last = merged.at(-1);
    if (last && e.offset <= last.end) last.end = Math.max(last.end, e.offset + e.length);
    else merged.push({ start: e.offset, end: e.offset + e.length });
  }
  const touchesChange = (start: number): boolean => {
    let lo = 0;
    let hi = merged.length - 1;
    let found: { start: number; end: number } | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = merged[mid];
      if (m && m.start < start + blockSize) {
        found = m;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found !== undefined && found.end > start;
  };
  const picked = new Set<number>();
  const want = Math.min(samples, blocks);
  for (let tries = 0; picked.size < want && tries < want * 50; tries++) {
    const start = Math.floor(random() * blocks) * blockSize;
    if (!picked.has(start) && !touchesChange(start)) picked.add(start);
  }
  return [...picked].sort((a, b) => a - b);
}

/**
 * Compare sampled unchanged blocks of the snapshot (`source`) with the same
 * blocks of the new restore point (`target`, read through its export: what
 * CBT called unchanged comes from the backing chain). Equal blocks are what
 * a correct CBT and an intact chain give; a difference means the
 * incremental missed a change.
 */
export async function auditUnchangedBlocks(opts: {
  source: NbdClient;
  target: NbdClient;
  changed: readonly Extent[];
  capacityBytes: number;
  request: CbtAuditRequest;
  signal?: AbortSignal;
  random?: () => number;
}): Promise<CbtAuditResult> {
  const started = Date.now();
  const blockSize = opts.request.blockSize && opts.request.blockSize > 0 ? opts.request.blockSize : DEFAULT_AUDIT_BLOCK;
  const offsets = pickUnchangedBlocks(opts.changed, opts.capacityBytes, Math.max(0, Math.floor(opts.request.samples)), blockSize, opts.random);
  const mismatchOffsets: number[] = [];
  let mismatched = 0;
  const queue = [...offsets];
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL_READS, queue.length) }, async () => {
      for (let off = queue.shift(); off !== undefined; off = queue.shift()) {
        opts.signal?.throwIfAborted();
        const [a, b] = await Promise.all([opts.source.read(off, blockSize), opts.target.read(off, blockSize)]);
        if (!a.equals(b)) {
          mismatched++;
          mismatchOffsets.push(off);
        }
      }
    }),
  );
  mismatchOffsets.sort((x, y) => x - y);
  return {
    sampled: offsets.length,
    mismatched,
    mismatchOffsets: mismatchOffsets.slice(0, MAX_REPORTED),
    blockSize,
    bytesRead: offsets.length * blockSize,
    durationMs: Date.now() - started,
  };
}

const logger = new Logger('CbtAudit');

/**
 * The audit of one copied incremental disk, as the copy runs it: a failure
 * to read is logged and gives no result (the backup itself is fine), a
 * mismatch is logged as an error here and reported to the worker, which
 * marks the chain suspect.
 */
export async function runCbtAudit(opts: {
  sourceUri: string;
  target: NbdClient;
  changed: readonly Extent[];
  capacityBytes: number;
  request: CbtAuditRequest;
  signal: AbortSignal;
  where: string;
}): Promise<CbtAuditResult | undefined> {
  let source: NbdClient | undefined;
  try {
    source = await NbdClient.connect({ uri: opts.sourceUri, connections: 1 });
    const result = await auditUnchangedBlocks({ ...opts, source });
    if (result.mismatched > 0) {
      logger.error(
        `${opts.where}: CBT audit: ${result.mismatched} of ${result.sampled} blocks CBT reported unchanged differ between the snapshot and the new restore point ` +
          `(first at offset ${result.mismatchOffsets[0]}): the incremental missed changes; the chain is suspect and the next backup will be full`,
      );
    } else {
      logger.log(`${opts.where}: CBT audit: ${result.sampled} unchanged blocks compared, all equal (${result.durationMs} ms)`);
    }
    return result;
  } catch (err) {
    if (opts.signal.aborted) throw err;
    logger.warn(`${opts.where}: CBT audit could not run: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  } finally {
    await source?.close().catch(() => undefined);
  }
}
