import { VSphereClient } from './client';
import { InvalidLoginError, MethodNotFoundError, NotFoundError, TaskFailedError, TransportError } from './errors';
import { moRefEl, toMoRef } from './xml';
import { startStandIn, type StandIn } from '../testing/stand-in';
import { scratchDir } from '../testing/test-env';

// The unmodified simulator (`--plain`): govmomi's own inventory and
// behaviour, no harness code in the request path.

describe('VSphereClient against the unmodified simulator', () => {
  const scratch = scratchDir('vsphere-sim');
  let sim: StandIn;
  let client: VSphereClient;

  beforeAll(async () => {
    sim = await startStandIn({ stateDir: scratch.dir, plain: true, sessionIdleTimeoutMs: 1000 });
    client = await VSphereClient.connect({ url: sim.url, username: sim.username, password: sim.password, tls: { insecure: true } });
  }, 240000);

  afterAll(async () => {
    await client?.logout();
    await sim?.stop();
    scratch.cleanup();
  });

  it('reads the service content of a vCenter', () => {
    expect(client.serviceContent.about.apiType).toBe('VirtualCenter');
    expect(client.serviceContent.rootFolder.type).toBe('Folder');
    expect(client.serviceContent.propertyCollector.type).toBe('PropertyCollector');
  });

  it('refuses the self-signed certificate unless told to accept it', async () => {
    const opts = { url: sim.url, username: sim.username, password: sim.password };
    await expect(VSphereClient.connect(opts)).rejects.toBeInstanceOf(TransportError);
    await expect(VSphereClient.connect({ ...opts, tls: { thumbprint: 'AA'.repeat(20) } })).rejects.toThrow(/thumbprint/);
    await expect(VSphereClient.connect({ ...opts, tls: { thumbprint: 'AA' } })).rejects.toThrow(/SHA-1 or SHA-256/);
    const pinned = await VSphereClient.connect({ ...opts, tls: { thumbprint: sim.thumbprint.toLowerCase() } });
    expect(await pinned.currentTime()).toBeInstanceOf(Date);
    await pinned.logout();
  });

  it('reports a wrong password as InvalidLogin', async () => {
    const err = await VSphereClient.connect({ url: sim.url, username: sim.username, password: 'wrong', tls: { insecure: true } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidLoginError);
    expect((err as InvalidLoginError).faultType).toBe('InvalidLogin');
    expect((err as InvalidLoginError).faultText).toBe('Login failure'); // the simulator's wording
  });

  it('lists and finds the default VMs with their disks', async () => {
    const vms = await client.listVms();
    expect(vms.map((v) => v.name)).toEqual(expect.arrayContaining(['DC0_H0_VM0', 'DC0_H0_VM1', 'DC0_C0_RP0_VM0']));
    const vm = await client.findVm({ name: 'DC0_H0_VM0' });
    expect(vm.powerState).toBe('poweredOn');
    expect(vm.disks).toHaveLength(1);
    expect(vm.disks[0]).toMatchObject({ capacityBytes: 1024 * 1024, backingType: 'VirtualDiskFlatVer2BackingInfo' });
    expect(vm.disks[0].fileName).toMatch(/^\[LocalDS_0\] DC0_H0_VM0\/disk1\.vmdk$/);
    expect(vm.disks[0].changeId).toBeUndefined();
    expect((await client.findVm({ moref: vm.ref.value })).name).toBe('DC0_H0_VM0');
    expect((await client.findVm({ instanceUuid: (vm.instanceUuid as string).toUpperCase() })).ref).toEqual(vm.ref);
  });

  it('raises NotFound for unknown names, UUIDs and managed object ids', async () => {
    await expect(client.findVm({ name: 'no-such-vm' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(client.findVm({ instanceUuid: '00000000-0000-0000-0000-000000000000' })).rejects.toBeInstanceOf(NotFoundError);
    const err = await client.findVm({ moref: 'vm-99999' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).faultType).toBe('ManagedObjectNotFound');
    expect((err as NotFoundError).faultText).toContain('has already been deleted');
  });

  it('enables CBT and creates and removes snapshots through tasks', async () => {
    const vm = await client.findVm({ name: 'DC0_H0_VM1' });
    expect(vm.changeTrackingEnabled).toBe(false);
    await client.enableChangeTracking(vm.ref);
    expect((await client.getVm(vm.ref)).changeTrackingEnabled).toBe(true);
    const snap = await client.createSnapshot(vm.ref, { name: 'backup', description: 'test <&>', quiesce: true });
    expect(snap.type).toBe('VirtualMachineSnapshot');
    expect((await client.getVm(vm.ref)).currentSnapshot).toEqual(snap);
    expect((await client.getSnapshotDisks(snap)).map((d) => d.key)).toEqual(vm.disks.map((d) => d.key));
    await client.removeSnapshot(snap);
    expect((await client.getVm(vm.ref)).currentSnapshot).toBeUndefined();
    await expect(client.removeSnapshot(snap)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('has no QueryChangedDiskAreas: MethodNotFound (what the harness adds)', async () => {
    const vm = await client.findVm({ name: 'DC0_H0_VM0' });
    const snap = await client.createSnapshot(vm.ref, { name: 'qcda' });
    const err = await client.queryChangedDiskAreasPage(vm.ref, snap, vm.disks[0].key, '*', 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MethodNotFoundError);
    expect((err as MethodNotFoundError).faultText).toContain('QueryChangedDiskAreas');
    await client.removeSnapshot(snap);
  });

  it('turns a failed task into TaskFailedError with the fault', async () => {
    const vm = await client.findVm({ name: 'DC0_H0_VM0' });
    // Powering on a running VM fails inside the task with InvalidPowerState.
    const task = toMoRef(await client.session.call('PowerOnVM_Task', moRefEl('_this', vm.ref)));
    const err = await client.waitForTask(task as { type: string; value: string }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).faultType).toBe('InvalidPowerState');
  });

  it('logs in again when the session expired', async () => {
    const before = client.session.reloginCount;
    await new Promise((r) => setTimeout(r, 2500)); // idle timeout is 1 s
    expect((await client.findVm({ name: 'DC0_H0_VM0' })).name).toBe('DC0_H0_VM0');
    expect(client.session.reloginCount).toBeGreaterThan(before);
  });

  it('talks to a standalone ESXi host as well', async () => {
    const dir = scratchDir('vsphere-esx');
    const esx = await startStandIn({ stateDir: dir.dir, plain: true, esx: true });
    try {
      const c = await VSphereClient.connect({ url: esx.url, username: esx.username, password: esx.password, tls: { thumbprint: esx.thumbprint } });
      expect(c.serviceContent.about.apiType).toBe('HostAgent');
      const vms = await c.listVms();
      expect(vms.length).toBeGreaterThan(0);
      expect(vms[0].disks.length).toBeGreaterThan(0);
      await c.logout();
    } finally {
      await esx.stop();
      dir.cleanup();
    }
  });

  it('keeps a session alive with keepAliveMs', async () => {
    const kept = await VSphereClient.connect({ url: sim.url, username: sim.username, password: sim.password, tls: { insecure: true }, keepAliveMs: 200 });
    await new Promise((r) => setTimeout(r, 2500));
    await kept.currentTime();
    expect(kept.session.reloginCount).toBe(0);
    await kept.logout();
  });
});
