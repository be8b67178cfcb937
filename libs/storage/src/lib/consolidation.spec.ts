import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LocalQcow2Repository } from './local-repository';
import { ConsolidationRefused, DependentRestorePoints, InvalidRequest, RestorePointBusy } from './errors';
import { backup, DiskModel, expectAllReadBack, MiB, tempDir, type Backup } from '../../test/helpers';

jest.setTimeout(60_000);

/** F <- I1 <- I2 <- I3 <- I4, each incremental overwriting part of the previous data. */
async function buildChain(repo: LocalQcow2Repository, model: DiskModel, vm: string): Promise<Backup[]> {
  const f = await backup(repo, model, {
    vm,
    type: 'full',
    writes: [
      { pattern: 0x10, off: 0, len: 3 * MiB },
      { pattern: 0x11, off: 5 * MiB, len: 1 * MiB },
    ],
  });
  const out = [f];
  const incs = [
    [{ pattern: 0x20, off: 1 * MiB, len: 256 * 1024 }],
    [
      { pattern: null, off: 5 * MiB, len: 512 * 1024 },
      { pattern: 0x30, off: 7 * MiB, len: 64 * 1024 },
    ],
    [{ pattern: 0x40, off: 1 * MiB + 128 * 1024, len: 256 * 1024 }],
    [{ pattern: 0x50, off: 2 * MiB, len: 1 * MiB }],
  ];
  for (const writes of incs) out.push(await backup(repo, model, { vm, type: 'incremental', parent: out[out.length - 1], writes }));
  return out;
}

describe('consolidation on real qcow2 chains', () => {
  let root: string;
  let repo: LocalQcow2Repository;
  let model: DiskModel;

  beforeAll(async () => {
    root = await tempDir('cons');
    model = new DiskModel(await tempDir('cons-refs'));
    repo = await LocalQcow2Repository.open({ root, space: { marginBytes: 0 } });
  });

  afterAll(async () => {
    await fsp.rm(root, { recursive: true, force: true });
    await fsp.rm(model.refDir, { recursive: true, force: true });
  });

  it('merges the oldest incrementals into the full; every remaining point reads back as before', async () => {
    const [f, i1, i2, i3, i4] = await buildChain(repo, model, 'vm-a');
    const r = await repo.consolidate({ fromId: f.record.id, toId: i2.record.id });
    expect(r).toEqual({ survivorId: i2.record.id, removedIds: [f.record.id, i1.record.id], rebasedIds: [i3.record.id] });
    const left = await repo.list({ vmContextId: 'vm-a' });
    expect(left.map((x) => x.id)).toEqual([i2, i3, i4].map((b) => b.record.id));
    const survivor = await repo.get(i2.record.id);
    expect(survivor).toMatchObject({ type: 'full', parentId: null, backingImageName: null, changeId: i2.record.changeId });
    expect(survivor.imageName).toMatch(/^full-/);
    expect(survivor.mergedFrom).toEqual([f.record.id, i1.record.id]);
    expect((await repo.get(i3.record.id)).backingImageName).toBe(survivor.imageName);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    for (const x of left) expect((await repo.verify(x.id)).ok).toBe(true);
    // Old files are gone; no temp or journal left behind.
    const names = await fsp.readdir(path.join(root, 'vm-a', 'disk-0'));
    expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
    expect(names).not.toContain(f.record.imageName);
    expect(names).not.toContain(i1.record.imageName);
    // The survivor still has dependents, so it is protected like any other.
    await expect(repo.delete(i3.record.id)).rejects.toBeInstanceOf(DependentRestorePoints);
  });

  it('merges a range in the middle of a chain, keeping the parent and the children untouched', async () => {
    const [f, i1, i2, i3, i4] = await buildChain(repo, model, 'vm-b');
    const i4Before = await fsp.readFile(path.join(root, 'vm-b', 'disk-0', i4.record.imageName));
    const r = await repo.consolidate({ fromId: i1.record.id, toId: i3.record.id });
    expect(r.removedIds).toEqual([i1.record.id, i2.record.id]);
    expect(r.rebasedIds).toEqual([]);
    const survivor = await repo.get(i3.record.id);
    expect(survivor).toMatchObject({ type: 'incremental', parentId: f.record.id, backingImageName: f.record.imageName, imageName: i3.record.imageName });
    expect((await repo.list({ vmContextId: 'vm-b' })).map((x) => x.id)).toEqual([f, i3, i4].map((b) => b.record.id));
    // The child's file was not touched at all (same name of its backing).
    expect((await fsp.readFile(path.join(root, 'vm-b', 'disk-0', i4.record.imageName))).equals(i4Before)).toBe(true);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    expect((await repo.verify(i3.record.id)).ok).toBe(true);
  });

  it('refuses to merge away a full that differentials still need, naming them', async () => {
    const f = await backup(repo, model, { vm: 'vm-c', type: 'full', writes: [{ pattern: 0x61, off: 0, len: MiB }] });
    const i1 = await backup(repo, model, { vm: 'vm-c', type: 'incremental', parent: f, writes: [{ pattern: 0x62, off: MiB, len: MiB }] });
    const d1 = await backup(repo, model, { vm: 'vm-c', type: 'differential', parent: f, writes: [{ pattern: 0x63, off: 0, len: 64 * 1024 }] });
    const err = (await repo.consolidate({ fromId: f.record.id, toId: i1.record.id }).catch((e) => e)) as DependentRestorePoints;
    expect(err).toBeInstanceOf(DependentRestorePoints);
    expect(err.dependents.map((d) => d.id)).toEqual([d1.record.id]);
    // A differential merged with its full becomes a full once nothing else needs the full.
    await repo.delete(i1.record.id);
    await repo.consolidate({ fromId: f.record.id, toId: d1.record.id });
    expect(await repo.get(d1.record.id)).toMatchObject({ type: 'full', parentId: null });
    expect(await expectAllReadBack(repo, model)).toEqual([]);
  });

  it('refuses while a restore point involved is mounted or being written', async () => {
    const [f, i1, i2] = await buildChain(repo, model, 'vm-d');
    const locks = await repo.acquireChain(i2.record.id, 'mount');
    const err = (await repo.consolidate({ fromId: f.record.id, toId: i1.record.id }).catch((e) => e)) as RestorePointBusy;
    expect(err).toBeInstanceOf(RestorePointBusy);
    for (const l of locks) await l.release();

    const chainTop = (await repo.list({ vmContextId: 'vm-d' })).at(-1);
    if (!chainTop) throw new Error('empty chain');
    const h = await repo.createRestorePoint({
      vmContextId: 'vm-d',
      diskIndex: 0,
      diskKey: '2000',
      type: 'incremental',
      parentId: chainTop.id,
      virtualSize: model.size,
    });
    await expect(repo.consolidate({ fromId: f.record.id, toId: i1.record.id })).rejects.toBeInstanceOf(RestorePointBusy);
    await expect(repo.consolidate({ fromId: i2.record.id, toId: chainTop.id })).rejects.toBeInstanceOf(ConsolidationRefused);
    await repo.abort(h.id, 'test');
    await expect(repo.consolidate({ fromId: i1.record.id, toId: i1.record.id })).rejects.toBeInstanceOf(InvalidRequest);
    await expect(repo.consolidate({ fromId: i2.record.id, toId: i1.record.id })).rejects.toBeInstanceOf(InvalidRequest);
    // Without the locks it works, and content is intact.
    await repo.consolidate({ fromId: f.record.id, toId: i1.record.id });
    expect(await expectAllReadBack(repo, model)).toEqual([]);
  });
});
