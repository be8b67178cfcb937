import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedVmAndRepository } from '../testing/repository-seed';
import { VmDiskRepository } from './vm-disks.repository';

// Real database round trips on a shared, loaded machine.
jest.setTimeout(30_000);

describe('VmDiskRepository', () => {
  let db: TestDatabase;
  let disks: VmDiskRepository;
  let vmContextId: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    disks = new VmDiskRepository(db.prisma);
    ({ vmContextId } = await seedVmAndRepository(db.prisma));
  }, 60_000);
  afterAll(() => db?.drop());

  it('gives a new disk the index after the highest known one', async () => {
    const d1 = await disks.add(vmContextId, { deviceKey: 2001, label: 'Hard disk 2', capacityBytes: 2048, fileName: '[ds] vm/vm_1.vmdk' });
    expect(d1).toMatchObject({ diskIndex: 1, capacityBytes: 2048n, backingFile: '[ds] vm/vm_1.vmdk' });
    await db.prisma.vmDisk.create({ data: { id: 'gap', vmContextId, diskIndex: 5, deviceKey: 2005, capacityBytes: 1n } });
    expect((await disks.add(vmContextId, { deviceKey: 2006, label: null, capacityBytes: 1, fileName: null })).diskIndex).toBe(6);
  });

  it('syncs an inventory read: known disks renamed, new ones added', async () => {
    await disks.syncSeen(vmContextId, [
      { deviceKey: 2000, label: 'Hard disk 1', capacityBytes: 1024, fileName: '[ds] vm/vm.vmdk' },
      { deviceKey: 2010, label: 'Hard disk 9', capacityBytes: 4096, fileName: null },
    ]);
    expect((await disks.findByIndex(vmContextId, 0))!.label).toBe('Hard disk 1');
    const all = await disks.listForVm(vmContextId);
    expect(all.find((d) => d.deviceKey === 2010)!.diskIndex).toBe(7);
    expect(all.map((d) => d.diskIndex)).toEqual([...all.map((d) => d.diskIndex)].sort((a, b) => a - b));
  });
});
