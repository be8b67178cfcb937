import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedBackup, seedVm } from './gateway-seed.spec-helper';
import { NbdExportRepository } from './nbd-exports.repository';
import { RestoreMountRepository } from './restore-mounts.repository';

describe('restore points held by exports and mounts, per repository', () => {
  let db: TestDatabase;
  let exportsRepo: NbdExportRepository;
  let mounts: RestoreMountRepository;
  let a: { contextId: string; repositoryId: string };
  let b: { contextId: string; repositoryId: string };
  let a1: string;
  let a2: string;
  let b1: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    exportsRepo = new NbdExportRepository(db.prisma);
    mounts = new RestoreMountRepository(db.prisma);
    a = await seedVm(db.prisma, 'vm-a');
    b = await seedVm(db.prisma, 'vm-b');
    a1 = await seedBackup(db.prisma, a, { runId: 'ra1' });
    a2 = await seedBackup(db.prisma, a, { runId: 'ra2' });
    b1 = await seedBackup(db.prisma, b, { runId: 'rb1' });
  }, 60_000);
  afterAll(() => db?.drop());

  const exportRow = (name: string, restorePointId: string | null) =>
    db.prisma.nbdExport.create({
      data: { name, kind: restorePointId ? 'restore' : 'target', server: 'qemu-nbd', filePath: `/srv/${name}.qcow2`, host: '127.0.0.1', port: 10809, nodeName: 'n1', restorePointId, state: 'active' },
    });

  it('names only the restore points of the repository asked about, each once', async () => {
    await exportRow('e1', a1);
    await exportRow('e2', a1);
    await exportRow('e3', b1);
    await exportRow('e4', null);
    // An export whose restore point row is gone already counts for no repository.
    await exportRow('e5', 'no-such-backup');
    expect(await exportsRepo.servedRestorePoints(a.repositoryId)).toEqual([a1]);
    expect((await exportsRepo.servedRestorePoints(b.repositoryId)).sort()).toEqual([b1]);
    expect(await exportsRepo.servedRestorePoints(a.repositoryId, a1)).toEqual([a1]);
    expect(await exportsRepo.servedRestorePoints(a.repositoryId, a2)).toEqual([]);
    expect(await exportsRepo.servedRestorePoints(a.repositoryId, b1)).toEqual([]);
  });

  it('mounts hold their restore point only while mounting, mounted or unmounting', async () => {
    await mounts.createPending({ id: 'm-a2', backupId: a2, nodeName: 'n2' });
    await mounts.createPending({ id: 'm-b1', backupId: b1, nodeName: 'n1' });
    expect(await mounts.heldInRepository(a.repositoryId)).toEqual([a2]);
    await db.prisma.restoreMount.update({ where: { id: 'm-a2' }, data: { state: 'failed' } });
    expect(await mounts.heldInRepository(a.repositoryId)).toEqual([]);
    expect(await mounts.heldInRepository(b.repositoryId)).toEqual([b1]);
  });
});
