import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { JobEventRepository } from './job-events.repository';

// Real database round trips on a shared, loaded machine.
jest.setTimeout(30_000);

describe('JobEventRepository', () => {
  let db: TestDatabase;
  let events: JobEventRepository;
  beforeAll(async () => {
    db = await createTestDatabase();
    events = new JobEventRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  it('appends events of a run and lists them oldest first, bounded', async () => {
    await events.append({ runId: 'r1', backupJobId: null, level: 'info', phase: 'preparing', message: 'first', data: { a: 1 } });
    await events.append({ runId: 'r1', backupJobId: null, level: 'error', phase: 'cleanup', message: 'y'.repeat(70_000) });
    await events.append({ runId: 'r2', backupJobId: null, level: 'warn', phase: 'x', message: 'other run' });
    const got = await events.listByRun('r1');
    expect(got.map((e) => [e.level, e.phase])).toEqual([
      ['info', 'preparing'],
      ['error', 'cleanup'],
    ]);
    expect(got[0]!.data).toEqual({ a: 1 });
    expect(got[1]!.message).toHaveLength(60_000);
    expect(await events.listByRun('r1', 1)).toHaveLength(1);
  });
});
