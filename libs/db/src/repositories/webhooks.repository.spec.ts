import { createTestDatabase, type TestDatabase } from '../testing/test-database';
import { WebhookRepository } from './webhooks.repository';

jest.setTimeout(30_000);

describe('WebhookRepository', () => {
  let db: TestDatabase;
  let hooks: WebhookRepository;
  beforeAll(async () => {
    db = await createTestDatabase();
    hooks = new WebhookRepository(db.prisma);
  }, 60_000);
  afterAll(() => db?.drop());

  it('finds the subscribers of an event (no events: all) and records delivery attempts', async () => {
    const all = await hooks.create({ name: 'all', url: 'http://127.0.0.1:1/a', secretEnc: 'sealed', events: [] });
    const failures = await hooks.create({ name: 'failures', url: 'http://127.0.0.1:1/f', secretEnc: 'sealed', events: ['job.failed'] });
    expect((await hooks.subscribers('job.failed')).map((w) => w.name).sort()).toEqual(['all', 'failures']);
    expect((await hooks.subscribers('vm.stale')).map((w) => w.id)).toEqual([all.id]);
    const d = await hooks.addDelivery(failures.id, 'job.failed', { id: 'e1', event: 'job.failed' });
    expect(d).toMatchObject({ status: 'pending', attempts: 0 });
    await hooks.recordAttempt(d.id, { status: 'pending', statusCode: 500, error: 'HTTP 500' });
    const ok = await hooks.recordAttempt(d.id, { status: 'delivered', statusCode: 200, error: null });
    expect(ok).toMatchObject({ status: 'delivered', attempts: 2, lastStatusCode: 200, lastError: null });
    expect(ok.deliveredAt).toBeInstanceOf(Date);
    expect((await hooks.findDelivery(d.id))?.webhook.name).toBe('failures');
    expect((await hooks.deliveries(failures.id, 10)).map((x) => x.id)).toEqual([d.id]);
    expect(await hooks.delete(failures.id)).toBe(true);
    expect(await hooks.findDelivery(d.id)).toBeNull();
  });
});
