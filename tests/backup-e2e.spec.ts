import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@sendense/process';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { startSystem, waitForJob, type System } from './support/system';

/**
 * Backups end to end through the real services: API call → queue → worker →
 * nbd-exporter (qemu-nbd) → Capture Agent → VMware stand-in (govmomi
 * simulator + qemu dirty bitmaps) and back, on the real MariaDB and Redis.
 */

const MiB = 1024 * 1024;
const VM = 'e2e-vm';

interface BackupRow {
  id: string;
  disk_id: number;
  backup_type: string;
  requested_type: string;
  fallback_reason: string | null;
  status: string;
  bytes_transferred: number;
  allocated_bytes: number;
  parent_backup_id: string | null;
  repository_path: string;
}
interface JobDoc {
  status: string;
  error: string | null;
  backups: BackupRow[];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('VMware backups end to end', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let deviceKeys: number[];
  const sizes = [96 * MiB, 320 * MiB];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-e2e-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        {
          name: VM,
          disks: [
            { sizeMiB: 96, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'gpt', files: { '/etc/hostname': 'e2e\n' }, randomFiles: { '/data/big.bin': 72 * MiB }, seed: 7 } },
            { sizeMiB: 320, content: { type: 'filesystem', filesystem: 'xfs', partitionTable: 'mbr', files: { '/readme.txt': 'hello xfs\n' }, seed: 8 } },
          ],
        },
      ],
    });
    sys = await startSystem();
    const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
      name: 'standin',
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      insecure: true,
      disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
    });
    expect(vc.status).toBe(201);
    const imp = await sys.call<{ context_id: string; disks: number }[]>('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: [VM] });
    expect(imp.status).toBe(200);
    expect(imp.body[0]!.disks).toBe(2);
    const repo = await sys.call('POST', '/api/v1/repositories', { name: 'local', type: 'local', path: sys.repoDir });
    expect(repo.status).toBe(201);
    const vms = await sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    deviceKeys = vms.body.find((v) => v.vm_name === VM)!.disks.map((d) => d.device_key);
  }, 240_000);

  afterAll(async () => {
    await sys?.stop();
    await standIn?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  async function backup(type: 'full' | 'incremental' | 'differential'): Promise<JobDoc> {
    const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: type, repository: 'local' });
    expect(start.status).toBe(202);
    const doc = await waitForJob<JobDoc>(sys, start.body.run_id);
    if (doc.status !== 'completed') throw new Error(`backup ${type} ended ${doc.status}: ${doc.error}\n${sys.logs.get('backup-worker')?.slice(-20).join('\n')}`);
    return doc;
  }

  /** The guest disk as it is now (the stand-in's live disk), hashed. */
  async function guestDigest(i: number): Promise<string> {
    const h = createHash('sha256');
    const chunk = 32 * MiB; // the harness reads at most 64 MiB at a time
    for (let off = 0; off < sizes[i]!; off += chunk) {
      h.update(await standIn.harness!.read(VM, deviceKeys[i]!, off, Math.min(chunk, sizes[i]! - off)));
    }
    return h.digest('hex');
  }

  /** What the restore point reads back as (the whole chain), hashed. */
  async function restorePointDigest(b: BackupRow): Promise<string> {
    const raw = join(work, `${b.id}.raw`);
    await run('qemu-img', ['convert', '-U', '-O', 'raw', join(sys.repoDir, b.repository_path), raw]);
    try {
      return sha(await readFile(raw));
    } finally {
      await rm(raw, { force: true });
    }
  }

  let full: JobDoc;

  it('a full backup of two disks with real filesystems reads back identical to the snapshot', async () => {
    const before = [await guestDigest(0), await guestDigest(1)];
    full = await backup('full');
    expect(full.backups).toHaveLength(2);
    for (const b of full.backups) {
      expect(b).toMatchObject({ backup_type: 'full', status: 'completed', parent_backup_id: null });
      expect(await restorePointDigest(b)).toBe(before[b.disk_id]);
    }
    // Only allocated areas travel: the sparse xfs disk moves far less than its size.
    const xfs = full.backups.find((b) => b.disk_id === 1)!;
    expect(xfs.bytes_transferred).toBeLessThan(sizes[1]! / 2);
    const vm = await sys.call<{ chains: { disk_id: number; total_backups: number }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}`);
    expect(vm.body.chains.map((c) => c.total_backups)).toEqual([1, 1]);
  }, 240_000);

  it('an incremental after 5% change moves about the changed bytes, is small and reads back as the guest', async () => {
    const areas = await standIn.harness!.fill(VM, deviceKeys[0]!, 5, 11);
    const changed = areas.reduce((s, a) => s + a.length, 0);
    // A block the guest zeroed after the full must read as zero, not as old data.
    await standIn.harness!.zero(VM, deviceKeys[0]!, 80 * MiB, 64 * 1024);
    const expected = await guestDigest(0);
    const incr = await backup('incremental');
    const d0 = incr.backups.find((b) => b.disk_id === 0)!;
    const fullD0 = full.backups.find((b) => b.disk_id === 0)!;
    expect(d0).toMatchObject({ backup_type: 'incremental', parent_backup_id: fullD0.id, fallback_reason: null });
    const changedWithZero = changed + 64 * 1024;
    expect(Math.abs(d0.bytes_transferred - changedWithZero)).toBeLessThanOrEqual(changedWithZero * 0.1);
    expect(d0.allocated_bytes).toBeLessThan(fullD0.allocated_bytes * 0.1);
    expect(await restorePointDigest(d0)).toBe(expected);
    const zeroed = await standIn.harness!.read(VM, deviceKeys[0]!, 80 * MiB, 64 * 1024);
    expect(zeroed.equals(Buffer.alloc(64 * 1024))).toBe(true);
    // The untouched disk produced an empty incremental.
    const d1 = incr.backups.find((b) => b.disk_id === 1)!;
    expect(d1.bytes_transferred).toBe(0);
  }, 240_000);

  it('a chain of 5 incrementals: each restore point reads back as the guest was', async () => {
    for (let i = 0; i < 5; i++) {
      await standIn.harness!.write(VM, deviceKeys[0]!, (3 + i * 7) * MiB, Buffer.alloc(128 * 1024, 0x41 + i));
      const expected = await guestDigest(0);
      const doc = await backup('incremental');
      const d0 = doc.backups.find((b) => b.disk_id === 0)!;
      expect(d0.backup_type).toBe('incremental');
      expect(await restorePointDigest(d0)).toBe(expected);
    }
    const chain = await sys.call<{ chains: { disk_id: number; total_backups: number }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}&disk_id=0`);
    expect(chain.body.chains[0]!.total_backups).toBe(7);
  }, 600_000);

  it('a CBT reset turns the incremental into a full and says why', async () => {
    await standIn.harness!.crash(VM, deviceKeys[0]!);
    await standIn.harness!.write(VM, deviceKeys[0]!, 1 * MiB, Buffer.alloc(64 * 1024, 0x5a));
    const expected = await guestDigest(0);
    const doc = await backup('incremental');
    const d0 = doc.backups.find((b) => b.disk_id === 0)!;
    expect(d0).toMatchObject({ backup_type: 'full', requested_type: 'incremental', parent_backup_id: null });
    expect(d0.fallback_reason).toMatch(/reset|no longer accepts/i);
    expect(await restorePointDigest(d0)).toBe(expected);
  }, 240_000);

  it('refuses to delete a restore point others depend on, naming them', async () => {
    const fullD1 = full.backups.find((b) => b.disk_id === 1)!;
    const res = await sys.call<{ message: string; dependents: string[] }>('DELETE', `/api/v1/backup/${fullD1.id}`);
    expect(res.status).toBe(409);
    expect(res.body.dependents.length).toBeGreaterThan(0);
    expect(res.body.message).toContain(res.body.dependents[0]!);
  }, 60_000);

  it('a second start for the same VM while one is queued or running is refused', async () => {
    const a = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: 'incremental', repository: 'local' });
    const b = await sys.call<{ message: string; run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: 'incremental', repository: 'local' });
    expect(a.status).toBe(202);
    expect(b.status).toBe(409);
    expect(b.body.run_id).toBe(a.body.run_id);
    await waitForJob(sys, a.body.run_id);
  }, 240_000);
});
