import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import { startStandIn, VSphereClient, type StandIn } from '@sendense/vsphere';
import { startSystem, waitForJob, type System } from './support/system';

/**
 * Backups end to end through the real services: API call → queue → worker →
 * nbd-exporter (qemu-nbd) → Capture Agent → VMware stand-in (govmomi
 * simulator + qemu dirty bitmaps) and back, on the real MariaDB and Redis.
 */

const MiB = 1024 * 1024;
const VM = 'e2e-vm';
const SLOW_VM = 'e2e-slow-vm';

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
  events: { level: string; phase: string; message: string }[];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('VMware backups end to end', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let deviceKeys: number[];
  // disk 0: ext4 (restore tests, changed through files), disk 1: xfs, disk 2: dense random data (size checks).
  const sizes = [96 * MiB, 320 * MiB, 64 * MiB];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-e2e-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        {
          name: VM,
          disks: [
            {
              sizeMiB: 96,
              content: {
                type: 'filesystem',
                filesystem: 'ext4',
                partitionTable: 'gpt',
                files: { '/etc/hostname': 'e2e\n' },
                randomFiles: { '/data/big.bin': 32 * MiB },
                seed: 7,
              },
            },
            { sizeMiB: 320, content: { type: 'filesystem', filesystem: 'xfs', partitionTable: 'mbr', files: { '/readme.txt': 'hello xfs\n' }, seed: 8 } },
            { sizeMiB: 64, content: { type: 'random', percent: 100, seed: 9 } },
          ],
        },
        // Big enough that a cancel lands in the middle of the copy.
        { name: SLOW_VM, disks: [{ sizeMiB: 1024, content: { type: 'random', percent: 100, seed: 3 } }] },
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
    const imp = await sys.call<{ vm_name: string; context_id: string; disks: number }[]>('POST', `/api/v1/vcenters/${vc.body.id}/import`, {
      vm_names: [VM, SLOW_VM],
    });
    expect(imp.status).toBe(200);
    expect(imp.body.find((v) => v.vm_name === VM)!.disks).toBe(3);
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
    if (doc.status !== 'completed')
      throw new Error(`backup ${type} ended ${doc.status}: ${doc.error}\n${sys.logs.get('backup-worker')?.slice(-20).join('\n')}`);
    return doc;
  }

  /** A guest writes a file on disk 0; the guest's ext4 must stay clean (e2fsck -fn), or the test would back up a lie. */
  async function writeGuestFile(path: string, content: string): Promise<void> {
    await standIn.harness!.writeFile(VM, deviceKeys[0]!, path, content);
    await standIn.harness!.assertGuestFsClean(VM, deviceKeys[0]!);
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

  /** What the restore point reads back as (the whole chain). */
  async function restorePointData(b: BackupRow): Promise<Buffer> {
    const raw = join(work, `${b.id}.raw`);
    await run('qemu-img', ['convert', '-U', '-O', 'raw', join(sys.repoDir, b.repository_path), raw]);
    try {
      return await readFile(raw);
    } finally {
      await rm(raw, { force: true });
    }
  }
  const restorePointDigest = async (b: BackupRow) => sha(await restorePointData(b));

  let full: JobDoc;

  it('a full backup of disks with real filesystems reads back identical to the snapshot', async () => {
    const before = [await guestDigest(0), await guestDigest(1), await guestDigest(2)];
    full = await backup('full');
    expect(full.backups).toHaveLength(3);
    for (const b of full.backups) {
      expect(b).toMatchObject({ backup_type: 'full', status: 'completed', parent_backup_id: null });
      expect(await restorePointDigest(b)).toBe(before[b.disk_id]);
    }
    // Only allocated areas travel: the sparse xfs disk moves far less than its size.
    const xfs = full.backups.find((b) => b.disk_id === 1)!;
    expect(xfs.bytes_transferred).toBeLessThan(sizes[1]! / 2);
    const vm = await sys.call<{ chains: { disk_id: number; total_backups: number }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}`);
    expect(vm.body.chains.map((c) => c.total_backups)).toEqual([1, 1, 1]);
  }, 240_000);

  it('an incremental after 5% change moves about the changed bytes, is small and reads back as the guest', async () => {
    const areas = await standIn.harness!.fill(VM, deviceKeys[2]!, 5, 11);
    const changed = areas.reduce((s, a) => s + a.length, 0);
    // A block the guest zeroed after the full must read as zero, not as old data.
    const zeroAt = 40 * MiB;
    await standIn.harness!.zero(VM, deviceKeys[2]!, zeroAt, 64 * 1024);
    const expected = await guestDigest(2);
    const incr = await backup('incremental');
    const d2 = incr.backups.find((b) => b.disk_id === 2)!;
    const fullD2 = full.backups.find((b) => b.disk_id === 2)!;
    expect(d2).toMatchObject({ backup_type: 'incremental', parent_backup_id: fullD2.id, fallback_reason: null });
    const zeroOverlaps = areas.some((a) => a.start < zeroAt + 65536 && zeroAt < a.start + a.length);
    const changedWithZero = changed + (zeroOverlaps ? 0 : 64 * 1024);
    expect(Math.abs(d2.bytes_transferred - changedWithZero)).toBeLessThanOrEqual(changedWithZero * 0.1);
    expect(d2.allocated_bytes).toBeLessThan(fullD2.allocated_bytes * 0.1);
    const data = await restorePointData(d2);
    expect(sha(data)).toBe(expected);
    const fullData = await restorePointData(fullD2);
    expect(data.subarray(zeroAt, zeroAt + 65536).equals(Buffer.alloc(65536))).toBe(true);
    expect(fullData.subarray(zeroAt, zeroAt + 65536).equals(Buffer.alloc(65536))).toBe(false);
    // The untouched disks produced empty incrementals.
    for (const i of [0, 1]) expect(incr.backups.find((b) => b.disk_id === i)!.bytes_transferred).toBe(0);
  }, 240_000);

  it('a chain of 5 incrementals: each restore point reads back as the guest was', async () => {
    for (let i = 0; i < 5; i++) {
      await writeGuestFile(`/notes/note-${i}.txt`, `note ${i}\n`.repeat(1000 * (i + 1)));
      const expected = await guestDigest(0);
      const doc = await backup('incremental');
      const d0 = doc.backups.find((b) => b.disk_id === 0)!;
      expect(d0.backup_type).toBe('incremental');
      expect(await restorePointDigest(d0)).toBe(expected);
    }
    const chain = await sys.call<{ chains: { disk_id: number; total_backups: number }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}&disk_id=0`);
    expect(chain.body.chains[0]!.total_backups).toBe(7);
  }, 600_000);

  it('a differential builds on the full and reads back as the guest; a snapshot an interrupted backup left is removed', async () => {
    await writeGuestFile('/notes/diff.txt', 'differential\n');
    const expected = await guestDigest(0);
    // As if a Capture Agent had died mid-backup: its snapshot is still on the VM.
    const vc = await VSphereClient.connect({
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      tls: { insecure: true },
      keepAliveMs: 0,
    });
    const vmRef = (await vc.findVm({ name: VM })).ref;
    const stale = await vc.createSnapshot(vmRef, { name: 'sendense-run-killed-mid-copy' });
    const doc = await backup('differential');
    expect(doc.events.find((e) => e.phase === 'snapshot' && e.level === 'warn')?.message).toContain(`removed snapshot ${stale.value}`);
    expect(await vc.listSnapshots(vmRef)).toEqual([]);
    await vc.logout();
    const d0 = doc.backups.find((b) => b.disk_id === 0)!;
    const fullD0 = full.backups.find((b) => b.disk_id === 0)!;
    expect(d0).toMatchObject({ backup_type: 'differential', parent_backup_id: fullD0.id });
    expect(await restorePointDigest(d0)).toBe(expected);
  }, 240_000);

  it('a CBT reset turns the incremental into a full and says why', async () => {
    await standIn.harness!.crash(VM, deviceKeys[0]!);
    await writeGuestFile('/after-reset.txt', 'written after the CBT reset\n');
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

  describe('file-level restore of any restore point', () => {
    interface Mount {
      mount_id: string;
      partitions: { name: string; fsType: string | null; mounted: boolean; error?: string }[];
    }
    interface Listing {
      entries: { name: string; type: string; size: number }[];
    }
    let fullMount: Mount;

    async function download(mountId: string, path: string, range?: string) {
      const res = await fetch(`${sys.api}/api/v1/restore/${mountId}/download?path=${encodeURIComponent(path)}`, {
        headers: { 'x-api-key': sys.adminKey, ...(range ? { range } : {}) },
      });
      return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
    }

    it('mounts the full, lists and downloads files as the guest had them', async () => {
      const fullD0 = full.backups.find((b) => b.disk_id === 0)!;
      const m = await sys.call<Mount>('POST', '/api/v1/restore/mount', { backup_id: fullD0.id });
      expect({ status: m.status, body: m.body }).toMatchObject({ status: 201 });
      fullMount = m.body;
      const part = m.body.partitions.find((p) => p.fsType === 'ext4')!;
      expect(part).toBeDefined();
      const etc = await sys.call<Listing>('GET', `/api/v1/restore/${m.body.mount_id}/files?path=${part.name}/etc`);
      expect(etc.status).toBe(200);
      expect(etc.body.entries.map((e) => e.name)).toContain('hostname');
      const f = await download(m.body.mount_id, `${part.name}/etc/hostname`);
      expect(f.status).toBe(200);
      expect(f.body.toString()).toBe('e2e\n');
      expect(f.headers.get('content-length')).toBe('4');
      const r = await download(m.body.mount_id, `${part.name}/data/big.bin`, 'bytes=10-19');
      expect(r.status).toBe(206);
      expect(r.body.length).toBe(10);
      expect(r.headers.get('content-range')).toBe(`bytes 10-19/${32 * MiB}`);
      // Mounting the same restore point again reuses the mount.
      const again = await sys.call<Mount>('POST', '/api/v1/restore/mount', { backup_id: fullD0.id });
      expect(again.body.mount_id).toBe(m.body.mount_id);
    }, 120_000);

    it('refuses paths that leave the mount, with 400', async () => {
      const part = fullMount.partitions.find((p) => p.fsType === 'ext4')!.name;
      for (const path of [`${part}/../../etc/passwd`, '/etc/passwd', `${part}/etc/\u0000x`]) {
        const r = await download(fullMount.mount_id, path);
        expect({ path, status: r.status }).toEqual({ path, status: 400 });
      }
    }, 60_000);

    it('a mounted restore point cannot be merged or deleted; after unmount consolidation keeps every point readable', async () => {
      // Disk 0's current chain starts at the full made after the CBT reset: grow it to full + 2 incrementals.
      for (let i = 0; i < 2; i++) {
        await writeGuestFile(`/later/file-${i}.txt`, `later ${i}\n`);
        await backup('incremental');
      }
      const expected = await guestDigest(0);
      const chain = await sys.call<{ chains: { restore_points: BackupRow[] }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}&disk_id=0`);
      const points = chain.body.chains[0]!.restore_points;
      expect(points.map((p) => p.backup_type)).toEqual(['full', 'incremental', 'incremental']);
      const base = await sys.call<Mount>('POST', '/api/v1/restore/mount', { backup_id: points[0]!.id });
      const top = await sys.call<Mount>('POST', '/api/v1/restore/mount', { backup_id: points[2]!.id });
      if (base.status !== 201 || top.status !== 201) throw new Error(`mount failed: ${JSON.stringify([base.body, top.body])}`);
      // Each mount shows its own point in time.
      const ext4 = (m: Mount) => m.partitions.find((p) => p.fsType === 'ext4')!.name;
      const inBase = await sys.call<Listing>('GET', `/api/v1/restore/${base.body.mount_id}/files?path=${ext4(base.body)}/later`);
      const inTop = await sys.call<Listing>('GET', `/api/v1/restore/${top.body.mount_id}/files?path=${ext4(top.body)}/later`);
      expect(inBase.status).toBe(404);
      expect(inTop.body.entries.map((e) => e.name).sort()).toEqual(['file-0.txt', 'file-1.txt']);
      const f = await download(top.body.mount_id, `${ext4(top.body)}/later/file-1.txt`);
      expect(f.body.toString()).toBe('later 1\n');

      const cons = await sys.call<{ message: string; code: string }>('POST', '/api/v1/backup/chain/consolidate', { vm_name: VM, disk_id: 0 });
      expect(cons.status).toBe(409);
      expect(cons.body.code).toBe('RESTORE_POINT_BUSY');
      const del = await sys.call<{ message: string }>('DELETE', `/api/v1/backup/${points[2]!.id}`);
      expect(del.status).toBe(409);
      expect(del.body.message).toMatch(/mounted|busy|in use/i);

      await sys.call('DELETE', `/api/v1/restore/${base.body.mount_id}`);
      await sys.call('DELETE', `/api/v1/restore/${top.body.mount_id}`);
      const ok = await sys.call<{ survivorId: string; removedIds: string[] }>('POST', '/api/v1/backup/chain/consolidate', { vm_name: VM, disk_id: 0 });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ survivorId: points[1]!.id, removedIds: [points[0]!.id] });
      const after = await sys.call<{ chains: { total_backups: number; restore_points: BackupRow[] }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}&disk_id=0`);
      expect(after.body.chains[0]!.restore_points.map((p) => p.id)).toEqual([points[1]!.id, points[2]!.id]);
      expect(after.body.chains[0]!.restore_points[0]!.backup_type).toBe('full');
      expect(await restorePointDigest(after.body.chains[0]!.restore_points[1]!)).toBe(expected);
      // The next incremental builds on the consolidated chain.
      await writeGuestFile('/later/file-2.txt', 'later 2\n');
      const next = await backup('incremental');
      const d0 = next.backups.find((b) => b.disk_id === 0)!;
      expect(d0.parent_backup_id).toBe(points[2]!.id);
      expect(await restorePointDigest(d0)).toBe(await guestDigest(0));
    }, 400_000);

    it('unmounts', async () => {
      const del = await sys.call('DELETE', `/api/v1/restore/${fullMount.mount_id}`);
      expect(del.status).toBe(204);
      const list = await sys.call<{ mount_id: string }[]>('GET', '/api/v1/restore/mounts');
      expect(list.body.map((m) => m.mount_id)).not.toContain(fullMount.mount_id);
    }, 60_000);
  });

  it('cancelling a running backup leaves no export, no snapshot and no half restore point', async () => {
    const start = await sys.call<{ run_id: string; vm_context_id: string }>('POST', '/api/v1/backup/start', {
      vm_name: SLOW_VM,
      backup_type: 'full',
      repository: 'local',
    });
    expect(start.status).toBe(202);
    const runId = start.body.run_id;
    await waitFor(
      async () => {
        const s = await sys.call<{ progress: { phase: string; bytesDone: number } | null; status: string }>('GET', `/api/v1/jobs/${runId}`);
        return s.body.status !== 'queued' && s.body.status !== 'running' ? true : s.body.progress?.phase === 'copying' && s.body.progress.bytesDone > 0;
      },
      { timeoutMs: 120_000, intervalMs: 100, message: 'the copy to start' },
    );
    const cancel = await sys.call<{ status: string }>('POST', `/api/v1/jobs/${runId}/cancel`);
    expect(cancel.status).toBe(202);
    const doc = await waitForJob<JobDoc>(sys, runId);
    expect(doc.status).toBe('cancelled');
    expect(doc.backups.length).toBe(1);
    expect(doc.backups.every((b) => b.status === 'cancelled')).toBe(true);
    // No NBD export left, no snapshot left on the VM, no image or sidecar left in the repository.
    expect(await sys.db.prisma.nbdExport.count({ where: { backupJobId: { in: doc.backups.map((b) => b.id) } } })).toBe(0);
    const vm = await standIn.harness!.vm(SLOW_VM);
    expect(vm.disks.flatMap((d) => d.snapshots)).toEqual([]);
    const files = await readdir(join(sys.repoDir, start.body.vm_context_id), { recursive: true }).catch(() => [] as string[]);
    expect(files.filter((f) => /\.(qcow2|json)$/.test(String(f)))).toEqual([]);
    // And the VM backs up fine afterwards.
    const again = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: SLOW_VM, backup_type: 'full', repository: 'local' });
    expect((await waitForJob<JobDoc>(sys, again.body.run_id)).status).toBe('completed');
  }, 300_000);

  it('a second start for the same VM while one is queued or running is refused', async () => {
    const a = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: 'incremental', repository: 'local' });
    const b = await sys.call<{ message: string; run_id: string }>('POST', '/api/v1/backup/start', {
      vm_name: VM,
      backup_type: 'incremental',
      repository: 'local',
    });
    expect(a.status).toBe(202);
    expect(b.status).toBe(409);
    expect(b.body.run_id).toBe(a.body.run_id);
    await waitForJob(sys, a.body.run_id);
  }, 240_000);
});
