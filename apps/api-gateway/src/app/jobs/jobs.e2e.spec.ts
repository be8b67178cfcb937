import type { INestApplication } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { Queue } from 'bullmq';
import { loadGatewaySettings } from '@sendense/config';
import { QUEUE_PREFIX, QueueNames } from '@sendense/contracts';
import { ApiKeyRepository, type BackupStatus } from '@sendense/db';
import { createTestDatabase, type TestDatabase } from '@sendense/db/testing';
import { createGateway } from '../bootstrap';

/** GET /api/v1/jobs against a real MariaDB and Redis: a queued run (no worker on this node) and recorded runs. */
describe('GET /api/v1/jobs', () => {
  const node = `gw-jobs-${randomUUID().slice(0, 8)}`;
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  let db: TestDatabase;
  let app: INestApplication;
  let viewer: string;
  let operator: string;
  let dir: string;
  let alpha: string;
  let beta: string;
  let repositoryId: string;

  const http = () => request(app.getHttpServer());

  async function row(vm: { contextId: string; name: string }, runId: string, diskId: number, status: BackupStatus, minute: number, error?: string) {
    await db.prisma.backupJob.create({
      data: {
        id: randomUUID(),
        vmContextId: vm.contextId,
        vmName: vm.name,
        runId,
        diskId,
        backupType: 'full',
        requestedType: 'full',
        status,
        repositoryId,
        repositoryType: 'local',
        repositoryPath: `${vm.contextId}/disk-${diskId}/${runId}.qcow2`,
        bytesTransferred: 1000n,
        totalBytes: 2000n,
        errorMessage: error ?? null,
        createdAt: new Date(Date.UTC(2026, 10, 30, 10, minute)),
        startedAt: new Date(Date.UTC(2026, 10, 30, 10, minute)),
        completedAt: status === 'running' ? null : new Date(Date.UTC(2026, 10, 30, 11, minute)),
      },
    });
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    const keys = new ApiKeyRepository(db.prisma);
    viewer = (await keys.create('viewer', 'viewer')).key;
    operator = (await keys.create('ops', 'operator')).key;
    dir = await mkdtemp(join(tmpdir(), 'gw-jobs-'));
    app = await createGateway(
      loadGatewaySettings({ REDIS_URL: redisUrl, NODE_NAME: node, LOG_LEVEL: 'error', DATABASE_URL: db.url, REPOSITORY_ALLOWED_ROOTS: tmpdir() }),
    );
    await app.init();
    const admin = (await keys.create('admin', 'admin')).key;
    const repo = await http().post('/api/v1/repositories').set('X-API-Key', admin).send({ name: 'local', type: 'local', path: dir }).expect(201);
    repositoryId = repo.body.id;
    alpha = `ctx-alpha-${randomUUID().slice(0, 8)}`;
    beta = `ctx-beta-${randomUUID().slice(0, 8)}`;
    for (const [contextId, vmName] of [
      [alpha, 'alpha'],
      [beta, 'beta'],
    ]) {
      await db.prisma.vmContext.create({ data: { contextId: contextId!, vmName: vmName!, vcenterHost: 'vc', vmMoref: `vm-${vmName}` } });
    }
    const a = { contextId: alpha, name: 'alpha' };
    const b = { contextId: beta, name: 'beta' };
    await row(a, 'run-a1', 0, 'completed', 1);
    await row(a, 'run-a1', 1, 'completed', 1);
    await row(a, 'run-a2', 0, 'failed', 2, 'capture agent: connection refused');
    await row(b, 'run-b1', 0, 'cancelled', 3);
  }, 90_000);

  afterAll(async () => {
    await app?.close();
    const q = new Queue(QueueNames.backup(node), { connection: { url: redisUrl }, prefix: QUEUE_PREFIX });
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('needs a key; a viewer may list', async () => {
    await http().get('/api/v1/jobs').expect(401);
    const res = await http().get('/api/v1/jobs').set('X-API-Key', viewer).expect(200);
    expect(res.body).toMatchObject({ total: 3, offset: 0, limit: 50 });
    expect(res.body.items.map((i: { run_id: string; status: string }) => [i.run_id, i.status])).toEqual([
      ['run-b1', 'cancelled'],
      ['run-a2', 'failed'],
      ['run-a1', 'completed'],
    ]);
    expect(res.body.items[2]).toMatchObject({
      kind: 'backup',
      vm_context_id: alpha,
      vm_name: 'alpha',
      requested_type: 'full',
      repository_id: repositoryId,
      disks: 2,
      bytes_transferred: 2000,
      total_bytes: 4000,
      error: null,
      queued_at: '2026-11-30T10:01:00.000Z',
      finished_at: '2026-11-30T11:01:00.000Z',
    });
    expect(res.body.items[1].error).toBe('capture agent: connection refused');
  });

  it('lists a queued run first, with who asked for it, and filters it by state and VM', async () => {
    const started = await http().post('/api/v1/backup/start').set('X-API-Key', operator).send({ vm_name: 'beta', backup_type: 'full' }).expect(202);
    const runId = started.body.run_id as string;
    const all = await http().get('/api/v1/jobs').set('X-API-Key', viewer).expect(200);
    expect(all.body.total).toBe(4);
    expect(all.body.items[0]).toMatchObject({ run_id: runId, status: 'queued', vm_name: 'beta', vm_context_id: beta, requested_by: 'ops', disks: 0 });
    const queued = await http().get('/api/v1/jobs?state=queued').set('X-API-Key', viewer).expect(200);
    expect(queued.body.items.map((i: { run_id: string }) => i.run_id)).toEqual([runId]);
    const ofBeta = await http().get('/api/v1/jobs?vm=beta').set('X-API-Key', viewer).expect(200);
    expect(ofBeta.body.items.map((i: { run_id: string }) => i.run_id)).toEqual([runId, 'run-b1']);
    const ofAlpha = await http().get(`/api/v1/jobs?vm=${alpha}`).set('X-API-Key', viewer).expect(200);
    expect(ofAlpha.body.items.map((i: { run_id: string }) => i.run_id)).toEqual(['run-a2', 'run-a1']);
    const failed = await http().get('/api/v1/jobs?state=failed&vm=alpha').set('X-API-Key', viewer).expect(200);
    expect({ total: failed.body.total, ids: failed.body.items.map((i: { run_id: string }) => i.run_id) }).toEqual({ total: 1, ids: ['run-a2'] });
  });

  it('pages across queued and recorded runs without gaps or repeats', async () => {
    const seen: string[] = [];
    for (let offset = 0; ; offset += 1) {
      const res = await http().get(`/api/v1/jobs?limit=1&offset=${offset}`).set('X-API-Key', viewer).expect(200);
      if (offset >= res.body.total) {
        expect(res.body.items).toEqual([]);
        break;
      }
      expect(res.body.items).toHaveLength(1);
      seen.push(res.body.items[0].run_id);
    }
    expect(seen).toHaveLength(4);
    expect(new Set(seen).size).toBe(4);
    expect(seen.slice(1)).toEqual(['run-b1', 'run-a2', 'run-a1']);
  });

  it('400 for an unknown state or a bad limit', async () => {
    const bad = await http().get('/api/v1/jobs?state=done').set('X-API-Key', viewer).expect(400);
    expect(JSON.stringify(bad.body.message)).toMatch(/state must be one of/);
    await http().get('/api/v1/jobs?limit=0').set('X-API-Key', viewer).expect(400);
    await http().get('/api/v1/jobs?limit=501').set('X-API-Key', viewer).expect(400);
  });

  it('the feature modules keep the routes: /backup/chain is not taken for a backup id; /jobs/{id} still answers', async () => {
    const chain = await http().get('/api/v1/backup/chain').set('X-API-Key', viewer).expect(400);
    expect(chain.body.message).toMatch(/give vm_name or vm_context_id/);
    await http().get(`/api/v1/jobs/${randomUUID()}`).set('X-API-Key', viewer).expect(404);
  });

  it('a run cancelled while queued reads back as cancelled (not "unknown"), with the event that says so', async () => {
    const started = await http().post('/api/v1/backup/start').set('X-API-Key', operator).send({ vm_name: 'alpha', backup_type: 'full' }).expect(202);
    const runId = started.body.run_id as string;
    const c = await http().post(`/api/v1/jobs/${runId}/cancel`).set('X-API-Key', operator);
    expect(c.body).toMatchObject({ run_id: runId, status: 'cancelled' });
    const s = await http().get(`/api/v1/jobs/${runId}`).set('X-API-Key', viewer).expect(200);
    expect(s.body.status).toBe('cancelled');
    expect(s.body.events.map((e: { message: string }) => e.message)).toContain('cancelled while queued: it never started');
  });

  it('documents typed response schemas (not strings)', async () => {
    const doc = (await http().get('/api/docs-json').set('X-API-Key', viewer).expect(200)).body;
    const ref = (path: string, method: string, status: string) => doc.paths[path][method].responses[status].content?.['application/json']?.schema;
    expect(ref('/api/v1/jobs', 'get', '200')).toEqual({ $ref: '#/components/schemas/JobListDto' });
    expect(Object.keys(doc.components.schemas.JobSummaryDto.properties)).toEqual(
      expect.arrayContaining(['run_id', 'vm_context_id', 'vm_name', 'status', 'queued_at', 'started_at', 'finished_at', 'error']),
    );
    expect(ref('/api/v1/jobs/{runId}', 'get', '200')).toEqual({ $ref: '#/components/schemas/JobStatusDto' });
    expect(ref('/api/v1/backup/chain', 'get', '200')).toEqual({ $ref: '#/components/schemas/VmChainsDto' });
    expect(ref('/api/v1/vms', 'get', '200')).toMatchObject({ type: 'array', items: { $ref: '#/components/schemas/VmDto' } });
    expect(ref('/api/v1/retention/policy', 'put', '200')).toEqual({ $ref: '#/components/schemas/RetentionPolicyResponseDto' });
  });
});
