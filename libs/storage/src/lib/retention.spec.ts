import { promises as fsp } from 'node:fs';
import { LocalQcow2Repository } from './local-repository';
import { applyRetention, planDisk, selectKept } from './retention';
import type { RestorePointRecord, RestorePointType } from './repository';
import { backup, DiskModel, expectAllReadBack, MiB, tempDir, type Backup } from '../../test/helpers';

jest.setTimeout(90_000);

function rec(id: string, type: RestorePointType, parentId: string | null, createdAt: string): RestorePointRecord {
  return {
    schemaVersion: 1,
    id,
    vmContextId: 'vm',
    diskKey: '2000',
    diskIndex: 0,
    type,
    parentId,
    changeId: null,
    virtualSize: 1,
    allocatedBytes: 1,
    imageName: `${id}.qcow2`,
    backingImageName: parentId ? `${parentId}.qcow2` : null,
    checksum: null,
    state: 'committed',
    createdAt,
    committedAt: createdAt,
    lastVerification: null,
    mergedFrom: [],
    metadata: {},
  };
}

describe('retention planning (pure)', () => {
  // One backup a day at noon for 40 days starting Wed 2025-01-01: F then incrementals.
  const days = Array.from({ length: 40 }, (_, i) => new Date(Date.UTC(2025, 0, 1 + i, 12)).toISOString());
  const chain = days.map((d, i) => rec(`r${i}`, i === 0 ? 'full' : 'incremental', i === 0 ? null : `r${i - 1}`, d));

  it('keep-last-N keeps the newest N and merges the rest into the oldest kept', () => {
    const plan = planDisk(chain, { keepLast: 3 });
    expect(plan.keep.map((k) => k.id).sort()).toEqual(['r37', 'r38', 'r39']);
    expect(plan.delete).toEqual([]);
    expect(plan.merge).toEqual([{ fromId: 'r0', toId: 'r37', removedIds: chain.slice(0, 37).map((r) => r.id) }]);
  });

  it('GFS keeps the newest point of each recent day, ISO week and month', () => {
    const kept = selectKept(chain, { daily: 2, weekly: 2, monthly: 2 });
    // days: r39 (Feb 9), r38; weeks: 2025-W06 -> r39 (Sun Feb 9), W05 -> r32 (Sun Feb 2); months: Feb -> r39, Jan -> r30 (Jan 31)
    expect([...kept.keys()].sort()).toEqual(['r30', 'r32', 'r38', 'r39']);
    expect(kept.get('r30')).toEqual(['monthly 2025-01']);
    const plan = planDisk(chain, { daily: 2, weekly: 2, monthly: 2 });
    expect(plan.merge).toEqual([
      { fromId: 'r0', toId: 'r30', removedIds: chain.slice(0, 30).map((r) => r.id) },
      { fromId: 'r31', toId: 'r32', removedIds: ['r31'] },
      { fromId: 'r33', toId: 'r38', removedIds: ['r33', 'r34', 'r35', 'r36', 'r37'] },
    ]);
  });

  it('deletes pruned leaves and keeps a full that several kept differentials need', () => {
    const recs = [
      rec('f', 'full', null, '2025-01-01T00:00:00Z'),
      rec('d1', 'differential', 'f', '2025-01-02T00:00:00Z'),
      rec('d2', 'differential', 'f', '2025-01-03T00:00:00Z'),
      rec('d3', 'differential', 'f', '2025-01-04T00:00:00Z'),
      rec('i1', 'incremental', 'd3', '2025-01-05T00:00:00Z'),
    ];
    const plan = planDisk(recs, { keepLast: 1, daily: 0 });
    expect(plan.delete.sort()).toEqual(['d1', 'd2']);
    expect(plan.merge).toEqual([{ fromId: 'f', toId: 'i1', removedIds: ['f', 'd3'] }]);
    const plan2 = planDisk(recs, { keepLast: 2 });
    // d3 and i1 kept; f still merges into d3 (its only kept branch).
    expect(plan2.merge).toEqual([{ fromId: 'f', toId: 'd3', removedIds: ['f'] }]);
    const withTwoBranches = [...recs.slice(0, 4)];
    const plan3 = planDisk(withTwoBranches, { keepLast: 2 });
    expect(plan3.keep.find((k) => k.id === 'f')?.reasons[0]).toContain('several kept');
    expect(plan3.delete).toEqual(['d1']);
    expect(plan3.merge).toEqual([]);
  });
});

