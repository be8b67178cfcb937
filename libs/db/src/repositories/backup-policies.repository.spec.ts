import type { BackupPolicySpec } from '@sendense/contracts';
import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedVm } from './gateway-seed.spec-helper';
import { BackupPolicyRepository } from './backup-policies.repository';

jest.setTimeout(30_000);

describe('BackupPolicyRepository', () => {
  let db: TestDatabase;
  let policies: BackupPolicyRepository;
  let vm: { contextId: string; repositoryId: string };
  const spec = (over: Partial<BackupPolicySpec> = {}): BackupPolicySpec => ({
    name: 'nightly',
    cron: '0 22 * * *',
    timezone: 'Europe/Berlin',
    repositoryId: vm.repositoryId,
    selector: { namePattern: 'web-*' },
    fullEveryDays: 7,
    fullAfterIncrementals: null,
    syntheticFull: false,
    retention: { keepLast: 3 },
    windowEnd: '06:00',
    concurrency: 2,
    maxAgeHours: 26,
    ...over,
  });

  beforeAll(async () => {
    db = await createTestDatabase();
    policies = new BackupPolicyRepository(db.prisma);
    vm = await seedVm(db.prisma, 'web-1');
  }, 60_000);
  afterAll(() => db?.drop());

  it('stores a policy and reads it back by id or name; pause and a null retention update it', async () => {
    const p = await policies.create(spec());
    expect(p).toMatchObject({ name: 'nightly', selector: { namePattern: 'web-*' }, retention: { keepLast: 3 }, paused: false, windowEnd: '06:00' });
    expect((await policies.findByIdOrName('nightly'))?.id).toBe(p.id);
    expect((await policies.findByIdOrName(p.id))?.name).toBe('nightly');
    const u = await policies.update(p.id, { paused: true, retention: null });
    expect(u).toMatchObject({ paused: true, retention: null, cron: '0 22 * * *' });
    expect(await policies.update('nope', { paused: true })).toBeNull();
    await expect(policies.create(spec())).rejects.toThrow(/unique|Unique/);
  });

  it('records one run per queue job (a second start of the same slot resumes it) and lists runs newest first', async () => {
    const p = await policies.create(spec({ name: 'runs' }));
    const a = await policies.startRun({ policyId: p.id, queueJobId: 'repeat:policy.x:1', trigger: 'schedule', scheduledFor: new Date(1_000_000) });
    const again = await Promise.all(
      [1, 2].map(() => policies.startRun({ policyId: p.id, queueJobId: 'repeat:policy.x:1', trigger: 'schedule', scheduledFor: null })),
    );
    expect(a.resumed).toBe(false);
    expect(again.map((x) => [x.run.id, x.resumed])).toEqual([
      [a.run.id, true],
      [a.run.id, true],
    ]);
    const vms = [
      {
        vmContextId: vm.contextId,
        vmName: 'web-1',
        runId: 'r1',
        type: 'full' as const,
        reason: 'first',
        status: 'completed' as const,
        bytes: 100,
        durationMs: 5,
        error: null,
      },
      {
        vmContextId: 'c2',
        vmName: 'web-2',
        runId: 'r2',
        type: 'incremental' as const,
        reason: 'x',
        status: 'failed' as const,
        bytes: 20,
        durationMs: 5,
        error: 'boom',
      },
    ];
    const done = await policies.updateRun(a.run.id, { vms, status: 'partial', message: '1 of 2 failed', finished: true });
    expect(done).toMatchObject({ bytesTransferred: 120, status: 'partial', vms });
    expect(done.durationMs).toBeGreaterThanOrEqual(0);
    await new Promise((r) => setTimeout(r, 5));
    const b = await policies.startRun({ policyId: p.id, queueJobId: 'policy-run.x.2', trigger: 'manual', scheduledFor: null });
    const page = await policies.runs(p.id, { limit: 10, offset: 0 });
    expect(page.total).toBe(2);
    expect(page.runs.map((r) => r.id)).toEqual([b.run.id, a.run.id]);
    expect((await policies.lastRun(p.id))?.id).toBe(b.run.id);
    expect(await policies.delete(p.id)).toBe(true);
    expect(await db.prisma.policyRun.count({ where: { policyId: p.id } })).toBe(0);
  });

  it('counts the incrementals since the last completed full of a VM in a repository', async () => {
    const base = {
      vmContextId: vm.contextId,
      vmName: 'web-1',
      diskId: 0,
      repositoryId: vm.repositoryId,
      repositoryType: 'local',
      repositoryPath: 'x',
      status: 'completed' as const,
    };
    expect(await policies.vmBackupState(vm.contextId, vm.repositoryId)).toEqual({ lastFullAt: null, incrementalsSinceFull: 0, lastSuccessAt: null });
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    let n = 0;
    const add = (type: 'full' | 'incremental', at: Date, status: 'completed' | 'failed' = 'completed', runId = `run-${n}`) =>
      db.prisma.backupJob.create({ data: { ...base, id: `b-${n++}`, runId, backupType: type, requestedType: type, status, completedAt: at } });
    await add('incremental', t(1));
    await add('full', t(2));
    await add('incremental', t(3), 'completed', 'two-disks');
    await add('incremental', t(3), 'completed', 'two-disks');
    await add('incremental', t(4));
    await add('incremental', t(5), 'failed');
    expect(await policies.vmBackupState(vm.contextId, vm.repositoryId)).toEqual({ lastFullAt: t(2), incrementalsSinceFull: 2, lastSuccessAt: t(4) });
    expect(await policies.vmBackupState(vm.contextId, 'other')).toEqual({ lastFullAt: null, incrementalsSinceFull: 0, lastSuccessAt: null });
  });
});
