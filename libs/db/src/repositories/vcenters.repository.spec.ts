import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { VCenterRepository } from './vcenters.repository';

describe('VCenterRepository', () => {
  let db: TestDatabase;
  let repo: VCenterRepository;
  beforeAll(async () => {
    db = await createTestDatabase();
    repo = new VCenterRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  const base = { url: 'https://vc/sdk', username: 'u', passwordEnc: 'sealed', insecure: false, thumbprint: null, diskReader: { kind: 'vddk' } };

  it('creates, finds by id and name, lists by name', async () => {
    const b = await repo.create({ ...base, name: 'vc-b' });
    const a = await repo.create({ ...base, name: 'vc-a', insecure: true, diskReader: { kind: 'standin-nbd', harnessUrl: 'http://h' } });
    expect(b.id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await repo.find(a.id))?.diskReader).toEqual({ kind: 'standin-nbd', harnessUrl: 'http://h' });
    expect((await repo.findByName('vc-b'))?.id).toBe(b.id);
    expect(await repo.findByName('nope')).toBeNull();
    expect((await repo.list()).map((v) => v.name)).toEqual(['vc-a', 'vc-b']);
  });

  it('refuses a second vCenter of the same name', async () => {
    await repo.create({ ...base, name: 'dup' });
    await expect(repo.create({ ...base, name: 'dup' })).rejects.toThrow();
  });
});
