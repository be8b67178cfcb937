import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { AuditLogRepository, type NewAuditEntry } from './audit-log.repository';

jest.setTimeout(30_000);

describe('AuditLogRepository', () => {
  let db: TestDatabase;
  let audit: AuditLogRepository;
  const entry = (over: Partial<NewAuditEntry>): NewAuditEntry => ({
    keyId: 'k1',
    keyName: 'ops',
    role: 'operator',
    method: 'POST',
    path: '/api/v1/policies',
    action: 'policy.create',
    target: null,
    result: 'ok',
    status: 201,
    error: null,
    ip: '127.0.0.1',
    ...over,
  });
  beforeAll(async () => {
    db = await createTestDatabase();
    audit = new AuditLogRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  it('filters by key, action prefix, target and result, newest first, paginated; prunes by age', async () => {
    await audit.append(entry({ target: 'p1' }));
    await audit.append(
      entry({ keyId: 'k2', keyName: 'admin', action: 'policy.delete', method: 'DELETE', target: 'p1', result: 'error', status: 404, error: 'no policy p1' }),
    );
    await audit.append(entry({ action: 'backup.start', target: 'vm-1', path: '/x'.repeat(600) }));
    expect((await audit.page({}, { limit: 10, offset: 0 })).entries.map((e) => e.action)).toEqual(['backup.start', 'policy.delete', 'policy.create']);
    expect((await audit.page({ action: 'policy.' }, { limit: 10, offset: 0 })).total).toBe(2);
    expect((await audit.page({ keyId: 'k2' }, { limit: 10, offset: 0 })).entries[0]).toMatchObject({
      keyName: 'admin',
      result: 'error',
      status: 404,
      error: 'no policy p1',
    });
    expect((await audit.page({ target: 'p1', result: 'ok' }, { limit: 10, offset: 0 })).total).toBe(1);
    const second = await audit.page({}, { limit: 1, offset: 1 });
    expect([second.total, second.entries.map((e) => e.action)]).toEqual([3, ['policy.delete']]);
    expect((await audit.page({ since: new Date(Date.now() + 60_000) }, { limit: 10, offset: 0 })).total).toBe(0);
    await db.prisma.auditLog.updateMany({ where: { action: 'policy.create' }, data: { at: new Date(Date.now() - 40 * 86_400_000) } });
    expect(await audit.prune(new Date(Date.now() - 30 * 86_400_000))).toBe(1);
    expect((await audit.page({}, { limit: 10, offset: 0 })).total).toBe(2);
  });
});
