import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { RestorePointBusy, type BusyHolder } from './errors';
import { readdirSafe } from './fs-util';
import { assertSafeId } from './layout';

/**
 * Cross-process busy markers. The restore service (mounts), the nbd-exporter
 * and backup workers run in other processes, possibly on other hosts sharing
 * the repository, so the registry lives in the repository as lock files:
 *   <root>/.locks/<restorePointId>/<purpose>.<pid>.<token>.lock
 * containing { purpose, pid, hostname, since }.
 * A lock from this host whose pid is dead is stale and is removed; a lock
 * from another host is trusted (we cannot probe its pid).
 *
 * Shared purposes (mount, export, read) may coexist; exclusive ones
 * (write, consolidate, delete) conflict with everything. Acquisition is
 * "create mine, then look for conflicts, back off if any": two racing
 * exclusive lockers may both back off, but never both win.
 */
export type LockPurpose = 'mount' | 'export' | 'read' | 'write' | 'consolidate' | 'delete' | 'verify';

const SHARED: ReadonlySet<LockPurpose> = new Set(['mount', 'export', 'read', 'verify']);

export interface LockHandle {
  readonly restorePointId: string;
  readonly purpose: LockPurpose;
  release(): Promise<void>;
}

export interface BusyRegistry {
  acquire(restorePointId: string, purpose: LockPurpose): Promise<LockHandle>;
  /** Live holders of a restore point (empty = not busy). */
  holders(restorePointId: string): Promise<BusyHolder[]>;
  isBusy(restorePointId: string): Promise<boolean>;
}

export function conflicts(wanted: LockPurpose, held: string): boolean {
  return !(SHARED.has(wanted) && SHARED.has(held as LockPurpose));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class FileLockRegistry implements BusyRegistry {
  private readonly hostname = os.hostname();

  constructor(private readonly lockRoot: string) {}

  private dirOf(id: string): string {
    // Ids may come from API callers: never let one name a path outside .locks.
    assertSafeId('restore point id', id);
    return path.join(this.lockRoot, id);
  }

  async acquire(restorePointId: string, purpose: LockPurpose): Promise<LockHandle> {
    const dir = this.dirOf(restorePointId);
    const name = `${purpose}.${process.pid}.${randomBytes(4).toString('hex')}.lock`;
    const file = path.join(dir, name);
    const holder: BusyHolder = { purpose, pid: process.pid, hostname: this.hostname, since: new Date().toISOString() };
    for (let attempt = 0; ; attempt++) {
      await fsp.mkdir(dir, { recursive: true });
      try {
        await fsp.writeFile(file, JSON.stringify(holder), { flag: 'wx' });
        break;
      } catch (err) {
        // Another holder's release removed the (then empty) directory between our mkdir and write.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
      }
    }
    const others = (await this.liveLocks(restorePointId)).filter((l) => l.file !== file);
    const conflicting = others.filter((l) => conflicts(purpose, l.holder.purpose));
    if (conflicting.length) {
      await fsp.rm(file, { force: true });
      throw new RestorePointBusy(restorePointId, conflicting.map((c) => c.holder), purpose);
    }
    let released = false;
    return {
      restorePointId,
      purpose,
      release: async () => {
        if (released) return;
        released = true;
        await fsp.rm(file, { force: true });
        await fsp.rmdir(dir).catch(() => undefined); // only succeeds when empty
      },
    };
  }

  async holders(restorePointId: string): Promise<BusyHolder[]> {
    return (await this.liveLocks(restorePointId)).map((l) => l.holder);
  }

  async isBusy(restorePointId: string): Promise<boolean> {
    return (await this.holders(restorePointId)).length > 0;
  }

  /** Acquire one lock per id, all or nothing. */
  async acquireAll(ids: readonly string[], purpose: LockPurpose): Promise<LockHandle[]> {
    const got: LockHandle[] = [];
    try {
      for (const id of ids) got.push(await this.acquire(id, purpose));
      return got;
    } catch (err) {
      await releaseAll(got);
      throw err;
    }
  }

  private async liveLocks(id: string): Promise<{ file: string; holder: BusyHolder }[]> {
    const dir = this.dirOf(id);
    const out: { file: string; holder: BusyHolder }[] = [];
    for (const name of await readdirSafe(dir)) {
      if (!name.endsWith('.lock')) continue;
      const file = path.join(dir, name);
      let holder: BusyHolder;
      try {
        holder = JSON.parse(await fsp.readFile(file, 'utf8')) as BusyHolder;
      } catch {
        // Being written right now by its owner, or vanished: treat a file we
        // cannot read yet as a holder rather than ignore a possible lock.
        const m = /^(\w+)\.(\d+)\./.exec(name);
        holder = { purpose: m?.[1] ?? 'unknown', pid: Number(m?.[2] ?? 0), hostname: '?', since: '' };
        if (!(await fsp.stat(file).catch(() => null))) continue;
      }
      if (holder.hostname === this.hostname && !pidAlive(holder.pid)) {
        await fsp.rm(file, { force: true }); // stale: its process died
        continue;
      }
      out.push({ file, holder });
    }
    return out;
  }
}

export async function releaseAll(locks: readonly LockHandle[]): Promise<void> {
  for (const l of [...locks].reverse()) await l.release().catch(() => undefined);
}
