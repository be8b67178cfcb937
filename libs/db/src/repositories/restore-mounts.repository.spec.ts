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

  it('caps the mounts one API key holds, counting parallel requests one after the other; a reuse is let through', async () => {
    const key = await db.prisma.apiKey.create({ data: { id: 'key-cap', name: 'cap', prefix: 'sdk_cap1', keyHash: 'x', role: 'operator' } });
    const other = await seedBackup(db.prisma, await seedVm(db.prisma, 'vm-cap'), { runId: 'r-cap' });
    const third = await seedBackup(db.prisma, await seedVm(db.prisma, 'vm-cap3'), { runId: 'r-cap3' });
    // Ten at once for ten different mounts, cap 3: exactly three get a row.
    const ids = Array.from({ length: 10 }, (_, i) => `cap-${i}`);
    const results = await Promise.all(
      ids.map((id, i) => mounts.createPendingWithinCap({ id, backupId: [backupId, other, third][i % 3]!, nodeName: `n-cap-${i}`, apiKeyId: key.id, cap: 3 })),
    );
    expect(results.filter((r) => r.created)).toHaveLength(3);
    expect(results.filter((r) => !r.created)).toEqual(Array.from({ length: 7 }, () => ({ created: false, held: 3 })));
    expect(await db.prisma.restoreMount.count({ where: { apiKeyId: key.id } })).toBe(3);
    // At the cap, a restore point already mounted on that node is let through (the restore-service reuses it).
    const held = await db.prisma.restoreMount.findFirstOrThrow({ where: { apiKeyId: key.id } });
    expect(await mounts.createPendingWithinCap({ id: 'cap-reuse', backupId: held.backupId, nodeName: held.nodeName, apiKeyId: key.id, cap: 3 })).toEqual({
      created: true,
    });
    // Another key is not held back by this one's mounts; cap 0 is no cap.
    expect(await mounts.createPendingWithinCap({ id: 'cap-other-key', backupId, nodeName: 'n-other', apiKeyId: 'another-key', cap: 1 })).toEqual({
      created: true,
    });
    expect(await mounts.createPendingWithinCap({ id: 'cap-none', backupId, nodeName: 'n-none', apiKeyId: key.id, cap: 0 })).toEqual({ created: true });
    await mounts.remove(...ids, 'cap-reuse', 'cap-other-key', 'cap-none');
  });
});
