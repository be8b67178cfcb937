import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { BackupRepositoryRepository } from './backup-repositories.repository';

describe('BackupRepositoryRepository', () => {
  let db: TestDatabase;
  let repos: BackupRepositoryRepository;
  beforeAll(async () => {
    db = await createTestDatabase();
    repos = new BackupRepositoryRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  it('creates and finds by id or name; lists by name, optionally enabled only', async () => {
    const b = await repos.create({ name: 'b', repositoryType: 'local', config: { path: '/srv/b' }, storageNode: 'node1' });
    const a = await repos.create({ name: 'a', repositoryType: 'local', config: { path: '/srv/a' }, storageNode: 'node2' });
    await db.prisma.backupRepository.update({ where: { id: a.id }, data: { enabled: false } });
    expect((await repos.findByIdOrName(b.id))?.name).toBe('b');
    expect((await repos.findByIdOrName('a'))?.id).toBe(a.id);
    expect(await repos.findByIdOrName('c')).toBeNull();
    expect((await repos.find(b.id))?.config).toEqual({ path: '/srv/b' });
    expect((await repos.list()).map((r) => r.name)).toEqual(['a', 'b']);
    expect((await repos.list({ enabledOnly: true })).map((r) => r.name)).toEqual(['b']);
    expect((await repos.storageNodes()).sort()).toEqual(['node1', 'node2']);
  });

  it('records measured space (sizes beyond 32 bits)', async () => {
    const r = await repos.create({ name: 'big', repositoryType: 'local', config: { path: '/srv/big' }, storageNode: 'node1' });
    const after = await repos.recordSpace(r.id, { totalBytes: 8 * 2 ** 40, availableBytes: 3 * 2 ** 40 });
    expect(after.totalSizeBytes).toBe(8n * 2n ** 40n);
    expect(after.availableSizeBytes).toBe(3n * 2n ** 40n);
    await expect(repos.create({ name: 'big', repositoryType: 'local', config: {}, storageNode: 'x' })).rejects.toThrow();
  });
});
