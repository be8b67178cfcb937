import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { processStartTime } from '@sendense/process';
import { RestorePointBusy, type BusyHolder } from './errors';
import { readdirSafe } from './fs-util';
import { assertSafeId } from './layout';

/**
 * Cross-process busy markers. The restore service (mounts), the nbd-exporter
 * and backup workers run in other processes, possibly on other hosts sharing
 * the repository, so the registry lives in the repository as lock files:
 *   <root>/.locks/<restorePointId>/<purpose>.<pid>.<token>.lock
 * containing { purpose, pid, hostname, since, pidStart }.
 * A lock from this host whose process is gone (pid dead, or the pid now
 * belongs to a process started at another time) is stale and is removed when
 * its restore point's locks are read, and by sweep(), which the backup-worker
 * runs over its repositories at start and periodically (a killed run's locks
 * name restore points nobody reads again); a lock from another host is
 * trusted (we cannot probe its pid).
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

/**
 * The lock's process on this host is gone: no such pid, a zombie, or the pid
 * now belongs to another process (its start time differs from the one the
 * lock recorded; pids are reused). Without /proc, kill(pid, 0) decides.
 */
async function holderGone(holder: Pick<BusyHolder, 'pid' | 'pidStart'>): Promise<boolean> {
  if (!Number.isInteger(holder.pid) || holder.pid <= 0) return true;
  const start = await processStartTime(holder.pid);
  if (start === null) return (await processStartTime(process.pid)) === null ? !pidAlive(holder.pid) : true;
  return !!holder.pidStart && start !== holder.pidStart;
}

export interface LockSweep {
  /** Lock files removed: their process on this host is gone. */
  removed: { file: string; purpose: string; pid: number; since: string }[];
  /** Lock files kept (live holders here, or holders on other hosts). */
  kept: number;
}

export class FileLockRegistry implements BusyRegistry {
  private readonly hostname = os.hostname();
  private ownStart: Promise<string | null> | undefined;

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
    this.ownStart ??= processStartTime(process.pid);
    const pidStart = await this.ownStart;
    const holder: BusyHolder = { purpose, pid: process.pid, hostname: this.hostname, since: new Date().toISOString(), ...(pidStart ? { pidStart } : {}) };
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
      throw new RestorePointBusy(
        restorePointId,
        conflicting.map((c) => c.holder),
        purpose,
      );
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

  /**
   * Removes every lock file under the registry whose process on this host is
   * gone (and lock directories left empty), whatever restore point it names:
   * a killed backup's write and disk-writer locks name points that were
   * aborted, so no later acquire() of theirs would ever look at them.
   */
  async sweep(): Promise<LockSweep> {
    const out: LockSweep = { removed: [], kept: 0 };
    for (const id of await readdirSafe(this.lockRoot)) {
      const dir = path.join(this.lockRoot, id);
      const names = await readdirSafe(dir).catch(() => null); // not a directory
      if (!names) continue;
      for (const name of names) {
        if (!name.endsWith('.lock')) continue;
        const file = path.join(dir, name);
        let holder: BusyHolder | null = null;
        try {
          holder = JSON.parse(await fsp.readFile(file, 'utf8')) as BusyHolder;
        } catch {
          // Empty or cut short (its writer died between create and write): the name still says purpose and pid.
          const m = /^(\w+)\.(\d+)\./.exec(name);
          const st = await fsp.stat(file).catch(() => null);
          if (!st) continue;
          // One being written right now is left alone; a minute old, it is not being written.
          if (m && Date.now() - st.mtimeMs > 60_000)
            holder = { purpose: m[1] ?? 'unknown', pid: Number(m[2]), hostname: this.hostname, since: st.mtime.toISOString() };
        }
        if (holder && holder.hostname === this.hostname && (await holderGone(holder))) {
          await fsp.rm(file, { force: true });
          out.removed.push({ file, purpose: holder.purpose, pid: holder.pid, since: holder.since });
        } else {
          out.kept++;
        }
      }
      await fsp.rmdir(dir).catch(() => undefined); // only succeeds when empty
    }
    return out;
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
      if (holder.hostname === this.hostname && (await holderGone(holder))) {
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
