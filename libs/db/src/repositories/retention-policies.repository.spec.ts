import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedVm } from './gateway-seed.spec-helper';
import { RetentionPolicyRepository } from './retention-policies.repository';

describe('RetentionPolicyRepository', () => {
  let db: TestDatabase;
  let policies: RetentionPolicyRepository;
  let vm: { contextId: string; repositoryId: string };
  beforeAll(async () => {
    db = await createTestDatabase();
    policies = new RetentionPolicyRepository(db.prisma);
    vm = await seedVm(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  it("stores the contracts shape in the keep_* columns and replaces a scope's policy", async () => {
    const p = await policies.set({ repositoryId: vm.repositoryId, vmContextId: null }, { keepLast: 3, weekly: 2 });
    expect(p).toMatchObject({ repositoryId: vm.repositoryId, vmContextId: null, keepLast: 3, daily: 0, weekly: 2, monthly: 0 });
    const row = await db.prisma.retentionPolicy.findUniqueOrThrow({ where: { id: p.id } });
    expect(row).toMatchObject({ keepLast: 3, keepDaily: 0, keepWeekly: 2, keepMonthly: 0 });
    const replaced = await policies.set({ repositoryId: vm.repositoryId, vmContextId: null }, { daily: 7, monthly: 12 });
    expect(replaced).toMatchObject({ id: p.id, keepLast: 0, daily: 7, weekly: 0, monthly: 12 });
    expect(await db.prisma.retentionPolicy.count()).toBe(1);
  });

  it("the VM's own policy wins over the repository's; none for an unknown repository", async () => {
    expect((await policies.effective(vm.repositoryId, vm.contextId))?.vmContextId).toBeNull();
    const own = await policies.set({ repositoryId: vm.repositoryId, vmContextId: vm.contextId }, { keepLast: 1 });
    expect(await policies.effective(vm.repositoryId, vm.contextId)).toMatchObject({ id: own.id, keepLast: 1 });
    expect((await policies.effective(vm.repositoryId))?.vmContextId).toBeNull();
    expect(await policies.effective('no-such-repository')).toBeNull();
    // Both rows may share a created_at (same millisecond): compare without order.
    expect((await policies.list()).map((x) => x.vmContextId ?? '').sort()).toEqual(['', vm.contextId].sort());
  });
});
