import { open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import {
  allocatedQcow2Bytes,
  backupOk,
  backupRun,
  guestDigest,
  leftovers,
  MiB,
  restorePointDigest,
  startFaultBed,
  type FaultBed,
  type JobDoc,
} from '../support/faults';

/**
 * Scenario 1: the repository fills up during a full and during an
 * incremental. The repository is a small tmpfs; when the restore point being
 * written has grown past a few MiB, a filler file takes all but a sliver of
 * what is left, so qemu-nbd's writes fail with ENOSPC mid-copy (the space
 * check before the copy passed). The job must fail with "repository full"
 * and the space it needs, the half-written point must be gone and its space
 * given back, and the next backup must succeed once there is room.
 */

const VM = 'fault-full-vm';
const TMPFS_SOURCE = 'sendense-repo-full';

describe('fault: the repository fills up mid-copy', () => {
  let bed: FaultBed;
  let small: string;
  let filler: string;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 64, content: { type: 'random', percent: 70, seed: 11 } }] }],
    });
    small = join(bed.sys.repoDir, 'small');
    await run('mkdir', ['-p', small], { timeoutMs: 10_000 });
    // The space check keeps 64 MiB + 5 % free; 200 MiB passes it for this 64 MiB disk.
    await run('mount', ['-t', 'tmpfs', '-o', 'size=200m', TMPFS_SOURCE, small], { timeoutMs: 10_000 });
    const res = await bed.sys.call('POST', '/api/v1/repositories', { name: 'small', type: 'local', path: small });
    if (res.status !== 201) throw new Error(`repository small answered ${res.status}: ${JSON.stringify(res.body)}`);
    filler = join(small, 'filler');
  }, 240_000);

  afterAll(async () => {
    if (small) await run('umount', ['-l', small], { timeoutMs: 10_000 }).catch(() => undefined);
    await bed?.stop();
  }, 60_000);

  const free = async () => {
    const s = await statfs(small);
    return s.bavail * s.bsize;
  };

  /** Runs a backup and, once its image under `small` has grown by `trigger` bytes, fills the file system. */
  async function backupIntoFillingRepository(
    type: 'full' | 'incremental',
    trigger: number,
  ): Promise<JobDoc & { runId: string; seconds: number; filledAt: number }> {
    const base = await allocatedQcow2Bytes(small);
    let filledAt = 0;
    let stop = false;
    const filling = (async () => {
      await waitFor(async () => stop || (await allocatedQcow2Bytes(small)) - base >= trigger, {
        timeoutMs: 180_000,
        intervalMs: 5,
        message: 'the restore point to grow',
      });
      if (stop) return;
      // Everything that is left: qemu-nbd's next cluster allocations fail with ENOSPC.
      const fh = await open(filler, 'a');
      try {
        for (const chunk of [MiB, 64 * 1024, 4096]) {
          const buf = Buffer.alloc(chunk, 0xa5);
          for (;;) {
            try {
              await fh.write(buf);
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw err;
            }
          }
        }
      } finally {
        await fh.close();
      }
      filledAt = Date.now();
    })();
    const doc = await backupRun(bed, VM, type, 'small');
    stop = true;
    await filling;
    return { ...doc, filledAt };
  }

  it('a full that runs out of space fails with "repository full" and what it needs; the partial point is gone and its space given back', async () => {
    const freeBefore = await free();
    const t0 = Date.now();
    const doc = await backupIntoFillingRepository('full', 4 * MiB);
    expect(doc.filledAt).toBeGreaterThan(0);
    expect(doc.status).toBe('failed');
    expect(doc.error).toMatch(/repository small is full/);
    expect(doc.error).toMatch(/needs [\d.]+ [KMG]iB/);
    expect(doc.backups.every((b) => b.status === 'failed')).toBe(true);
    expect(doc.events.some((e) => e.level === 'error' && /repository small is full/.test(e.message))).toBe(true);
    // Not retried: a full repository does not empty itself.
    await rm(filler, { force: true });
    // The half-written restore point is gone, and so is its space.
    expect(await allocatedQcow2Bytes(small)).toBe(0);
    expect(Math.abs((await free()) - freeBefore)).toBeLessThan(2 * MiB);
    expect((await leftovers(bed)).filter((l) => !l.startsWith(`mount: ${TMPFS_SOURCE} `))).toEqual([]);
    console.log(`scenario 1 (repository full, full): ${doc.status} after ${((Date.now() - t0) / 1000).toFixed(1)} s; error: ${doc.error}`);
    // With room again, the next backup is a full and reads back as the guest.
    const next = await backupOk(bed, VM, 'incremental', 'small');
    const d0 = next.backups[0]!;
    expect(d0.backup_type).toBe('full');
    expect(d0.fallback_reason).toBeTruthy();
    expect(await restorePointDigest(bed, d0, 'small')).toBe(await guestDigest(bed, VM, 0));
  }, 600_000);

  it('an incremental that runs out of space fails the same way; the full before it still reads back; the next incremental succeeds', async () => {
    const chain = await bed.sys.call<{ chains: { restore_points: { id: string; repository_path: string }[] }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}`);
    const full = chain.body.chains[0]!.restore_points.at(-1)!;
    const fullDigest = await restorePointDigest(bed, full, 'small');
    const key = bed.keys.get(VM)![0]!;
    await bed.standIn.harness!.fill(VM, key, 40, 99);
    const freeBefore = await free();
    const before = await allocatedQcow2Bytes(small);
    const t0 = Date.now();
    const doc = await backupIntoFillingRepository('incremental', 3 * MiB);
    expect(doc.filledAt).toBeGreaterThan(0);
    expect(doc.status).toBe('failed');
    expect(doc.backups[0]).toMatchObject({ backup_type: 'incremental', status: 'failed' });
    expect(doc.error).toMatch(/repository small is full/);
    expect(doc.error).toMatch(/needs [\d.]+ [KMG]iB/);
    await rm(filler, { force: true });
    expect(await allocatedQcow2Bytes(small)).toBe(before);
    expect(Math.abs((await free()) - freeBefore)).toBeLessThan(2 * MiB);
    expect((await leftovers(bed)).filter((l) => !l.startsWith(`mount: ${TMPFS_SOURCE} `))).toEqual([]);
    expect(await restorePointDigest(bed, full, 'small')).toBe(fullDigest);
    console.log(`scenario 1 (repository full, incremental): ${doc.status} after ${((Date.now() - t0) / 1000).toFixed(1)} s; error: ${doc.error}`);
    const next = await backupOk(bed, VM, 'incremental', 'small');
    expect(next.backups[0]).toMatchObject({ backup_type: 'incremental', parent_backup_id: full.id });
    expect(await restorePointDigest(bed, next.backups[0]!, 'small')).toBe(await guestDigest(bed, VM, 0));
  }, 600_000);
});
