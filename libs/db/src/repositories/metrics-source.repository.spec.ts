import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedBackup, seedVm } from './gateway-seed.spec-helper';
import { MetricsSourceRepository } from './metrics-source.repository';

jest.setTimeout(30_000);

describe('MetricsSourceRepository', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  }, 60_000);
  afterAll(() => db?.drop());

  it('counts backup jobs by status and type, mounts by state, and reads recorded repository space', async () => {
    const m = new MetricsSourceRepository(db.prisma);
    expect(await m.backupJobCounts()).toEqual([]);
    const vm = await seedVm(db.prisma);
    await seedBackup(db.prisma, vm, { runId: 'r1' });
    await seedBackup(db.prisma, vm, { runId: 'r2' });
    await seedBackup(db.prisma, vm, { runId: 'r3', status: 'failed' });
    expect((await m.backupJobCounts()).sort((a, b) => a.status.localeCompare(b.status))).toEqual([
      { status: 'completed', type: 'full', count: 2 },
      { status: 'failed', type: 'full', count: 1 },
    ]);
    await db.prisma.backupRepository.update({ where: { id: vm.repositoryId }, data: { totalSizeBytes: 1000n, availableSizeBytes: 250n } });
    expect(await m.repositorySpace()).toEqual([expect.objectContaining({ totalBytes: 1000, freeBytes: 250, node: 'n1' })]);
    expect(await m.mountCounts()).toEqual([]);
    expect(await m.policyCounts()).toEqual([]);
  });
});