describe('retention applied to a real repository', () => {
  let root: string;
  let model: DiskModel;
  let repo: LocalQcow2Repository;

  beforeAll(async () => {
    root = await tempDir('ret');
    model = new DiskModel(await tempDir('ret-refs'));
    repo = await LocalQcow2Repository.open({ root, space: { marginBytes: 0 } });
  });
  afterAll(async () => {
    await fsp.rm(root, { recursive: true, force: true });
    await fsp.rm(model.refDir, { recursive: true, force: true });
  });

  async function dailyChain(vm: string, n: number): Promise<Backup[]> {
    const out: Backup[] = [];
    for (let i = 0; i < n; i++) {
      out.push(
        await backup(repo, model, {
          vm,
          type: i === 0 ? 'full' : 'incremental',
          parent: out[i - 1],
          createdAt: new Date(Date.UTC(2025, 0, 1 + i * 3, 12)),
          writes: [{ pattern: 0x10 + i, off: (i % 8) * MiB, len: 256 * 1024 }],
        }),
      );
    }
    return out;
  }

  it('keep-last-N: dry run lists, then pruning merges and every kept point reads back', async () => {
    const chain = await dailyChain('vm-k', 5);
    const dry = await applyRetention(repo, { keepLast: 2 }, { vmContextId: 'vm-k', dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.merge).toEqual([{ fromId: chain[0].record.id, toId: chain[3].record.id, removedIds: chain.slice(0, 3).map((b) => b.record.id) }]);
    expect((await repo.list({ vmContextId: 'vm-k' })).length).toBe(5);

    const res = await applyRetention(repo, { keepLast: 2 }, { vmContextId: 'vm-k' });
    expect(res.errors).toEqual([]);
    expect((await repo.list({ vmContextId: 'vm-k' })).map((r) => r.id)).toEqual([chain[3].record.id, chain[4].record.id]);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
  });

  it('GFS: keeps daily/weekly/monthly points, merges the rest, chain still reads back', async () => {
    const chain = await dailyChain('vm-g', 8); // Jan 1,4,7,...,22
    const policy = { daily: 1, weekly: 2, monthly: 1 };
    const dry = await applyRetention(repo, policy, { vmContextId: 'vm-g', dryRun: true });
    const keptIds = dry.keep.map((k) => k.id);
    // newest (Jan 22, Wed W04) is daily+weekly+monthly; W03's newest is Jan 19 (Sun).
    expect(keptIds.sort()).toEqual([chain[6].record.id, chain[7].record.id].sort());
    const res = await applyRetention(repo, policy, { vmContextId: 'vm-g' });
    expect(res.errors).toEqual([]);
    expect((await repo.list({ vmContextId: 'vm-g' })).map((r) => r.id)).toEqual([chain[6].record.id, chain[7].record.id]);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    // Re-applying is a no-op.
    const again = await applyRetention(repo, policy, { vmContextId: 'vm-g' });
    expect(again.delete).toEqual([]);
    expect(again.merge).toEqual([]);
  });

  it('prunes a leaf differential by deleting it and reports busy points as errors', async () => {
    const f = await backup(repo, model, { vm: 'vm-d', type: 'full', writes: [{ pattern: 1, off: 0, len: MiB }] });
    const d1 = await backup(repo, model, { vm: 'vm-d', type: 'differential', parent: f, writes: [{ pattern: 2, off: 0, len: 64 * 1024 }] });
    const d2 = await backup(repo, model, { vm: 'vm-d', type: 'differential', parent: f, writes: [{ pattern: 3, off: MiB, len: 64 * 1024 }] });
    const lock = await repo.locks.acquire(d1.record.id, 'mount');
    const res = await applyRetention(repo, { keepLast: 1 }, { vmContextId: 'vm-d' });
    expect(res.delete).toEqual([d1.record.id]);
    // The mounted d1 is not deleted, and so the merge of f into d2 is refused
    // too (d1 still needs f): pruning never breaks a chain.
    expect(res.errors.map((e) => e.code)).toEqual(['RESTORE_POINT_BUSY', 'DEPENDENT_RESTORE_POINTS']);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
    await lock.release();
    const res2 = await applyRetention(repo, { keepLast: 1 }, { vmContextId: 'vm-d' });
    expect(res2.errors).toEqual([]);
    expect((await repo.list({ vmContextId: 'vm-d' })).map((r) => r.id)).toEqual([d2.record.id]);
    expect(await expectAllReadBack(repo, model)).toEqual([]);
  });
});
