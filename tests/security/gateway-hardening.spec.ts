import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { QueueNames } from '@sendense/contracts';
import { loadGatewaySettings } from '@sendense/config';
import { gatewayTls, isLoopback } from '../../apps/api-gateway/src/app/bootstrap';
import { send, startTestGateway, type TestGateway } from './support/gateway';

/** A request from another loopback address (127.0.0.x), so per-address counters start fresh. */
function fromAddress(gw: TestGateway, local: string, path: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(gw.url);
    const req = httpRequest({ host: u.hostname, port: u.port, path, localAddress: local, headers: { authorization: `Bearer ${key}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

jest.setTimeout(30_000);

const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('gateway hardening (issue 14, findings 2, 4, 5, 6)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ GATEWAY_EXPENSIVE_CALLS_PER_MINUTE: '3' });
  }, 60_000);
  afterAll(async () => {
    await gw?.close();
  });

  describe('finding 2: Bull Board', () => {
    const board = '/admin/queues/api/queues';
    const maint = () => encodeURIComponent(QueueNames.maintenance(gw.settings.NODE_NAME));

    it('nobody adds jobs from the board, an operator may not act, a viewer may not look', async () => {
      const job = { name: 'DeleteRestorePointJob', data: { backupId: 'x' } };
      for (const key of [gw.keys.operator, gw.keys.admin]) {
        const r = await send(gw, 'POST', `${board}/${maint()}/add`, { key, body: job });
        expect(r.status).toBe(403);
      }
      for (const action of ['pause', 'resume', 'empty', 'obliterate']) {
        const r = await send(gw, 'PUT', `${board}/${maint()}/${action}`, { key: gw.keys.operator });
        expect({ action, status: r.status }).toEqual({ action, status: 403 });
      }
      expect((await send(gw, 'PUT', `${board}/pause`, { key: gw.keys.operator })).status).toBe(403);
      expect((await send(gw, 'GET', board, { key: gw.keys.viewer })).status).toBe(403);
      expect((await send(gw, 'GET', board, { key: gw.keys.operator })).status).toBe(200);
      // Basic auth (what a browser stores) works on the board, and an admin may act.
      const basic = `Basic ${Buffer.from(`x:${gw.keys.admin}`).toString('base64')}`;
      const paused = await send(gw, 'PUT', `${board}/${maint()}/pause`, { headers: { authorization: basic } });
      expect(paused.status).toBe(200);
      expect((await send(gw, 'PUT', `${board}/${maint()}/resume`, { key: gw.keys.admin })).status).toBe(200);
      const q = new Queue(QueueNames.maintenance(gw.settings.NODE_NAME), { connection: { url: redisUrl }, prefix: gw.settings.QUEUE_PREFIX });
      try {
        expect(await q.count()).toBe(0); // nothing was added
      } finally {
        await q.close();
      }
    });

    it('stack traces of failed jobs are shown to admins only', async () => {
      const name = QueueNames.maintenance(gw.settings.NODE_NAME);
      const q = new Queue(name, { connection: { url: redisUrl }, prefix: gw.settings.QUEUE_PREFIX });
      const w = new Worker(
        name,
        async () => {
          throw new Error('boom at /srv/secret/path.ts');
        },
        { connection: { url: redisUrl, maxRetriesPerRequest: null }, prefix: gw.settings.QUEUE_PREFIX },
      );
      try {
        const job = await q.add('VerifyRestorePointJob', { x: 1 }, { attempts: 1 });
        for (let i = 0; i < 100 && !(await job.isFailed()); i++) await new Promise((r) => setTimeout(r, 50));
        expect(await job.isFailed()).toBe(true);
        const path = `/admin/queues/api/queues/${encodeURIComponent(name)}/${job.id}`;
        const asOp = await send(gw, 'GET', path, { key: gw.keys.operator });
        expect(asOp.status).toBe(200);
        expect(asOp.text).not.toMatch(/at .*\.(js|ts):\d+/);
        const asAdmin = await send(gw, 'GET', path, { key: gw.keys.admin });
        expect(asAdmin.text).toMatch(/at .*:\d+/);
        await job.remove();
      } finally {
        await w.close();
        await q.close();
      }
    });
  });

  describe('finding 4: CSRF', () => {
    it('form-urlencoded, multipart and text/plain bodies get 415 (API and Bull Board)', async () => {
      const bodies: [string, string][] = [
        ['application/x-www-form-urlencoded', 'vm_name=x&backup_type=full'],
        ['text/plain', '{"vm_name":"x","backup_type":"full"}'],
        ['multipart/form-data; boundary=b', '--b\r\nContent-Disposition: form-data; name="vm_name"\r\n\r\nx\r\n--b--\r\n'],
      ];
      for (const [type, raw] of bodies) {
        const r = await send(gw, 'POST', '/api/v1/backup/start', { key: gw.keys.admin, raw, headers: { 'content-type': type } });
        expect({ type, status: r.status }).toEqual({ type, status: 415 });
      }
      const add = await send(gw, 'POST', `/admin/queues/api/queues/x/add`, { key: gw.keys.admin, raw: '{}', headers: { 'content-type': 'text/plain' } });
      expect(add.status).toBe(415);
    });

    it('the REST API refuses Basic auth (browsers replay it cross-site); Bearer works', async () => {
      const basic = `Basic ${Buffer.from(`x:${gw.keys.admin}`).toString('base64')}`;
      const r = await send(gw, 'GET', '/api/v1/apikeys', { headers: { authorization: basic } });
      expect(r.status).toBe(401);
      expect(JSON.stringify(r.body)).toMatch(/Basic auth is accepted only by the browser pages/);
      expect((await send(gw, 'GET', '/api/v1/apikeys', { key: gw.keys.admin })).status).toBe(200);
    });

    it('a cross-origin state-changing request is refused; the own origin passes', async () => {
      const evil = await send(gw, 'POST', '/api/v1/apikeys', {
        key: gw.keys.admin,
        body: { name: 'csrf', role: 'admin' },
        headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      });
      expect(evil.status).toBe(403);
      const form = await send(gw, 'POST', '/admin/queues/api/queues/pause', {
        headers: { authorization: `Basic ${Buffer.from(`x:${gw.keys.admin}`).toString('base64')}`, origin: 'null' },
      });
      expect(form.status).toBe(403);
      const own = await send(gw, 'POST', '/api/v1/apikeys', { key: gw.keys.admin, body: { name: 'same', role: 'viewer' }, headers: { origin: gw.url } });
      expect(own.status).toBe(201);
    });
  });

  describe('finding 5: 500s on input', () => {
    it('JSON nested 5000 deep gives 400 before any handler', async () => {
      const deep = '['.repeat(5000) + ']'.repeat(5000);
      for (const path of ['/api/v1/backup/start', '/api/v1/apikeys', '/api/v1/restore/mount', '/api/v1/backup/chain/consolidate']) {
        const r = await send(gw, 'POST', path, { key: gw.keys.admin, raw: `{"a":${deep}}`, headers: { 'content-type': 'application/json' } });
        expect({ path, status: r.status }).toEqual({ path, status: 400 });
        expect(JSON.stringify(r.body)).toMatch(/nested deeper than 32/);
      }
    });

    it.each([['1e308'], ['99999999999999999999999'], ['true'], ['""'], ['-1'], ['1.5'], ['"0x10"']])('disk_id %s gives 400', async (v) => {
      const body = `{"vm_name":"nope","disk_id":${v}}`;
      const post = await send(gw, 'POST', '/api/v1/backup/chain/consolidate', {
        key: gw.keys.admin,
        raw: body,
        headers: { 'content-type': 'application/json' },
      });
      expect(post.status).toBe(400);
      const q = v.startsWith('"') ? JSON.parse(v) : v;
      const get = await send(gw, 'GET', `/api/v1/backup/chain?vm_name=nope&disk_id=${encodeURIComponent(q)}`, { key: gw.keys.admin });
      expect(get.status).toBe(400);
    });

    it('a query parameter given twice or as an array gives 400', async () => {
      for (const qs of ['vm_name=a&vm_name=b', 'vm_name[]=a', 'limit=1&limit=2']) {
        const r = await send(gw, 'GET', `/api/v1/backup/list?${qs}`, { key: gw.keys.admin });
        expect({ qs, status: r.status }).toEqual({ qs, status: 400 });
      }
      const m = '00000000-0000-4000-8000-000000000000';
      const r = await send(gw, 'GET', `/api/v1/restore/${m}/archive?path=p1/etc&path=p1`, { key: gw.keys.admin });
      expect(r.status).toBe(400);
    });
  });

  describe('finding 6: exposure defaults', () => {
    it('helmet headers, no X-Powered-By', async () => {
      const r = await send(gw, 'GET', '/api/v1/health');
      expect(r.headers.get('x-powered-by')).toBeNull();
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(r.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
      const docs = await send(gw, 'GET', '/api/docs/', { headers: { authorization: `Basic ${Buffer.from(`x:${gw.keys.viewer}`).toString('base64')}` } });
      expect(docs.status).toBe(200);
      expect(docs.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    });

    it('failed authentications are throttled per client address (429, even for a valid key, then other addresses unaffected)', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) statuses.push(await fromAddress(gw, '127.0.0.77', '/api/v1/apikeys', `sdk_wrong_${i}`));
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
      expect(statuses.slice(10)).toEqual([429, 429]);
      expect(await fromAddress(gw, '127.0.0.77', '/api/v1/apikeys', gw.keys.admin)).toBe(429);
      expect(await fromAddress(gw, '127.0.0.78', '/api/v1/apikeys', gw.keys.admin)).toBe(200);
    });

    it('expensive calls (backups, mounts) are limited per key', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        statuses.push((await send(gw, 'POST', '/api/v1/restore/mount', { key: gw.keys.operator, body: { backup_id: `b-${i}` } })).status);
      }
      expect(statuses.slice(0, 3)).not.toContain(429);
      expect(statuses[3]).toBe(429);
      // another key is not affected
      expect((await send(gw, 'POST', '/api/v1/restore/mount', { key: gw.keys.admin, body: { backup_id: 'b-x' } })).status).not.toBe(429);
    });

    it('names with control or bidi characters are refused', async () => {
      for (const name of ['evil\u202egnp.exe', 'nul\u0000byte', 'new\nline', 'iso\u2066late']) {
        const r = await send(gw, 'POST', '/api/v1/apikeys', { key: gw.keys.admin, body: { name, role: 'viewer' } });
        expect({ name, status: r.status }).toEqual({ name, status: 400 });
        const repo = await send(gw, 'POST', '/api/v1/repositories', { key: gw.keys.admin, body: { name, type: 'local', path: join(gw.dir, 'r') } });
        expect({ name, status: repo.status }).toEqual({ name, status: 400 });
      }
    });

    it('the gateway listens on loopback unless told otherwise; elsewhere it needs TLS or warns', () => {
      const s = loadGatewaySettings({});
      expect(isLoopback(s.GATEWAY_HOST)).toBe(true);
      expect(gatewayTls(s)).toBeUndefined();
      expect(() => gatewayTls(loadGatewaySettings({ GATEWAY_TLS_CERT: '/nonexistent.pem' }))).toThrow(/must be set together/);
    });
  });
  describe('finding 6: POST /vcenters does not echo what a URL answers (SSRF)', () => {
    it('a URL that answers with a secret page gives a fixed error text', async () => {
      const secret = `internal-only-${Date.now()}`;
      const srv = createServer((_req, res) => {
        res.writeHead(500, { 'content-type': 'text/xml' });
        res.end(`<soapenv:Envelope><soapenv:Body><soapenv:Fault><faultstring>${secret}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>`);
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
      try {
        const port = (srv.address() as { port: number }).port;
        for (const url of [`http://127.0.0.1:${port}/sdk`, `http://127.0.0.1:${port}/anything`]) {
          const r = await send(gw, 'POST', '/api/v1/vcenters', { key: gw.keys.admin, body: { name: `vc-${port}`, url, username: 'u', password: 'p' } });
          expect(r.status).toBe(400);
          expect(r.text).not.toContain(secret);
        }
      } finally {
        srv.close();
      }
    });

    it('operators may not import vCenter VMs (admin manages vCenters)', async () => {
      const r = await send(gw, 'POST', '/api/v1/vcenters/00000000-0000-4000-8000-000000000000/import', { key: gw.keys.operator, body: {} });
      expect(r.status).toBe(403);
    });
  });

  describe('finding 3: repository paths', () => {
    it('/etc/x and a symlink out of the root are refused with nothing created; nesting and sharing are refused', async () => {
      const name = `sec-${process.pid}-${Date.now()}`;
      const r = await send(gw, 'POST', '/api/v1/repositories', { key: gw.keys.admin, body: { name: 'etc', type: 'local', path: `/etc/${name}` } });
      expect(r.status).toBe(400);
      expect(existsSync(`/etc/${name}`)).toBe(false);
      symlinkSync('/tmp', join(gw.dir, 'out'));
      const viaLink = await send(gw, 'POST', '/api/v1/repositories', {
        key: gw.keys.admin,
        body: { name: 'link', type: 'local', path: join(gw.dir, 'out', name) },
      });
      expect(viaLink.status).toBe(400);
      expect(existsSync(join('/tmp', name))).toBe(false);
      const ok = await send(gw, 'POST', '/api/v1/repositories', { key: gw.keys.admin, body: { name: 'first', type: 'local', path: join(gw.dir, 'r1') } });
      expect(ok.status).toBe(201);
      for (const path of [join(gw.dir, 'r1'), join(gw.dir, 'r1/inner'), join(gw.dir, 'r1/')]) {
        const again = await send(gw, 'POST', '/api/v1/repositories', { key: gw.keys.admin, body: { name: `x${path.length}`, type: 'local', path } });
        expect({ path, status: again.status }).toEqual({ path, status: 400 });
      }
      expect(existsSync(join(gw.dir, 'r1/inner'))).toBe(false);
      const del = await send(gw, 'DELETE', `/api/v1/repositories/${(ok.body as { id: string }).id}`, { key: gw.keys.admin });
      expect(del.status).toBe(204);
      expect((await send(gw, 'DELETE', '/api/v1/repositories/first', { key: gw.keys.admin })).status).toBe(404);
    });
  });
});

describe('gateway over TLS', () => {
  let gw: TestGateway | undefined;
  afterAll(async () => {
    await gw?.close();
  });

  it('serves HTTPS with the configured certificate and sends HSTS', async () => {
    const dir = execFileSync('mktemp', ['-d']).toString().trim();
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], {
      stdio: 'ignore',
    });
    gw = await startTestGateway({ GATEWAY_TLS_CERT: cert, GATEWAY_TLS_KEY: key });
    const port = new URL(gw.url).port;
    const res = await new Promise<{ status: number; hsts?: string }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/api/v1/health', rejectUnauthorized: false }, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode ?? 0, hsts: r.headers['strict-transport-security'] as string | undefined }));
      });
      req.on('error', reject);
      req.end();
    });
    expect([200, 503]).toContain(res.status);
    expect(res.hsts).toMatch(/max-age=/);
    execFileSync('rm', ['-rf', dir]);
  }, 60_000);
});
