import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { BackupChainRepository, chainRow, type ChainPoint, type ChainSource } from './backup-chains.repository';
import { BackupJobRepository } from './backup-jobs.repository';
import { newJob, seedVmAndRepository } from '../testing/repository-seed';

function point(id: string, parentId: string | null, over: Partial<ChainPoint> = {}): ChainPoint {
  return {
    id,
    type: parentId ? 'incremental' : 'full',
    parentId,
    changeId: `cid-${id}`,
    allocatedBytes: 10,
    virtualSize: 1024,
    checksum: `sha:${id}`,
    createdAt: `2026-01-0${id.slice(-1)}T00:00:00Z`,
    lastVerification: null,
    ...over,
  };
}

/** A repository's answer held in memory: the points a disk directory would list. */
function source(points: ChainPoint[]): ChainSource {
  return {
    list: async () => points,
    chain: async (id) => {
      const out: ChainPoint[] = [];
      for (let p = points.find((x) => x.id === id); p; p = points.find((x) => x.id === p!.parentId)) out.unshift(p);
      return { restorePoints: out };
    },
  };
}

// Real database round trips on a shared, loaded machine.
jest.setTimeout(30_000);

describe('BackupChainRepository', () => {
  let db: TestDatabase;
  let chains: BackupChainRepository;
  let jobs: BackupJobRepository;
  let seed: Awaited<ReturnType<typeof seedVmAndRepository>>;
  beforeAll(async () => {
    db = await createTestDatabase();
    chains = new BackupChainRepository(db.prisma);
    jobs = new BackupJobRepository(db.prisma);
    seed = await seedVmAndRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  const commit = (id: string, chain: ChainPoint[]) =>
    chains.recordCommit({
      backupId: id,
      vmContextId: seed.vmContextId,
      diskIndex: 0,
      vmDiskId: seed.vmDiskId,
      changeId: `cid-${id}`,
      bytesTransferred: 50,
      bytesSkippedZero: 3,
      bytesTotal: 60,
      allocatedBytes: 10,
      virtualSize: 2048,
      checksum: `sha:${id}`,
      disk: { capacityBytes: 2048, label: 'Hard disk 1', fileName: '[ds] a.vmdk' },
      chain,
    });

  it('derives the chain columns and refuses an empty chain', () => {
    expect(chainRow([point('b1', null), point('b2', 'b1')])).toEqual({ fullBackupId: 'b1', latestBackupId: 'b2', totalBackups: 2, totalSizeBytes: 20n });
    expect(() => chainRow([])).toThrow(/at least one/);
  });

  it('records a commit: row completed, disk pointing at it, chain upserted', async () => {
    await jobs.create(newJob({ id: 'b1', vmContextId: seed.vmContextId, repositoryId: seed.repositoryId }));
    await commit('b1', [point('b1', null)]);
    await jobs.create(newJob({ id: 'b2', vmContextId: seed.vmContextId, repositoryId: seed.repositoryId, parentBackupId: 'b1', backupType: 'incremental' }));
    await commit('b2', [point('b1', null), point('b2', 'b1')]);
    expect(await jobs.find('b2')).toMatchObject({
      status: 'completed',
      changeId: 'cid-b2',
      allocatedBytes: 10n,
      virtualSizeBytes: 2048n,
      progress: { phase: 'done', bytesDone: 50, bytesTotal: 60, bytesSkippedZero: 3 },
    });
    expect(await db.prisma.vmDisk.findUnique({ where: { id: seed.vmDiskId } })).toMatchObject({
      lastBackupId: 'b2',
      lastChangeId: 'cid-b2',
      capacityBytes: 2048n,
      label: 'Hard disk 1',
    });
    expect(await chains.find(seed.vmContextId, 0)).toMatchObject({ id: 'chain-b1', fullBackupId: 'b1', latestBackupId: 'b2', totalBackups: 2 });
    expect((await chains.listForVm(seed.vmContextId)).map((c) => c.diskId)).toEqual([0]);
  });

  it('records the CBT audit of a commit when one ran, and leaves the columns alone when none did', async () => {
    await jobs.create(newJob({ id: 'b2a', vmContextId: seed.vmContextId, repositoryId: seed.repositoryId, parentBackupId: 'b2', backupType: 'incremental' }));
    await chains.recordCommit({
      backupId: 'b2a',
      vmContextId: seed.vmContextId,
      diskIndex: 0,
      vmDiskId: seed.vmDiskId,
      changeId: 'cid-b2a',
      bytesTransferred: 5,
      bytesSkippedZero: 0,
      bytesTotal: 5,
      allocatedBytes: 1,
      virtualSize: 2048,
      checksum: null,
      suspectReason: 'sample 3 differs',
      cbtAudit: { samples: 4, mismatches: 1 },
      disk: { capacityBytes: 2048, label: 'Hard disk 1', fileName: '[ds] a.vmdk' },
      chain: [point('b1', null), point('b2', 'b1'), point('b2a', 'b2')],
    });
    expect(await jobs.find('b2a')).toMatchObject({ status: 'completed', suspectReason: 'sample 3 differs', cbtAudit: { samples: 4, mismatches: 1 } });
    expect(await jobs.find('b2')).toMatchObject({ suspectReason: null, cbtAudit: null });
    // Put the chain back the way the next tests expect it (latest b2).
    await commit('b2', [point('b1', null), point('b2', 'b1')]);
    await db.prisma.backupJob.delete({ where: { id: 'b2a' } });
  });

  it('a failed commit changes nothing (one transaction)', async () => {
    await expect(commit('no-such-row', [point('b1', null)])).rejects.toThrow();
    expect((await chains.find(seed.vmContextId, 0))!.latestBackupId).toBe('b2');
    expect((await db.prisma.vmDisk.findUnique({ where: { id: seed.vmDiskId } }))!.lastBackupId).toBe('b2');
  });

  it('syncDisk follows the repository: merged-away rows removed, survivor updated, disk re-pointed', async () => {
    await jobs.create(newJob({ id: 'b3', vmContextId: seed.vmContextId, repositoryId: seed.repositoryId, parentBackupId: 'b2', backupType: 'incremental' }));
    await commit('b3', [point('b1', null), point('b2', 'b1'), point('b3', 'b2')]);
    // Consolidation merged b1 and b2 into b2 (now a full), then b3 was deleted.
    const after = [point('b2', null, { type: 'full', allocatedBytes: 30, lastVerification: { at: '2026-02-01T00:00:00Z', ok: true } })];
    const r = await chains.syncDisk(source(after), seed.repositoryId, seed.vmContextId, 0);
    expect(r).toEqual({ removed: ['b1', 'b3'].sort(), restorePoints: 1 });
    expect(await jobs.find('b1')).toBeNull();
    expect(await jobs.find('b2')).toMatchObject({ backupType: 'full', parentBackupId: null, allocatedBytes: 30n, verifyStatus: 'ok' });
    expect(await chains.find(seed.vmContextId, 0)).toMatchObject({ fullBackupId: 'b2', latestBackupId: 'b2', totalBackups: 1, totalSizeBytes: 30n });
    expect((await db.prisma.vmDisk.findUnique({ where: { id: seed.vmDiskId } }))!).toMatchObject({ lastBackupId: 'b2', lastChangeId: 'cid-b2' });
  });

  it('syncDisk follows a renamed image: repository_path of the survivor is the repository key of its new name', async () => {
    await jobs.create(
      newJob({
        id: 'b4',
        vmContextId: seed.vmContextId,
        repositoryId: seed.repositoryId,
        backupType: 'incremental',
        parentBackupId: 'b2',
        repositoryPath: 'old/incr-b4.qcow2',
      }),
    );
    await commit('b4', [point('b2', null), point('b4', 'b2')]);
    const src: ChainSource = {
      ...source([point('b4', null, { type: 'full', imageName: 'full-b4.qcow2' })]),
      imageKey: (r) => `${r.vmContextId}/disk-${r.diskIndex}/${r.imageName}`,
    };
    await chains.syncDisk(src, seed.repositoryId, seed.vmContextId, 0);
    expect(await jobs.find('b4')).toMatchObject({ backupType: 'full', repositoryPath: `${seed.vmContextId}/disk-0/full-b4.qcow2` });
  });

  it('syncDisk removes the chain row when the repository has nothing left', async () => {
    await chains.syncDisk(source([]), seed.repositoryId, seed.vmContextId, 0);
    expect(await chains.find(seed.vmContextId, 0)).toBeNull();
    expect(await jobs.find('b2')).toBeNull();
  });
});
