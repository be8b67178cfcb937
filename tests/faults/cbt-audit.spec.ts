import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { backupOk, guestDigest, leftovers, MiB, restorePointDigest, startFaultBed, type FaultBed } from '../support/faults';

/**
 * The CBT audit: after an incremental, blocks CBT reported unchanged are
 * read from the snapshot and from the new restore point and compared. The
 * stand-in's `cbt-fault` switch makes QueryChangedDiskAreas forget a changed
 * area, as vSphere's CBT bugs did.
 */

const FAULTY = 'audit-faulty-vm';
const HONEST = 'audit-honest-vm';

describe('CBT audit', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [
        { name: FAULTY, changeTrackingEnabled: true, disks: [{ sizeMiB: 64, content: { type: 'random', percent: 50, seed: 11 } }] },
        { name: HONEST, changeTrackingEnabled: true, disks: [{ sizeMiB: 64, content: { type: 'random', percent: 50, seed: 12 } }] },
      ],
      // 'audit': many samples, so the forgotten 8 MiB (1/8 of the disk) cannot slip through: (7/8)^256 < 1e-14.
      // 'local': the worker's default (CBT_AUDIT_SAMPLES), whose cost is measured.
      repositories: [{ name: 'audit', cbt_audit_samples: 256 }, { name: 'local' }],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  it('catches the area CBT forgot: the chain is marked suspect (row, sidecar, API, error in the log) and the next backup is a full that says why', async () => {
    const h = bed.standIn.harness!;
    const key = bed.keys.get(FAULTY)![0]!;
    await backupOk(bed, FAULTY, 'full', 'audit');
    await h.write(FAULTY, key, 16 * MiB, randomBytes(8 * MiB)); // the largest area: forgotten
    await h.write(FAULTY, key, 40 * MiB, randomBytes(64 * 1024));
    const guest = await guestDigest(bed, FAULTY, 0);
    expect((await h.cbtFault(FAULTY, key, true)).cbtForgetsArea).toBe(true);
    let incr;
    try {
      incr = await backupOk(bed, FAULTY, 'incremental', 'audit');
    } finally {
      await h.cbtFault(FAULTY, key, false);
    }
    const b = incr.backups[0]!;
    expect(b.backup_type).toBe('incremental');
    // CBT lied: only the small area travelled, and the point is not the guest.
    expect(b.bytes_transferred).toBe(64 * 1024);
    expect(await restorePointDigest(bed, b, 'audit')).not.toBe(guest);
    expect(b.cbt_audit!.sampled).toBe(256);
    expect(b.cbt_audit!.mismatched).toBeGreaterThan(0);
    for (const off of b.cbt_audit!.mismatchOffsets) expect(off >= 16 * MiB && off < 24 * MiB).toBe(true);
    expect(b.suspect_reason).toMatch(/CBT audit: \d+ of 256 blocks .*differ/);
    const err = incr.events.find((e) => e.level === 'error' && /CBT audit/.test(e.message));
    expect(err?.message).toMatch(/suspect.*next backup of this disk will be full/);
    const chain = await bed.sys.call<{ chains: { suspect: boolean; suspect_reason: string | null }[] }>(
      'GET',
      `/api/v1/backup/chain?vm_name=${FAULTY}&disk_id=0`,
    );
    expect(chain.body.chains[0]).toMatchObject({ suspect: true, suspect_reason: b.suspect_reason });
    // The sidecar carries the mark too (a rebuilt database keeps it).
    const sidecar = JSON.parse(await readFile(join(bed.sys.repoDir, 'audit', b.repository_path.replace(/\.qcow2$/, '.json')), 'utf8')) as {
      metadata: { suspect?: { reason: string } };
    };
    expect(sidecar.metadata.suspect?.reason).toBe(b.suspect_reason);

    const next = await backupOk(bed, FAULTY, 'incremental', 'audit');
    const n = next.backups[0]!;
    expect(n).toMatchObject({ backup_type: 'full', requested_type: 'incremental', parent_backup_id: null });
    expect(n.fallback_reason).toMatch(/chain is suspect since restore point .*CBT audit/);
    expect(await restorePointDigest(bed, n, 'audit')).toBe(await guestDigest(bed, FAULTY, 0));
    const after = await bed.sys.call<{ chains: { suspect: boolean }[] }>('GET', `/api/v1/backup/chain?vm_name=${FAULTY}&disk_id=0`);
    expect(after.body.chains[0]!.suspect).toBe(false);
    expect(await leftovers(bed)).toEqual([]);
  }, 300_000);

  it('raises no false alarm over a chain of five incrementals with correct CBT, and costs little (default sample size)', async () => {
    const h = bed.standIn.harness!;
    const key = bed.keys.get(HONEST)![0]!;
    await backupOk(bed, HONEST, 'full');
    const costs: { auditMs: number; copyMs: number; jobMs: number; sampled: number }[] = [];
    for (let i = 0; i < 5; i++) {
      await h.fill(HONEST, key, 5, 100 + i);
      const guest = await guestDigest(bed, HONEST, 0);
      const doc = await backupOk(bed, HONEST, 'incremental');
      const b = doc.backups[0]!;
      expect(b.backup_type).toBe('incremental');
      expect(b.cbt_audit).toMatchObject({ mismatched: 0 });
      expect(b.cbt_audit!.sampled).toBeGreaterThan(0);
      expect(b.suspect_reason).toBeNull();
      expect(await restorePointDigest(bed, b)).toBe(guest);
      const copied = doc.events.find((e) => /^copied \d+ bytes in/.test(e.message));
      const copyMs = copied ? Number(/in ([\d.]+) s/.exec(copied.message)![1]) * 1000 : NaN;
      costs.push({ auditMs: b.cbt_audit!.durationMs, copyMs, jobMs: doc.seconds * 1000, sampled: b.cbt_audit!.sampled });
    }
    const chain = await bed.sys.call<{ chains: { suspect: boolean; total_backups: number }[] }>('GET', `/api/v1/backup/chain?vm_name=${HONEST}&disk_id=0`);
    expect(chain.body.chains[0]).toMatchObject({ suspect: false, total_backups: 6 });
    const audit = costs.reduce((s, c) => s + c.auditMs, 0);
    const job = costs.reduce((s, c) => s + c.jobMs, 0);
    // The measured figure (reported by the suite): audit time against the incrementals' whole time.
    console.log(
      `CBT audit cost over 5 incrementals: ${JSON.stringify(costs)}; audit ${audit} ms of ${job.toFixed(0)} ms = ${((100 * audit) / job).toFixed(2)}%`,
    );
    expect(audit / job).toBeLessThan(0.05);
    expect(await leftovers(bed)).toEqual([]);
  }, 400_000);
});
