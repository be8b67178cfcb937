import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@sendense/process';
import { backupOk, guestDigest, leftovers, restorePointDigest, startFaultBed, type BackupRow, type FaultBed } from '../support/faults';

/**
 * Scenario 6: a QCOW2 image in the chain is corrupted, bytes flipped in a
 * data cluster and, separately, in its metadata (an L2 table). Verification
 * finds it and names it; mounting is refused with a clear message; the chain
 * is damaged, so the next backup is a full that says why.
 */

const DATA_VM = 'fault-corrupt-data-vm';
const META_VM = 'fault-corrupt-meta-vm';
const disk = (seed: number) => ({
  sizeMiB: 48,
  content: { type: 'filesystem' as const, filesystem: 'ext4' as const, partitionTable: 'gpt' as const, files: { '/etc/hostname': 'c\n' }, seed },
});

interface Verification {
  restorePointId: string;
  ok: boolean;
  checkClean: boolean;
  checksumMatches: boolean;
  problems: string[];
}

describe('fault: a corrupt QCOW2 image in the chain', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [
        { name: DATA_VM, changeTrackingEnabled: true, disks: [disk(1)] },
        { name: META_VM, changeTrackingEnabled: true, disks: [disk(2)] },
      ],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  const file = (b: BackupRow) => join(bed.sys.repoDir, 'local', b.repository_path);

  /** Full, then an incremental with a new file; returns both rows. */
  async function chainOfTwo(vm: string): Promise<{ full: BackupRow; incr: BackupRow; fullDigest: string }> {
    const full = (await backupOk(bed, vm, 'full')).backups[0]!;
    const fullDigest = await restorePointDigest(bed, full);
    const key = bed.keys.get(vm)![0]!;
    await bed.standIn.harness!.writeFile(vm, key, '/data/new.bin', randomBytes(256 * 1024));
    await bed.standIn.harness!.assertGuestFsClean(vm, key);
    const incr = (await backupOk(bed, vm, 'incremental')).backups[0]!;
    expect(incr.backup_type).toBe('incremental');
    return { full, incr, fullDigest };
  }

  async function flip(path: string, offset: number, bytes: Buffer): Promise<void> {
    const fh = await open(path, 'r+');
    try {
      await fh.write(bytes, 0, bytes.length, offset);
    } finally {
      await fh.close();
    }
  }

  /** What must hold once the damage is found, for either kind of corruption. */
  async function afterDamageFound(vm: string, full: BackupRow, incr: BackupRow, fullDigest: string, v: Verification): Promise<void> {
    expect(v.ok).toBe(false);
    expect(v.restorePointId).toBe(incr.id);
    const row = await bed.sys.call<BackupRow & { verify_status: string }>('GET', `/api/v1/backup/${incr.id}`);
    expect(row.body.verify_status).toBe('failed');
    // Mounting the damaged point (or anything built on it) is refused, and says why.
    const m = await bed.sys.call<{ message: string }>('POST', '/api/v1/restore/mount', { backup_id: incr.id });
    expect(m.status).toBe(409);
    expect(m.body.message).toContain(`restore point ${incr.id}`);
    expect(m.body.message).toContain(incr.repository_path);
    expect(m.body.message).toMatch(/failed verification.*refused/);
    // The full before it is untouched and still reads back exactly.
    expect(await restorePointDigest(bed, full)).toBe(fullDigest);
    // The next backup does not build on the damaged point: a full that says why.
    const next = (await backupOk(bed, vm, 'incremental')).backups[0]!;
    expect(next).toMatchObject({ backup_type: 'full', requested_type: 'incremental', parent_backup_id: null });
    expect(next.fallback_reason).toMatch(new RegExp(`chain is damaged since restore point ${incr.id} \\(verification of .*\\.qcow2 failed`));
    expect(await restorePointDigest(bed, next)).toBe(await guestDigest(bed, vm, 0));
    expect(await leftovers(bed)).toEqual([]);
  }

  it('bytes flipped in a data cluster: the checksum no longer matches', async () => {
    const { full, incr, fullDigest } = await chainOfTwo(DATA_VM);
    const map = JSON.parse((await run('qemu-img', ['map', '-U', '--output=json', file(incr)])).stdout) as {
      depth: number;
      data: boolean;
      offset?: number;
      length: number;
    }[];
    const own = map.find((e) => e.depth === 0 && e.data && e.offset !== undefined && e.length >= 4096)!;
    expect(own).toBeDefined();
    await flip(file(incr), own.offset! + 100, randomBytes(64));
    const v = await bed.sys.call<Verification>('POST', `/api/v1/backup/${incr.id}/verify`);
    expect(v.status).toBe(200);
    expect(v.body).toMatchObject({ ok: false, checksumMatches: false });
    await afterDamageFound(DATA_VM, full, incr, fullDigest, v.body);
  }, 300_000);

  it('bytes flipped in its metadata (an L2 table): qemu-img check fails', async () => {
    const { full, incr, fullDigest } = await chainOfTwo(META_VM);
    const fh = await open(file(incr), 'r');
    const header = Buffer.alloc(48);
    await fh.read(header, 0, 48, 0);
    const l1 = Buffer.alloc(8 * 64);
    await fh.read(l1, 0, l1.length, Number(header.readBigUInt64BE(40)));
    await fh.close();
    const l2Offset = [...Array(64).keys()].map((i) => Number(l1.readBigUInt64BE(i * 8) & 0x00fffffffffffe00n)).find((o) => o > 0)!;
    expect(l2Offset).toBeGreaterThan(0);
    // L2 entries that point at unaligned host offsets: the image's map is corrupt.
    const bad = Buffer.alloc(64);
    for (let i = 0; i < 8; i++) bad.writeBigUInt64BE(0x8000000000000000n | BigInt(0x12345 + i), i * 8);
    await flip(file(incr), l2Offset, bad);
    const v = await bed.sys.call<Verification>('POST', `/api/v1/backup/${incr.id}/verify`);
    expect(v.status).toBe(200);
    expect(v.body).toMatchObject({ ok: false, checkClean: false });
    await afterDamageFound(META_VM, full, incr, fullDigest, v.body);
  }, 300_000);
});
