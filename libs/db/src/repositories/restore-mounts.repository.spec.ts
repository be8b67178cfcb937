import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedBackup, seedVm } from './gateway-seed.spec-helper';
import { RestoreMountRepository } from './restore-mounts.repository';

describe('RestoreMountRepository', () => {
  let db: TestDatabase;
  let mounts: RestoreMountRepository;
  let backupId: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    mounts = new RestoreMountRepository(db.prisma);
    backupId = await seedBackup(db.prisma, await seedVm(db.prisma), { runId: 'r1' });
  }, 60_000);
  afterAll(() => db?.drop());

  it('holds the chain from before mounting until the row is removed', async () => {
    await mounts.createPending({ id: 'm1', backupId, nodeName: 'n1' });
    expect(await mounts.countHolding(backupId)).toBe(1);
    await mounts.markMounted('m1', '/run/sendense/m1', [{ name: 'p1', mounted: true }]);
    const [row] = await mounts.listForNode('n1');
    expect(row).toMatchObject({ id: 'm1', state: 'mounted', mountPath: '/run/sendense/m1', partitions: [{ name: 'p1', mounted: true }] });
    expect(await mounts.listForNode('other')).toEqual([]);
    // A backup under a mount cannot go (ON DELETE RESTRICT).
    await expect(db.prisma.backupJob.delete({ where: { id: backupId } })).rejects.toThrow();
    expect(await mounts.remove('m1')).toBe(1);
    expect(await mounts.remove('m1')).toBe(0);
    expect(await mounts.countHolding(backupId)).toBe(0);
    expect(await mounts.exists('m1')).toBe(false);
  });

  it('records a reused mount, touches it, and removes several at once', async () => {
    await mounts.recordReused({ id: 'm2', backupId, nodeName: 'n1', mountPath: '/run/m2', partitions: [] });
    await db.prisma.restoreMount.update({ where: { id: 'm2' }, data: { lastAccessAt: new Date('2020-01-01T00:00:00Z') } });
    await mounts.recordReused({ id: 'm2', backupId, nodeName: 'n1', mountPath: '/run/m2', partitions: [] });
    const touchedByReuse = await db.prisma.restoreMount.findUniqueOrThrow({ where: { id: 'm2' } });
    expect(touchedByReuse.lastAccessAt.getFullYear()).toBeGreaterThan(2020);
    await db.prisma.restoreMount.update({ where: { id: 'm2' }, data: { lastAccessAt: new Date('2020-01-01T00:00:00Z') } });
    await mounts.touch('m2');
    await mounts.touch('unknown');
    expect((await db.prisma.restoreMount.findUniqueOrThrow({ where: { id: 'm2' } })).lastAccessAt.getFullYear()).toBeGreaterThan(2020);
    await mounts.createPending({ id: 'm3', backupId, nodeName: 'n1' });
    expect(await mounts.exists('m3')).toBe(true);
    expect(await mounts.remove('m2', 'm3', 'gone')).toBe(2);
    expect(await mounts.remove()).toBe(0);
  });
});
