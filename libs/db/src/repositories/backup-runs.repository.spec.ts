import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { seedBackup, seedVm } from './gateway-seed.spec-helper';
import { BackupRunRepository } from './backup-runs.repository';

describe('BackupRunRepository', () => {
  let db: TestDatabase;
  let runs: BackupRunRepository;
  beforeAll(async () => {
    db = await createTestDatabase();
    runs = new BackupRunRepository(db.prisma);
    const a = { ...(await seedVm(db.prisma, 'alpha')), vmName: 'alpha' };
    const b = { ...(await seedVm(db.prisma, 'beta')), vmName: 'beta' };
    const at = (min: number) => new Date(Date.UTC(2026, 10, 1, 12, min));
    // r1 alpha: two disks, completed; r2 alpha: one disk failed; r3 beta: running; r4 beta: cancelled.
    await seedBackup(db.prisma, a, { runId: 'r1', diskId: 0, createdAt: at(1), bytes: 5_000_000_000 });
    await seedBackup(db.prisma, a, { runId: 'r1', diskId: 1, createdAt: at(1), bytes: 1 });
    await seedBackup(db.prisma, a, { runId: 'r2', diskId: 0, createdAt: at(2), status: 'completed' });
    await seedBackup(db.prisma, a, { runId: 'r2', diskId: 1, createdAt: at(2), status: 'failed', error: 'nbd: connection reset' });
    await seedBackup(db.prisma, b, { runId: 'r3', diskId: 0, createdAt: at(3), status: 'running' });
    await seedBackup(db.prisma, b, { runId: 'r3', diskId: 1, createdAt: at(3), status: 'failed' });
    await seedBackup(db.prisma, b, { runId: 'r4', diskId: 0, createdAt: at(4), status: 'cancelled' });
  }, 60_000);
  afterAll(() => db?.drop());

  it('sums each run over its disks, newest first, with the state its disks say', async () => {
    const { total, runs: page } = await runs.page({}, { limit: 10, offset: 0 });
    expect(total).toBe(4);
    expect(page.map((r) => [r.runId, r.state])).toEqual([
      ['r4', 'cancelled'],
      ['r3', 'running'],
      ['r2', 'failed'],
      ['r1', 'completed'],
    ]);
    const r1 = page.find((r) => r.runId === 'r1')!;
    expect(r1).toMatchObject({ vmName: 'alpha', disks: 2, bytesTransferred: 5_000_000_001, requestedType: 'incremental', errorMessage: null });
    expect(r1.completedAt).toBeInstanceOf(Date);
    expect(page.find((r) => r.runId === 'r2')!.errorMessage).toBe('nbd: connection reset');
    expect(page.find((r) => r.runId === 'r3')!.completedAt).toBeNull();
  });

  it('filters by state and by VM name or context id, pages, and leaves out given runs', async () => {
    expect((await runs.page({ state: 'failed' }, { limit: 10, offset: 0 })).runs.map((r) => r.runId)).toEqual(['r2']);
    const beta = await runs.page({ vm: 'beta' }, { limit: 10, offset: 0 });
    expect(beta.runs.map((r) => r.runId)).toEqual(['r4', 'r3']);
    const byCtx = await runs.page({ vm: beta.runs[0]!.vmContextId }, { limit: 10, offset: 0 });
    expect(byCtx.total).toBe(2);
    const second = await runs.page({}, { limit: 2, offset: 2 });
    expect({ total: second.total, ids: second.runs.map((r) => r.runId) }).toEqual({ total: 4, ids: ['r2', 'r1'] });
    expect((await runs.page({ excludeRunIds: ['r4', 'r1'] }, { limit: 10, offset: 0 })).runs.map((r) => r.runId)).toEqual(['r3', 'r2']);
    expect((await runs.page({ runIds: ['r1', 'r3', 'nope'] }, { limit: 10, offset: 0 })).runs.map((r) => r.runId)).toEqual(['r3', 'r1']);
    expect((await runs.page({ runIds: [] }, { limit: 10, offset: 0 })).total).toBe(0);
    expect((await runs.page({ vm: "x' OR '1'='1" }, { limit: 10, offset: 0 })).total).toBe(0);
  });
});
