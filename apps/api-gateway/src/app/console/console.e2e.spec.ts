import type { INestApplication } from '@nestjs/common';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { loadGatewaySettings } from '@sendense/config';
import { ApiKeyRepository } from '@sendense/db';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { createGateway } from '../bootstrap';
import { ConsoleModule } from './console.module';

/** The console's static files and whoami, next to the API, Swagger and Bull Board. */
describe('gateway serves the web console', () => {
  let db: TestDatabase;
  let app: INestApplication;
  let dir: string;
  let viewer: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sendense-console-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>console</title><div id="root"></div>');
    await writeFile(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
    ConsoleModule.directory = dir;
    db = await createTestDatabase();
    viewer = (await new ApiKeyRepository(db.prisma).create('console viewer', 'viewer')).key;
    app = await createGateway(
      loadGatewaySettings({
        REDIS_URL: process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379',
        NODE_NAME: 'console-test',
        LOG_LEVEL: 'error',
        DATABASE_URL: db.url,
      }),
    );
    await app.init();
  }, 60_000);

  afterAll(async () => {
    ConsoleModule.directory = undefined;
    await app?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const http = () => request(app.getHttpServer());

  it('answers / and page paths with index.html, never cached', async () => {
    for (const path of ['/', '/vms/ctx-1', '/restore/abc?path=p1/etc']) {
      const res = await http().get(path).expect(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.text).toContain('<div id="root">');
    }
  });

  it('serves hashed assets with a long cache, and a missing asset is a 404', async () => {
    const res = await http().get('/assets/index-abc123.js').expect(200);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    await http().get('/assets/index-gone.js').expect(404);
  });

  it('leaves /api, /api/docs and /admin/queues to their own handlers', async () => {
    const missing = await http().get('/api/v1/no-such-endpoint').expect(404);
    expect(missing.headers['content-type']).toMatch(/json/);
    await http().get('/api/docs').expect(401);
    await http().get('/admin/queues').expect(401);
    const health = await http().get('/api/v1/health');
    expect(health.headers['content-type']).toMatch(/json/);
  });

  it('whoami names the key and its role; 401 without a key', async () => {
    const me = await http().get('/api/v1/auth/whoami').set('X-API-Key', viewer).expect(200);
    expect(me.body).toMatchObject({ name: 'console viewer', role: 'viewer' });
    expect(typeof me.body.id).toBe('string');
    const none = await http().get('/api/v1/auth/whoami').expect(401);
    expect(none.body.message).toMatch(/API key is required/);
  });
});
