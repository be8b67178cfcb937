import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { VCenterRepository } from './vcenters.repository';
import { newContextId, VmContextRepository, type VmSeen } from './vm-contexts.repository';

describe('VmContextRepository', () => {
  let db: TestDatabase;
  let vms: VmContextRepository;
  let seen: VmSeen;
  beforeAll(async () => {
    db = await createTestDatabase();
    vms = new VmContextRepository(db.prisma);
    const vc = await new VCenterRepository(db.prisma).create({
      name: 'vc',
      url: 'https://vc/sdk',
      username: 'u',
      passwordEnc: 'x',
      insecure: false,
      thumbprint: null,
      diskReader: { kind: 'vddk' },
    });
    seen = { vmName: 'Web 01', vcenterId: vc.id, vcenterHost: 'vc', vmMoref: 'vm-1', instanceUuid: 'uuid-1', cbtEnabled: true };
  }, 60_000);
  afterAll(() => db?.drop());

  it('makes readable context ids', () => {
    expect(newContextId('Web 01 (prod)')).toMatch(/^ctx-web-01-prod--?[0-9a-f]{8}$/);
  });

  it('registers a VM once and keeps its context id when it is seen again (renamed, CBT off)', async () => {
    const first = await vms.registerSeen(seen);
    expect(first).toMatchObject({ vmName: 'Web 01', cbtEnabled: true, cbtState: 'enabled' });
    const again = await vms.registerSeen({ ...seen, vmName: 'web-renamed', cbtEnabled: false });
    expect(again.contextId).toBe(first.contextId);
    expect(again).toMatchObject({ vmName: 'web-renamed', cbtEnabled: false, cbtState: 'enabled' });
    expect(await db.prisma.vmContext.count()).toBe(1);
  });

  it('finds by context id and by name, lists with disks in index order', async () => {
    const other = await vms.registerSeen({ ...seen, vmMoref: 'vm-2', vmName: 'web-renamed', cbtEnabled: false });
    expect(other.cbtState).toBe('disabled');
    expect((await vms.findByName('web-renamed')).length).toBe(2);
    expect(await vms.find('ctx-none')).toBeNull();
    for (const [i, key] of [
      [1, 2001],
      [0, 2000],
    ] as const) {
      await db.prisma.vmDisk.create({
        data: { id: `${other.contextId}-${key}`, vmContextId: other.contextId, diskIndex: i, deviceKey: key, capacityBytes: 1n << 30n },
      });
    }
    const listed = (await vms.listWithDisks()).find((v) => v.contextId === other.contextId)!;
    expect(listed.disks.map((d) => d.diskIndex)).toEqual([0, 1]);
  });

  it('finds a VM for a backup with its vCenter and disks by index, and records what a backup saw', async () => {
    const [vm] = (await vms.listWithDisks()).filter((v) => v.disks.length === 2);
    const got = (await vms.findForBackup(vm!.contextId))!;
    expect(got.vcenter).toMatchObject({ name: 'vc', url: 'https://vc/sdk' });
    expect(got.disks.map((d) => d.diskIndex)).toEqual([0, 1]);
    expect(await vms.findForBackup('ctx-none')).toBeNull();
    await vms.recordBackedUp(vm!.contextId, { vmName: 'web-after-backup', instanceUuid: 'uuid-9' });
    expect(await vms.find(vm!.contextId)).toMatchObject({ vmName: 'web-after-backup', instanceUuid: 'uuid-9', cbtEnabled: true, cbtState: 'enabled' });
  });

  it('imports an inventory VM (context and disks) as vcenter import does; again: same context, disks synced', async () => {
    const vc = { id: seen.vcenterId, url: 'https://vc:443/sdk' };
    const disk = { deviceKey: 2000, label: 'Hard disk 1', capacityBytes: 1 << 20, fileName: '[ds] imp/imp.vmdk' };
    const a = await vms.importSeen(vc, { name: 'imp', moref: 'vm-77', instanceUuid: null, cbtEnabled: false, disks: [disk] });
    expect(a).toMatchObject({ vmName: 'imp', vcenterHost: 'vc', vmMoref: 'vm-77', cbtState: 'disabled' });
    const b = await vms.importSeen(vc, { name: 'imp', moref: 'vm-77', instanceUuid: null, cbtEnabled: false, disks: [disk, { ...disk, deviceKey: 2001 }] });
    expect(b.contextId).toBe(a.contextId);
    const withDisks = (await vms.findWithDisks(a.contextId))!;
    expect(withDisks.disks.map((d) => [d.diskIndex, d.deviceKey])).toEqual([
      [0, 2000],
      [1, 2001],
    ]);
    expect((await vms.findByVCenter(seen.vcenterId)).map((v) => v.vmMoref)).toContain('vm-77');
    expect(await vms.findByVCenter('no-such-vcenter')).toEqual([]);
  });
});
