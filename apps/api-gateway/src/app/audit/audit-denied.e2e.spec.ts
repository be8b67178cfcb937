import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { loadGatewaySettings } from '@sendense/config';
import { ApiKeyRepository } from '@sendense/db';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { waitFor } from '@sendense/process';
import { createGateway } from '../bootstrap';

interface Entry {
  key_id: string | null;
  key_name: string | null;
  role: string | null;
  method: string;
  path: string;
  action: string;
  target: string | null;
  result: string;
  status: number;
  error: string | null;
}

/**
 * Refused requests in the audit log (the gateway on a real MariaDB and
 * Redis): a 401 or 403 on a request that could change something is recorded
 * as 'denied', with who when the key was valid, what and the target, and
 * can be filtered like every other entry. Refused reads are not recorded.
 */
describe('audit log: refused requests', () => {
  let db: TestDatabase;
  let app: INestApplication;
  let admin: string;
  let viewer: { id: string; key: string };

  beforeAll(async () => {
    db = await createTestDatabase();
    const keys = new ApiKeyRepository(db.prisma);
    admin = (await keys.create('audit-admin', 'admin')).key;
    viewer = await keys.create('audit-viewer', 'viewer');
    app = await createGateway(
      loadGatewaySettings({
        REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
        NODE_NAME: 'audit-test',
        LOG_LEVEL: 'error',
        DATABASE_URL: db.url,
      }),
    );
    await app.init();
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const http = () => request(app.getHttpServer());
  const audit = async (query: string) =>
    (await http().get(`/api/v1/audit?${query}`).set('X-API-Key', admin).expect(200)).body as { total: number; items: Entry[] };

  it('records 401 and 403 on writes as denied, with who, what and target, and filters them', async () => {
    // 403: a viewer may not create keys; the key is known, so who is recorded.
    await http().post('/api/v1/apikeys').set('X-API-Key', viewer.key).send({ name: 'sneaky', role: 'admin' }).expect(403);
    // 401: no key, and a key that does not exist; who is unknown.
    await http().delete('/api/v1/policies/pol-123').expect(401);
    await http().post('/api/v1/policies/pol-456/pause').set('Authorization', 'Bearer sdk_not_a_key').expect(401);
    // A refused read is not an action on anything: not recorded.
    await http().get('/api/v1/audit').set('X-API-Key', viewer.key).expect(403);
    // Allowed and refused side by side: the same action name for both.
    await http().post('/api/v1/apikeys').set('X-API-Key', admin).send({ name: 'allowed', role: 'viewer' }).expect(201);

    await waitFor(async () => (await audit('result=denied')).total >= 3, { timeoutMs: 10_000, intervalMs: 100, message: 'three denied entries' });
    const denied = await audit('result=denied');
    expect(denied.total).toBe(3);
    // Newest first.
    expect(denied.items.map((e) => [e.method, e.path, e.action, e.target, e.status, e.key_name])).toEqual([
      ['POST', '/api/v1/policies/pol-456/pause', 'policies.pause', 'pol-456', 401, null],
      ['DELETE', '/api/v1/policies/pol-123', 'policies.delete', 'pol-123', 401, null],
      ['POST', '/api/v1/apikeys', 'keys.create', 'sneaky', 403, 'audit-viewer'],
    ]);
    const forbidden = denied.items[2]!;
    expect(forbidden).toMatchObject({ key_id: viewer.id, role: 'viewer', result: 'denied' });
    expect(forbidden.error).toMatch(/needs one of the roles admin; your key has viewer/);
    expect(denied.items[0]!.error).toMatch(/invalid or revoked/);
    expect(denied.items[1]!.error).toMatch(/API key is required/);

    // Queryable like the rest: by key, by action prefix, by target.
    expect((await audit(`key_id=${viewer.id}`)).items.map((e) => [e.action, e.result])).toEqual([['keys.create', 'denied']]);
    await waitFor(async () => (await audit('action=keys.create')).total >= 2, { timeoutMs: 10_000, intervalMs: 100, message: 'the allowed create' });
    expect((await audit('action=keys.create')).items.map((e) => e.result)).toEqual(['ok', 'denied']);
    expect((await audit('target=pol-123')).items.map((e) => e.result)).toEqual(['denied']);
    await http().get('/api/v1/audit?result=refused').set('X-API-Key', admin).expect(400);
  });
});
