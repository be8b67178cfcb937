import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { loadGatewaySettings } from '@sendense/config';
import { ApiKeyRepository } from '@sendense/db';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { createGateway } from './bootstrap';

/** The gateway against a real MariaDB (own database) and the real Redis. */
describe('api-gateway', () => {
  let db: TestDatabase;
  let app: INestApplication;
  let admin: string;
  let viewer: string;
  let operator: string;

  const settingsFor = (over: Record<string, string>) =>
    loadGatewaySettings({
      REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      NODE_NAME: 'gw-test',
      LOG_LEVEL: 'error',
      ...over,
    });

  beforeAll(async () => {
    db = await createTestDatabase();
    const keys = new ApiKeyRepository(db.prisma);
    admin = (await keys.create('admin', 'admin')).key;
    viewer = (await keys.create('viewer', 'viewer')).key;
    operator = (await keys.create('op', 'operator')).key;
    app = await createGateway(settingsFor({ DATABASE_URL: db.url }));
    await app.init();
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const http = () => request(app.getHttpServer());

  it('answers health without a key, naming each dependency', async () => {
    const res = await http().get('/api/v1/health').expect(200);
    const byName = Object.fromEntries(res.body.dependencies.map((d: { name: string; ok: boolean }) => [d.name, d.ok]));
    expect(byName).toMatchObject({ database: true, redis: true, queue: true });
    expect(Object.keys(byName)).toEqual(expect.arrayContaining(['nbd-exporter', 'capture-agent', 'restore-service']));
    expect(['ok', 'degraded']).toContain(res.body.status);
  });

  it('401 without a key or with a bad one, as JSON with a message', async () => {
    const none = await http().get('/api/v1/apikeys').expect(401);
    expect(none.body.message).toMatch(/API key is required/);
    const bad = await http().get('/api/v1/apikeys').set('Authorization', 'Bearer sdk_nope').expect(401);
    expect(bad.body.message).toMatch(/invalid or revoked/);
  });

  it('403 for a viewer on a write endpoint; admin may write; X-API-Key works too', async () => {
    const res = await http().post('/api/v1/apikeys').set('Authorization', `Bearer ${viewer}`).send({ name: 'x', role: 'viewer' }).expect(403);
    expect(res.body.message).toMatch(/needs one of the roles admin; your key has viewer/);
    await http().post('/api/v1/apikeys').set('X-API-Key', operator).send({ name: 'x', role: 'viewer' }).expect(403);
    const created = await http().post('/api/v1/apikeys').set('X-API-Key', admin).send({ name: 'new', role: 'viewer' }).expect(201);
    expect(created.body.key).toMatch(/^sdk_/);
    await http().get('/api/v1/apikeys').set('Authorization', `Bearer ${created.body.key}`).expect(403);
  });

  it('validates bodies (400 with the reason) and revokes keys', async () => {
    const res = await http().post('/api/v1/apikeys').set('X-API-Key', admin).send({ name: 'x', role: 'root', extra: 1 }).expect(400);
    expect(JSON.stringify(res.body.message)).toMatch(/role must be one of/);
    const created = await http().post('/api/v1/apikeys').set('X-API-Key', admin).send({ name: 'gone', role: 'admin' }).expect(201);
    await http().delete(`/api/v1/apikeys/${created.body.id}`).set('X-API-Key', admin).expect(204);
    await http().delete(`/api/v1/apikeys/${created.body.id}`).set('X-API-Key', admin).expect(404);
    await http().get('/api/v1/apikeys').set('X-API-Key', created.body.key).expect(401);
  });

  it('docs and Bull Board need a key (Basic auth prompt for browsers)', async () => {
    const docs = await http().get('/api/docs').expect(401);
    expect(docs.headers['www-authenticate']).toMatch(/^Basic/);
    await http().get('/api/docs-json').expect(401);
    await http().get('/admin/queues').expect(401);
    await http().get('/admin/queues').set('X-API-Key', viewer).expect(403);
    await http().get('/admin/queues').auth('anyone', operator).expect(200);
    await http().get('/api/docs/').auth('x', viewer).expect(200);
  });

  it('the OpenAPI document lists every endpoint with its security and error answers', async () => {
    const res = await http().get('/api/docs-json').set('X-API-Key', viewer).expect(200);
    const paths = res.body.paths as Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
    const ops = Object.entries(paths).flatMap(([p, methods]) => Object.entries(methods).map(([m, op]) => ({ p, m, op })));
    expect(ops.length).toBeGreaterThanOrEqual(4);
    for (const { p, m, op } of ops) {
      if (p === '/api/v1/health') {
        expect(op.responses['503']).toBeDefined();
        continue;
      }
      expect({ endpoint: `${m} ${p}`, security: op.security?.length ?? 0 }).toEqual({ endpoint: `${m} ${p}`, security: 2 });
      expect({ endpoint: `${m} ${p}`, has401: '401' in op.responses, has403: '403' in op.responses }).toEqual({
        endpoint: `${m} ${p}`,
        has401: true,
        has403: true,
      });
    }
  });

  it.each([
    ['database', { DATABASE_URL: 'mysql://root@127.0.0.1:1/nothing' }],
    ['redis', { REDIS_URL: 'redis://127.0.0.1:1' }],
  ])(
    '503 naming %s when it is down',
    async (name, over) => {
      const broken = await createGateway(settingsFor({ DATABASE_URL: db.url, ...over }));
      await broken.init();
      try {
        const res = await request(broken.getHttpServer()).get('/api/v1/health').expect(503);
        expect(res.body.status).toBe('down');
        const dep = res.body.dependencies.find((d: { name: string }) => d.name === name);
        expect(dep).toMatchObject({ ok: false, critical: true });
        expect(dep.detail).toBeTruthy();
      } finally {
        await broken.close();
      }
    },
    30_000,
  );
});
