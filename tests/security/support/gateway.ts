import type { INestApplication } from '@nestjs/common';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewaySettings, type GatewaySettings } from '@sendense/config';
import { ApiKeyRepository } from '@sendense/db';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { createGateway } from '../../../apps/api-gateway/src/app/bootstrap';
import { freePort } from '../../support/system';

/**
 * The gateway in this process against its own MariaDB database and the real
 * Redis, with one key per role. The internal services point at closed ports
 * (so nothing on this host answers for them). Requests go over real HTTP.
 */
export interface TestGateway {
  app: INestApplication;
  db: TestDatabase;
  url: string;
  dir: string;
  settings: GatewaySettings;
  keys: { admin: string; operator: string; viewer: string };
  close(): Promise<void>;
}

export async function startTestGateway(over: Record<string, string> = {}): Promise<TestGateway> {
  const db = await createTestDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'sendense-sec-'));
  const repo = new ApiKeyRepository(db.prisma);
  const keys = {
    admin: (await repo.create('sec admin', 'admin')).key,
    operator: (await repo.create('sec operator', 'operator')).key,
    viewer: (await repo.create('sec viewer', 'viewer')).key,
  };
  const [rs, exp, cap] = [await freePort(), await freePort(), await freePort()];
  const settings = loadGatewaySettings({
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    DATABASE_URL: db.url,
    NODE_NAME: `sec-${process.pid}-${Date.now().toString(36)}`,
    LOG_LEVEL: 'error',
    SENDENSE_SECRET_KEY: 'security-test-secret',
    RESTORE_SERVICE_URL: `http://127.0.0.1:${rs}`,
    NBD_EXPORTER_URL: `tcp://127.0.0.1:${exp}`,
    CAPTURE_AGENT_URL: `tcp://127.0.0.1:${cap}`,
    GATEWAY_EXPENSIVE_CALLS_PER_MINUTE: '1000',
    REPOSITORY_ALLOWED_ROOTS: dir,
    ...over,
  });
  const app = await createGateway(settings);
  await app.listen(0, '127.0.0.1');
  const addr = app.getHttpServer().address() as { port: number };
  return {
    app,
    db,
    dir,
    settings,
    keys,
    url: `http://127.0.0.1:${addr.port}`,
    async close() {
      await app.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: unknown;
}

/** One request; `key` goes in as a Bearer token unless `headers` say otherwise. */
export async function send(
  gw: TestGateway,
  method: string,
  path: string,
  opts: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}) };
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  Object.assign(headers, opts.headers ?? {});
  const res = await fetch(`${gw.url}${path}`, { method, headers, body, redirect: 'manual' });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}
