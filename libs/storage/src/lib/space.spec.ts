import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CommandError, run } from '@sendense/process';
import { LocalQcow2Repository, type RepositoryEvent } from './local-repository';
import { InsufficientSpace } from './errors';
import { estimateRequiredBytes } from './space';
import { backup, DiskModel, expectAllReadBack, MiB, tempDir, writeImage, type Backup } from '../../test/helpers';

jest.setTimeout(120_000);

/**
 * A repository on a 24 MiB tmpfs: the repository fills up while a restore
 * point is being written. The failure must be clean (no half file, no
 * visible restore point) and the existing chain must stay intact.
 */
describe('a repository that fills up', () => {
  let mnt: string;
  let mounted = false;
  let model: DiskModel;
  let repo: LocalQcow2Repository;
  let full: Backup, i1: Backup;
  const events: RepositoryEvent[] = [];

  beforeAll(async () => {
    mnt = await tempDir('tmpfs');
    await run('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
    mounted = true;
    model = new DiskModel(await tempDir('space-refs'), 32 * MiB);
    repo = await LocalQcow2Repository.open({
      root: path.join(mnt, 'repo'),
      space: { marginBytes: MiB, marginRatio: 0 },
      onEvent: (e) => events.push(e),
    });
    full = await backup(repo, model, { type: 'full', writes: [{ pattern: 0x11, off: 0, len: 8 * MiB }] });
    i1 = await backup(repo, model, { type: 'incremental', parent: full, writes: [{ pattern: 0x22, off: 4 * MiB, len: 2 * MiB }] });
  });

  afterAll(async () => {
    if (mounted) await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
    await fsp.rm(mnt, { recursive: true, force: true });
    await fsp.rm(model.refDir, { recursive: true, force: true });
  });

  const diskDir = () => path.join(mnt, 'repo', 'vm-1', 'disk-0');

  it('refuses a backup up front when the estimate does not fit, with a clear path-free message', async () => {
    const req = {
      vmContextId: 'vm-1',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental' as const,
      parentId: i1.record.id,
      virtualSize: model.size,
      expectedBytes: 30 * MiB,
    };
    const est = await repo.estimateSpace(req);
    expect(est.ok).toBe(false);
    expect(est.requiredBytes).toBe(estimateRequiredBytes(req, { marginBytes: MiB, marginRatio: 0 }));
    const before = await fsp.readdir(diskDir());
    const err = (await repo.createRestorePoint(req).catch((e) => e)) as InsufficientSpace;
    expect(err).toBeInstanceOf(InsufficientSpace);
    expect(err.message).toMatch(/not enough space in the repository for a incremental backup: .* needed, .* available/);
    expect(err.message).not.toContain(mnt);
    expect(err.httpStatus).toBe(507);
    expect(await fsp.readdir(diskDir())).toEqual(before);
  });

  it('fails a restore point cleanly when the file system fills up mid-write, and keeps the chain', async () => {
    // CBT claimed 1 MiB changed, the writer writes 20 MiB: the disk fills up.
    const h = await repo.createRestorePoint({
      vmContextId: 'vm-1',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental',
      parentId: i1.record.id,
      virtualSize: model.size,
      expectedBytes: MiB,
    });
    const t = await repo.localTarget(h.id);
    const werr = (await writeImage(t.imagePath, [{ pattern: 0x33, off: 8 * MiB, len: 20 * MiB }]).catch((e) => e)) as CommandError;
    expect(werr).toBeInstanceOf(CommandError);
    expect(werr.stdout + werr.stderr).toMatch(/No space left on device/);
    await repo.abort(h.id, 'writer failed: ENOSPC');
    expect(events).toContainEqual(expect.objectContaining({ kind: 'aborted', restorePointId: h.id, message: 'writer failed: ENOSPC' }));
    const names = await fsp.readdir(diskDir());
    expect(names.sort()).toEqual(
      [full.record.imageName, full.record.imageName.replace('qcow2', 'json'), i1.record.imageName, i1.record.imageName.replace('qcow2', 'json')].sort(),
    );
    expect((await repo.list()).map((r) => r.id)).toEqual([full.record.id, i1.record.id]);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    for (const b of [full, i1]) expect((await repo.verify(b.record.id)).ok).toBe(true);
  });

  it('fails a commit cleanly when even the sidecar cannot be written', async () => {
    const h = await repo.createRestorePoint({
      vmContextId: 'vm-1',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental',
      parentId: i1.record.id,
      virtualSize: model.size,
      expectedBytes: 64 * 1024,
    });
    const t = await repo.localTarget(h.id);
    await writeImage(t.imagePath, [{ pattern: 0x44, off: 0, len: 64 * 1024 }]);
    const filler = path.join(mnt, 'filler');
    await fsp.writeFile(filler, Buffer.alloc(64 * MiB)).catch(() => undefined); // fills the rest
    const err = await repo.commit(h.id, { changeId: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(InsufficientSpace);
    expect((await repo.list()).map((r) => r.id)).toEqual([full.record.id, i1.record.id]);
    await repo.abort(h.id, 'no space');
    // Consolidation needs room for the merged image and refuses up front.
    await expect(repo.consolidate({ fromId: full.record.id, toId: i1.record.id })).rejects.toBeInstanceOf(InsufficientSpace);
    await fsp.rm(filler);
    expect((await fsp.readdir(diskDir())).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    const health = await repo.health();
    expect(health.writable).toBe(true);
  });
});
