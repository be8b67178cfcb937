import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Daemon, waitFor } from '@sendense/process';
// Through the public entry point, as other apps import it.
import {
  BackupInProgress,
  DependentRestorePoints,
  InvalidRequest,
  LocalQcow2Repository,
  RestorePointBusy,
  RestorePointNotFound,
  StorageError,
  StorageIoError,
  compareImages,
  isLocalRepository,
  type BackupRepository,
} from '../index';
import { backup, corruptDataByte, DiskModel, expectAllReadBack, MiB, tempDir, writeImage, type Backup } from '../../test/helpers';

jest.setTimeout(60_000);

describe('LocalQcow2Repository: restore points on real qcow2 files', () => {
  let root: string;
  let repo: LocalQcow2Repository;
  let model: DiskModel;
  let full: Backup, i1: Backup, i2: Backup, d1: Backup;

  beforeAll(async () => {
    root = await tempDir('repo');
    const refDir = await tempDir('refs');
    model = new DiskModel(refDir);
    repo = await LocalQcow2Repository.open({ root, space: { marginBytes: 0 } });
    full = await backup(repo, model, {
      type: 'full',
      writes: [
        { pattern: 0x11, off: 0, len: 2 * MiB },
        { pattern: 0x12, off: 4 * MiB, len: 1 * MiB },
      ],
    });
    i1 = await backup(repo, model, {
      type: 'incremental',
      parent: full,
      writes: [
        { pattern: 0x21, off: 512 * 1024, len: 256 * 1024 },
        { pattern: null, off: 4 * MiB, len: 128 * 1024 }, // a block that became zero
      ],
    });
    i2 = await backup(repo, model, {
      type: 'incremental',
      parent: i1,
      writes: [{ pattern: 0x31, off: 6 * MiB, len: 64 * 1024 }],
    });
    d1 = await backup(repo, model, {
      type: 'differential',
      parent: full,
      writes: [{ pattern: 0x41, off: 7 * MiB, len: 512 * 1024 }],
    });
  });

  afterAll(async () => {
    await fsp.rm(root, { recursive: true, force: true });
    await fsp.rm(model.refDir, { recursive: true, force: true });
  });

  it('lays out images and sidecars as documented, with relative backing files', async () => {
    const dir = path.join(root, 'vm-1', 'disk-0');
    const names = (await fsp.readdir(dir)).sort();
    expect(names).toEqual(expect.arrayContaining([full.record.imageName, i1.record.imageName, i2.record.imageName, d1.record.imageName]));
    expect(full.record.imageName).toMatch(/^full-\d{8}T\d{6}\.qcow2$/);
    expect(i1.record.imageName).toMatch(/^incr-\d{8}T\d{6}\.qcow2$/);
    expect(d1.record.imageName).toMatch(/^diff-\d{8}T\d{6}\.qcow2$/);
    expect(i1.record.backingImageName).toBe(full.record.imageName);
    expect(i2.record.backingImageName).toBe(i1.record.imageName);
    expect(d1.record.parentId).toBe(full.record.id);
    const sidecar = JSON.parse(await fsp.readFile(path.join(dir, i2.record.imageName.replace('.qcow2', '.json')), 'utf8'));
    expect(sidecar).toMatchObject({
      id: i2.record.id,
      vmContextId: 'vm-1',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental',
      parentId: i1.record.id,
      state: 'committed',
      virtualSize: model.size,
    });
    expect(sidecar.checksum).toMatch(/^sha256-tree:[0-9a-f]{64}$/);
    expect(sidecar.allocatedBytes).toBeGreaterThan(0);
    expect(sidecar.changeId).toMatch(/^cid-/);
    expect(sidecar.committedAt).toBeTruthy();
  });

  it('reads back every restore point exactly (qemu-img compare against the raw model)', async () => {
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    expect((await repo.list()).map((r) => r.id)).toEqual([full, i1, i2, d1].map((b) => b.record.id));
    expect((await repo.latest('vm-1', 0))?.id).toBe(d1.record.id);
    expect(await repo.latest('vm-1', 7)).toBeNull();
    expect((await repo.find(i1.record.id))?.changeId).toBe(i1.record.changeId);
    expect(await repo.find('missing')).toBeNull();
  });

  it('keeps a restore point invisible until it is committed, and abort removes it', async () => {
    const h = await repo.createRestorePoint({
      vmContextId: 'vm-1',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental',
      parentId: i2.record.id,
      virtualSize: model.size,
    });
    expect((await repo.list()).map((r) => r.id)).not.toContain(h.id);
    await expect(repo.get(h.id)).rejects.toBeInstanceOf(RestorePointNotFound);
    expect((await repo.list({ includeWriting: true })).map((r) => r.id)).toContain(h.id);
    expect(await repo.locks.isBusy(h.id)).toBe(true);
    // A second backup of the same disk (racing jobs) is refused.
    const race = (await repo
      .createRestorePoint({ vmContextId: 'vm-1', diskIndex: 0, diskKey: '2000', type: 'full', virtualSize: model.size })
      .catch((e) => e)) as BackupInProgress;
    expect(race).toBeInstanceOf(BackupInProgress);
    expect(race.message).toContain('vm-1 disk 0 is already being written');
    // The chain it writes on is marked busy too, so nobody merges it away.
    await expect(repo.delete(i2.record.id)).rejects.toBeInstanceOf(DependentRestorePoints);
    const t = await repo.localTarget(h.id);
    expect(t.writable).toBe(true);
    expect(t.chainPaths).toHaveLength(4);
    await writeImage(t.imagePath, [{ pattern: 0x99, off: 0, len: 64 * 1024 }]);
    await repo.abort(h.id, 'test');
    await expect(repo.abort(h.id, 'again')).rejects.toBeInstanceOf(RestorePointNotFound);
    await expect(fsp.stat(t.imagePath)).rejects.toThrow();
    expect((await repo.list({ includeWriting: true })).map((r) => r.id)).not.toContain(h.id);
    expect(await repo.locks.isBusy(h.id)).toBe(false);
  });

  it('reports chains and their sizes', async () => {
    const c = await repo.chain(i2.record.id);
    expect(c.restorePoints.map((r) => r.id)).toEqual([full.record.id, i1.record.id, i2.record.id]);
    expect(c.totalAllocatedBytes).toBe(full.record.allocatedBytes + i1.record.allocatedBytes + i2.record.allocatedBytes);
    expect(c.virtualSize).toBe(model.size);
    expect((await repo.chain(d1.record.id)).restorePoints.map((r) => r.id)).toEqual([full.record.id, d1.record.id]);
    expect((await repo.dependents(full.record.id)).map((r) => r.id).sort()).toEqual([i1.record.id, d1.record.id].sort());
  });

  it('refuses to delete a restore point others depend on, naming them, without leaking paths', async () => {
    const err = (await repo.delete(full.record.id).catch((e) => e)) as DependentRestorePoints;
    expect(err).toBeInstanceOf(DependentRestorePoints);
    expect(err.dependents.map((d) => d.id).sort()).toEqual([i1.record.id, d1.record.id].sort());
    expect(err.message).toContain(i1.record.id);
    expect(err.message).toContain(d1.record.id);
    expect(err.message).not.toContain(root);
    expect(JSON.stringify(err.toJSON())).not.toContain(root);
    expect(err.httpStatus).toBe(409);
  });

  it('refuses to delete or verify-conflict while a restore point is mounted', async () => {
    const locks = await repo.acquireChain(d1.record.id, 'mount');
    try {
      const err = (await repo.delete(d1.record.id).catch((e) => e)) as RestorePointBusy;
      expect(err).toBeInstanceOf(RestorePointBusy);
      expect(err.holders[0].purpose).toBe('mount');
      // Shared readers coexist.
      expect((await repo.verify(d1.record.id)).ok).toBe(true);
    } finally {
      for (const l of locks) await l.release();
    }
  });

  it('verifies restore points and records the result in the sidecar', async () => {
    for (const b of [full, i1, i2, d1]) {
      const v = await repo.verify(b.record.id);
      expect(v).toMatchObject({ ok: true, checkClean: true, checksumMatches: true, problems: [] });
      expect((await repo.get(b.record.id)).lastVerification?.ok).toBe(true);
    }
  });

  it('re-imports the repository from sidecars alone', async () => {
    const records = await repo.importRepository();
    expect(records.map((r) => r.id).sort()).toEqual([full, i1, i2, d1].map((b) => b.record.id).sort());
    const fresh = await LocalQcow2Repository.open({ root });
    expect((await fresh.importRepository()).map((r) => r.checksum)).toEqual(records.map((r) => r.checksum));
  });

  it('rejects unsafe ids and unknown restore points with typed errors', async () => {
    await expect(repo.createRestorePoint({ vmContextId: '../etc', diskIndex: 0, diskKey: 'x', type: 'full', virtualSize: model.size })).rejects.toBeInstanceOf(
      InvalidRequest,
    );
    await expect(
      repo.createRestorePoint({ vmContextId: 'vm-1', diskIndex: 0, diskKey: 'x', type: 'incremental', virtualSize: model.size }),
    ).rejects.toBeInstanceOf(InvalidRequest);
    await expect(repo.get('nope')).rejects.toBeInstanceOf(RestorePointNotFound);
    await expect(repo.locks.acquire('../../etc', 'mount')).rejects.toBeInstanceOf(InvalidRequest);
    await expect(repo.chain('nope')).rejects.toBeInstanceOf(StorageError);
  });

  it('reports health and space', async () => {
    const h = await repo.health();
    expect(h).toMatchObject({ ok: true, writable: true, toolsAvailable: true, pendingConsolidations: 0 });
    const s = await repo.space();
    expect(s.freeBytes).toBeGreaterThan(0);
    expect(s.usedByRepositoryBytes).toBe([full, i1, i2, d1].reduce((a, b) => a + b.record.allocatedBytes, 0));
  });

  it('detects a flipped byte in an image (tampering) and a corrupted header', async () => {
    const t = await repo.localTarget(i1.record.id);
    await corruptDataByte(t.imagePath, 512 * 1024 + 100);
    const v = await repo.verify(i1.record.id);
    expect(v.ok).toBe(false);
    expect(v.checkClean).toBe(true);
    expect(v.checksumMatches).toBe(false);
    expect(v.problems.join(' ')).toContain('checksum');
    expect((await repo.get(i1.record.id)).lastVerification?.ok).toBe(false);
    // A restore of i2 reads i1: verifying its chain points at the bad image.
    expect((await repo.verifyChain(i2.record.id)).map((x) => [x.restorePointId, x.ok])).toEqual([
      [full.record.id, true],
      [i1.record.id, false],
      [i2.record.id, true],
    ]);

    // Break the qcow2 metadata of the differential: the L1 table offset.
    const td = await repo.localTarget(d1.record.id);
    const fh = await fsp.open(td.imagePath, 'r+');
    const junk = Buffer.alloc(8, 0xff);
    await fh.write(junk, 0, 8, 40); // l1_table_offset
    await fh.close();
    const vd = await repo.verify(d1.record.id);
    expect(vd.ok).toBe(false);
    expect(vd.checkClean).toBe(false);
    expect(vd.problems.join(' ')).not.toContain(root);
  });

  it('handles a disk that grew between backups (incremental larger than its parent)', async () => {
    const api: BackupRepository = repo;
    expect(isLocalRepository(api)).toBe(true);
    const grown = model.size + 4 * MiB;
    const h = await api.createRestorePoint({
      vmContextId: 'vm-grow',
      diskIndex: 1,
      diskKey: '2001',
      type: 'full',
      virtualSize: model.size,
    });
    const t = await repo.localTarget(h.id);
    await writeImage(t.imagePath, [{ pattern: 0x51, off: 0, len: MiB }]);
    await api.commit(h.id, { changeId: 'c1' });
    const h2 = await api.createRestorePoint({
      vmContextId: 'vm-grow',
      diskIndex: 1,
      diskKey: '2001',
      type: 'incremental',
      parentId: h.id,
      virtualSize: grown,
    });
    const t2 = await repo.localTarget(h2.id);
    await writeImage(t2.imagePath, [{ pattern: 0x52, off: model.size + MiB, len: MiB }]);
    const rp2 = await api.commit(h2.id, { changeId: 'c2', metadata: { note: 'grown' } });
    expect(rp2.virtualSize).toBe(grown);
    expect(rp2.metadata).toEqual({ note: 'grown' });
    const expected = Buffer.alloc(grown);
    expected.fill(0x51, 0, MiB);
    expected.fill(0x52, model.size + MiB, model.size + 2 * MiB);
    const ref = path.join(model.refDir, 'grown.raw');
    await fsp.writeFile(ref, expected);
    expect(await compareImages(t2.imagePath, ref, 'qcow2', 'raw')).toBe(true);
    expect((await api.chain(h2.id)).maxVirtualSize).toBe(grown);
    await api.consolidate({ fromId: h.id, toId: h2.id });
    expect(await compareImages((await repo.localTarget(h2.id)).imagePath, ref, 'qcow2', 'raw')).toBe(true);
    expect((await api.verify(h2.id)).ok).toBe(true);
    expect((await api.list({ vmContextId: 'vm-grow', diskIndex: 1 })).map((r) => r.id)).toEqual([h2.id]);
  });

  it('refuses to commit while the image is still exported (qemu image lock), then commits once closed', async () => {
    const h = await repo.createRestorePoint({
      vmContextId: 'vm-nbd',
      diskIndex: 0,
      diskKey: '2000',
      type: 'full',
      virtualSize: model.size,
    });
    const t = await repo.localTarget(h.id);
    const sock = path.join(model.refDir, 'nbd.sock');
    const nbd = await Daemon.start('qemu-nbd', ['-f', 'qcow2', '-t', `--socket=${sock}`, t.imagePath]);
    try {
      await waitFor(async () => !!(await fsp.stat(sock).catch(() => null)), { message: 'qemu-nbd socket' });
      const err = (await repo.commit(h.id, { changeId: 'c' }).catch((e) => e)) as StorageError;
      expect(err).toBeInstanceOf(StorageIoError);
      expect(err.message).toContain('still open');
      expect(err.message).not.toContain(root);
      expect(err.localPath).toBe(t.imagePath);
    } finally {
      await nbd.stop();
    }
    expect((await repo.commit(h.id, { changeId: 'c' })).state).toBe('committed');
  });
});
