import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { BackupJobRepository } from './backup-jobs.repository';
import { newJob, seedVmAndRepository } from '../testing/repository-seed';

// Real database round trips on a shared, loaded machine.
jest.setTimeout(30_000);

describe('BackupJobRepository', () => {
  let db: TestDatabase;
  let jobs: BackupJobRepository;
  let vmContextId: string;
  let repositoryId: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    jobs = new BackupJobRepository(db.prisma);
    ({ vmContextId, repositoryId } = await seedVmAndRepository(db.prisma));
    await jobs.create(newJob({ id: 'full-1', vmContextId, repositoryId }));
    await jobs.create(newJob({ id: 'incr-1', vmContextId, repositoryId, backupType: 'incremental', parentBackupId: 'full-1', runId: 'run-2' }));
    await jobs.create(
      newJob({ id: 'incr-2', vmContextId, repositoryId, backupType: 'incremental', parentBackupId: 'incr-1', runId: 'run-3', storageNode: 'node-b' }),
    );
  }, 60_000);
  afterAll(() => db?.drop());

  it('creates rows in state running with the sizes as BIGINT', async () => {
    const row = await jobs.findWithRepository('full-1');
    expect(row).toMatchObject({ status: 'running', totalBytes: 100n, virtualSizeBytes: 1024n, compressionEnabled: false, repository: { id: repositoryId } });
    expect(row!.startedAt).toBeInstanceOf(Date);
    expect(await jobs.find('nope')).toBeNull();
  });

  it('walks a chain oldest first and lists only completed dependents', async () => {
    expect(await jobs.chainIds((await jobs.find('incr-2'))!)).toEqual(['full-1', 'incr-1', 'incr-2']);
    expect(await jobs.completedDependents('full-1')).toEqual([]);
    await db.prisma.backupJob.update({ where: { id: 'incr-1' }, data: { status: 'completed', allocatedBytes: 7n } });
    expect(await jobs.completedDependents('full-1')).toEqual(['incr-1']);
    expect((await jobs.listByIds(['incr-2', 'gone', 'full-1'])).map((r) => r.id)).toEqual(['incr-2', 'full-1']);
    expect(await jobs.usedBytes(repositoryId)).toBe(7n);
  });

  it('selects running rows by run or node, pages and lists disks', async () => {
    expect((await jobs.running({ storageNode: 'node-b' })).map((r) => r.id)).toEqual(['incr-2']);
    expect((await jobs.running({ runId: 'run-1' })).map((r) => r.id)).toEqual(['full-1']);
    const p = await jobs.page({ vmContextId, status: 'running' }, { limit: 1, offset: 0 });
    expect(p.total).toBe(2);
    expect(p.rows).toHaveLength(1);
    expect(await jobs.disksIn(repositoryId)).toEqual([{ vmContextId, diskId: 0 }]);
    expect((await jobs.listByRun('run-2')).map((r) => r.id)).toEqual(['incr-1']);
  });

  it('records progress, end states and verification; deletes only rows that never completed', async () => {
    await jobs.saveProgress('full-1', { phase: 'copying', bytesDone: 5 });
    expect((await jobs.find('full-1'))!.progress).toEqual({ phase: 'copying', bytesDone: 5 });
    await jobs.markEnded('full-1', 'failed', 'x'.repeat(70_000));
    const failed = (await jobs.find('full-1'))!;
    expect(failed.status).toBe('failed');
    expect(failed.errorMessage).toHaveLength(60_000);
    await jobs.recordVerification('incr-1', new Date('2026-01-01T00:00:00Z'), false);
    expect((await jobs.find('incr-1'))!.verifyStatus).toBe('failed');
    expect(await jobs.deleteUnlessCompleted('incr-1')).toBe(0);
    expect(await jobs.deleteUnlessCompleted('incr-2')).toBe(1);
    expect(await jobs.find('incr-2')).toBeNull();
  });
});
