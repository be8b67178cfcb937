import { ApiKeyRepository } from './api-keys';
import { createTestDatabase, type TestDatabase } from './testing/test-database';

describe('ApiKeyRepository', () => {
  let db: TestDatabase;
  let keys: ApiKeyRepository;
  beforeAll(async () => {
    db = await createTestDatabase();
    keys = new ApiKeyRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  it('stores only a hash and verifies the key', async () => {
    const k = await keys.create('ops laptop', 'operator');
    expect(k.key).toMatch(/^sdk_[a-z0-9]{12}_/);
    const row = await db.prisma.apiKey.findUniqueOrThrow({ where: { id: k.id } });
    expect(row.keyHash).not.toContain(k.key.split('_')[2]);
    expect(row.keyHash).toMatch(/^scrypt\$/);
    expect(await keys.verify(k.key)).toEqual({ id: k.id, name: 'ops laptop', role: 'operator' });
  });

  it('rejects tampered, malformed and revoked keys', async () => {
    const k = await keys.create('x', 'viewer');
    const tampered = k.key.slice(0, -1) + (k.key.endsWith('A') ? 'B' : 'A');
    expect(await keys.verify(tampered)).toBeNull();
    expect(await keys.verify('nope')).toBeNull();
    expect(await keys.verify(`sdk_aaaaaaaaaaaa_${'x'.repeat(43)}`)).toBeNull();
    expect(await keys.revoke(k.id)).toBe(true);
    expect(await keys.revoke(k.id)).toBe(false);
    expect(await keys.verify(k.key)).toBeNull();
  });

  it('lists keys without secrets and records use', async () => {
    const k = await keys.create('lister', 'admin');
    await keys.touch(k.id);
    const listed = (await keys.list()).find((x) => x.id === k.id)!;
    expect(listed.lastUsedAt).toBeInstanceOf(Date);
    expect(JSON.stringify(listed)).not.toContain('keyHash');
    await expect(keys.create('bad', 'root' as never)).rejects.toThrow(/role must be one of/);
  });
});
