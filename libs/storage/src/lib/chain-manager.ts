import { ChainBroken, RestorePointNotFound, type RestorePointRef } from './errors';
import type { ChainInfo, RestorePointRecord } from './repository';

/**
 * Pure chain arithmetic over sidecar records (no I/O): every disk's restore
 * points form a forest. Incrementals make linear chains; differentials hang
 * directly off a full.
 */

export function indexById(records: readonly RestorePointRecord[]): Map<string, RestorePointRecord> {
  return new Map(records.map((r) => [r.id, r]));
}

export function childrenOf(records: readonly RestorePointRecord[], id: string): RestorePointRecord[] {
  return records.filter((r) => r.parentId === id).sort(byCreated);
}

export function byCreated(a: RestorePointRecord, b: RestorePointRecord): number {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id.localeCompare(b.id);
}

/** Oldest first, ending with `id`. Throws ChainBroken for a missing parent or a cycle. */
export function chainOf(records: readonly RestorePointRecord[], id: string): RestorePointRecord[] {
  const byId = indexById(records);
  const start = byId.get(id);
  if (!start) throw new RestorePointNotFound(id);
  const chain: RestorePointRecord[] = [];
  const seen = new Set<string>();
  let cur: RestorePointRecord | undefined = start;
  while (cur) {
    if (seen.has(cur.id)) throw new ChainBroken(id, 'the chain contains a cycle');
    seen.add(cur.id);
    chain.push(cur);
    if (cur.parentId === null) break;
    const parent = byId.get(cur.parentId);
    if (!parent) throw new ChainBroken(id, `restore point ${cur.parentId} (parent of ${cur.id}) is missing`);
    if (parent.state !== 'committed') throw new ChainBroken(id, `restore point ${cur.parentId} is not committed`);
    cur = parent;
  }
  return chain.reverse();
}

export function chainInfo(chain: RestorePointRecord[]): ChainInfo {
  const last = chain[chain.length - 1];
  return {
    restorePoints: chain,
    totalAllocatedBytes: chain.reduce((s, r) => s + r.allocatedBytes, 0),
    virtualSize: last ? last.virtualSize : 0,
    maxVirtualSize: chain.reduce((m, r) => Math.max(m, r.virtualSize), 0),
  };
}

/** All restore points that read through `id` (children, grandchildren, …). */
export function descendantsOf(records: readonly RestorePointRecord[], id: string): RestorePointRecord[] {
  const out: RestorePointRecord[] = [];
  const queue = [id];
  while (queue.length) {
    const cur = queue.shift() as string;
    for (const c of childrenOf(records, cur)) {
      out.push(c);
      queue.push(c.id);
    }
  }
  return out;
}

export function refOf(r: RestorePointRecord): RestorePointRef {
  return { id: r.id, type: r.type, createdAt: r.createdAt };
}

/** Groups records per VM and disk, the unit within which chains exist. */
export function groupByDisk(records: readonly RestorePointRecord[]): Map<string, RestorePointRecord[]> {
  const out = new Map<string, RestorePointRecord[]>();
  for (const r of records) {
    const k = `${r.vmContextId}/${r.diskIndex}`;
    const list = out.get(k) ?? [];
    list.push(r);
    out.set(k, list);
  }
  for (const l of out.values()) l.sort(byCreated);
  return out;
}
