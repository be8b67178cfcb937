/**
 * Extent lists: what to copy. They come from VMware CBT
 * (QueryChangedDiskAreas), from base:allocation of the source, from a qemu
 * dirty bitmap, or cover the whole disk.
 */
import { NbdClient } from './nbd-client';
import { CONTEXT_BASE_ALLOCATION, NBD_STATE_DIRTY, NBD_STATE_HOLE, NBD_STATE_ZERO, dirtyBitmapContext } from './nbd-protocol';

export interface Extent {
  offset: number;
  length: number;
  /**
   * The source is known to read as zero here (base:allocation said so):
   * the copier writes WRITE_ZEROES without reading. Default false.
   */
  zero?: boolean;
}

export interface RangeOptions {
  offset?: number;
  length?: number;
}

/**
 * Run fn with a client that has the meta context. If the client did not
 * negotiate it, open a short-lived extra connection; a server that allows
 * only one client (qemu-nbd without -e) makes that time out, hence the hint.
 */
async function withContext<T>(client: NbdClient, context: string, fn: (c: NbdClient) => Promise<T>): Promise<T> {
  if (client.metaContexts.has(context)) return fn(client);
  const temp = await NbdClient.connect({ ...client.options, connections: 1, metaContexts: [context], connectTimeoutMs: 5000 }).catch((err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`meta context "${context}" was not negotiated; pass metaContexts: ["${context}"] when connecting (${msg})`);
  });
  try {
    return await fn(temp);
  } finally {
    await temp.close();
  }
}

function range(client: NbdClient, opts: RangeOptions): [number, number] {
  const offset = opts.offset ?? 0;
  return [offset, opts.length ?? client.size - offset];
}

/**
 * Extents of the source that hold data, from base:allocation.
 * Allocated regions that read as zero come back with zero: true (the copier
 * writes them as zeroes without reading). Unallocated holes are left out
 * unless includeHoles is set: a fresh target already reads zero there, but a
 * target with a backing file does not, so pass includeHoles for those.
 */
export async function allocatedExtents(client: NbdClient, opts: RangeOptions & { includeHoles?: boolean } = {}): Promise<Extent[]> {
  const [offset, length] = range(client, opts);
  const status = await withContext(client, CONTEXT_BASE_ALLOCATION, (c) => c.blockStatus(offset, length, CONTEXT_BASE_ALLOCATION));
  const out: Extent[] = [];
  for (const e of status) {
    const zero = (e.flags & NBD_STATE_ZERO) !== 0;
    const hole = (e.flags & NBD_STATE_HOLE) !== 0;
    if (hole && zero && !opts.includeHoles) continue;
    pushMerged(out, { offset: e.offset, length: e.length, zero });
  }
  return out;
}

/** Extents marked dirty in the qemu dirty bitmap NAME (context qemu:dirty-bitmap:NAME). */
export async function dirtyExtents(client: NbdClient, bitmapName: string, opts: RangeOptions = {}): Promise<Extent[]> {
  const [offset, length] = range(client, opts);
  const context = dirtyBitmapContext(bitmapName);
  const status = await withContext(client, context, (c) => c.blockStatus(offset, length, context));
  const out: Extent[] = [];
  for (const e of status) if (e.flags & NBD_STATE_DIRTY) pushMerged(out, { offset: e.offset, length: e.length });
  return out;
}

function pushMerged(out: Extent[], e: Extent): void {
  const last = out[out.length - 1];
  if (last && last.offset + last.length === e.offset && !!last.zero === !!e.zero) last.length += e.length;
  else out.push(e);
}

/**
 * Sort, validate and merge an extent list. Overlapping or touching extents
 * merge; where data and known-zero extents overlap the merged extent is
 * read (correct either way).
 */
export function normalizeExtents(extents: readonly Extent[], size: number): Extent[] {
  const sorted = extents
    .filter((e) => e.length > 0)
    .map((e) => {
      if (!Number.isSafeInteger(e.offset) || !Number.isSafeInteger(e.length) || e.offset < 0 || e.length < 0) {
        throw new Error(`invalid extent offset ${e.offset} length ${e.length}`);
      }
      if (e.offset + e.length > size) {
        throw new Error(`extent [${e.offset}, ${e.offset + e.length}) ends beyond the disk size ${size}`);
      }
      return { offset: e.offset, length: e.length, zero: !!e.zero };
    })
    .sort((a, b) => a.offset - b.offset);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    const lastEnd = last ? last.offset + last.length : -1;
    if (last && e.offset < lastEnd) {
      last.length = Math.max(lastEnd, e.offset + e.length) - last.offset;
      last.zero = last.zero && e.zero;
    } else if (last && e.offset === lastEnd && last.zero === e.zero) {
      last.length += e.length;
    } else {
      out.push(e);
    }
  }
  return out;
}

export function totalBytes(extents: readonly Extent[]): number {
  let n = 0;
  for (const e of extents) n += e.length;
  return n;
}
