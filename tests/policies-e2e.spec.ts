import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { parsePrometheusText, sampleSum, sampleValue } from '@sendense/metrics/testing';
import { freePort, ROOT, startSystem, waitForJob, type System } from './support/system';

/**
 * Backup policies, webhooks, metrics and the audit log on the whole product
 * (built apps, real MariaDB/Redis, the VMware stand-in):
 * - a webhook receiver gets the signed job.failed event with the job's
 *   error, answering 500 twice first (BullMQ retries with backoff), and the test-send event;
 * - the worker's and the gateway's /metrics parse as Prometheus text and move with a backup;
 * - a one-minute policy runs twice on its own with two workers and two
 *   gateways (once per slot), applies its retention, and shows in the API and the CLI;
 * - everything stopped across two slots gives one catch-up run, not two.
 */

const VM = 'pol-vm';
const CLI = join(ROOT, 'dist/apps/cli/main.js');
const MINUTE = 60_000;

interface Received {
  headers: Record<string, string | string[] | undefined>;
  raw: string;
  body: { id: string; event: string; at: string; data: Record<string, unknown> };
  answered: number;
}
interface Run {
  id: string;
  trigger: string;
  scheduled_for: string | null;
  status: string;
  vms: { vm_name: string; run_id: string | null; type: string; reason: string; status: string; bytes_transferred: number; error: string | null }[];
  bytes_transferred: number;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
}

jest.setTimeout(15 * MINUTE);

describe('policies, webhooks, metrics and audit end to end', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let receiver: Server;
  let hookUrl = '';
  const received: Received[] = [];
  const secret = 'webhook-secret-0123456789';

  const scrape = async (url: string, key?: string) => {
    const res = await fetch(url, key ? { headers: { authorization: `Bearer ${key}` } } : {});
    expect(res.status).toBe(200);
    return parsePrometheusText(await res.text());
  };
  const workerMetrics = () => scrape(`http://127.0.0.1:${sys.metricsPorts['backup-worker']}/metrics`);
  const gatewayMetrics = () => scrape(`${sys.api}/metrics`, sys.adminKey);
  const cli = async (args: string[]) => {
    const r = await run('node', [CLI, ...args], {
      env: { ...sys.env, SENDENSE_API_URL: sys.api, SENDENSE_API_KEY: sys.adminKey, HOME: work },
      okExitCodes: [0, 1, 2, 3, 4, 5, 6],
      timeoutMs: 60_000,
    });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-policies-e2e-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [{ name: VM, disks: [{ sizeMiB: 32, content: { type: 'random', percent: 40, seed: 5 } }] }],
    });
    sys = await startSystem();
    const vc = await sys.call<{ id: string }>('POST', '/api/v1/vcenters', {
      name: 'standin',
      url: standIn.url,
      username: standIn.username,
      password: standIn.password,
      insecure: true,
      disk_reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl },
    });
    expect(vc.status).toBe(201);
    expect((await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: [VM] })).status).toBe(200);
    expect((await sys.call('POST', '/api/v1/repositories', { name: 'local', type: 'local', path: sys.repoDir })).status).toBe(201);

    // The receiver: every job.failed delivery is answered 500 twice, then 200.
    const attempts = new Map<string, number>();
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const body = JSON.parse(raw) as Received['body'];
        const n = (attempts.get(body.id) ?? 0) + 1;
        attempts.set(body.id, n);
        const answered = body.event === 'job.failed' && n <= 2 ? 500 : 200;
        received.push({ headers: req.headers, raw, body, answered });
        res.writeHead(answered).end();
      });
    });
    const port = await freePort();
    await new Promise<void>((r) => receiver.listen(port, '127.0.0.1', () => r()));
    hookUrl = `http://127.0.0.1:${port}/hook`;
  }, 5 * MINUTE);

  afterAll(async () => {
    receiver?.close();
    await sys?.stop();
    await standIn?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, MINUTE);

  it('sends a signed job.failed event with the error, retried after 500s, and a test event on request', async () => {
    const hook = await sys.call<{ id: string; secret?: string }>('POST', '/api/v1/webhooks', {
      name: 'receiver',
      url: hookUrl,
      secret,
      events: ['job.failed', 'test'],
    });
    expect(hook.status).toBe(201);
    expect(hook.body.secret).toBeUndefined();
    // A VM registered without a vCenter: its backup fails for good at once.
    await sys.db.prisma.vmContext.create({ data: { contextId: 'ctx-ghost', vmName: 'ghost-vm', vcenterHost: 'nowhere.invalid', vmMoref: 'vm-ghost' } });
    const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: 'ghost-vm', backup_type: 'full', repository: 'local' });
    expect(start.status).toBe(202);
    const doc = await waitForJob<{ status: string; error: string | null }>(sys, start.body.run_id, 60_000);
    expect(doc.status).toBe('failed');
    await waitFor(() => received.some((r) => r.body.event === 'job.failed' && r.answered === 200), {
      timeoutMs: 60_000,
      intervalMs: 200,
      message: 'the job.failed event to be delivered',
    });
    const failed = received.filter((r) => r.body.event === 'job.failed');
    // Two 500s, then delivered: one event, three attempts, the same body each time.
    expect(failed.map((r) => r.answered)).toEqual([500, 500, 200]);
    expect(new Set(failed.map((r) => r.raw)).size).toBe(1);
    const ev = failed[0]!;
    expect(ev.body.data).toMatchObject({
      job: { runId: start.body.run_id },
      vm: { contextId: 'ctx-ghost' },
      error: expect.stringContaining('has no vCenter registered'),
    });
    expect(ev.body.data['error']).toBe(doc.error);
    expect(ev.headers['x-sendense-event']).toBe('job.failed');
    const expected = `sha256=${createHmac('sha256', secret).update(ev.raw).digest('hex')}`;
    for (const r of failed) expect(r.headers['x-sendense-signature']).toBe(expected);
    expect(createHmac('sha256', 'another secret').update(ev.raw).digest('hex')).not.toBe(expected.slice(7));
    // Backoff: the retries are apart (2 s, then 4 s).
    const deliveries = await sys.call<{ event: string; status: string; attempts: number; last_status_code: number }[]>(
      'GET',
      `/api/v1/webhooks/${hook.body.id}/deliveries`,
    );
    expect(deliveries.body.find((d) => d.event === 'job.failed')).toMatchObject({ status: 'delivered', attempts: 3, last_status_code: 200 });

    const test = await sys.call<{ id: string }>('POST', `/api/v1/webhooks/${hook.body.id}/test`);
    expect(test.status).toBe(202);
    await waitFor(() => received.some((r) => r.body.event === 'test'), { timeoutMs: 30_000, intervalMs: 200, message: 'the test event' });
    const t = received.find((r) => r.body.event === 'test')!;
    expect(t.headers['x-sendense-signature']).toBe(`sha256=${createHmac('sha256', secret).update(t.raw).digest('hex')}`);
    expect(t.headers['x-sendense-delivery']).toBe(test.body.id);
  });

  it('serves Prometheus text on the worker and the gateway whose counters move with a backup', async () => {
    const w0 = await workerMetrics();
    const g0 = await gatewayMetrics();
    expect(w0.get('sendense_backup_jobs_total')?.type).toBe('counter');
    expect(w0.get('sendense_backup_duration_seconds')?.type).toBe('histogram');
    expect(sampleValue(w0, 'sendense_backup_jobs_total', { type: 'full', result: 'failed' })).toBe(1);
    const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: 'full', repository: 'local' });
    expect(start.status).toBe(202);
    expect((await waitForJob<{ status: string }>(sys, start.body.run_id)).status).toBe('completed');
    // The worker counts on the job's completed event: let it land.
    await waitFor(async () => (sampleValue(await workerMetrics(), 'sendense_backup_jobs_total', { type: 'full', result: 'completed' }) ?? 0) === 1, {
      timeoutMs: 10_000,
      message: 'the completed counter',
    });
    const w1 = await workerMetrics();
    expect(sampleValue(w1, 'sendense_backup_bytes_transferred_total')! - (sampleValue(w0, 'sendense_backup_bytes_transferred_total') ?? 0)).toBeGreaterThan(
      1024 * 1024,
    );
    expect(sampleValue(w1, 'sendense_backup_duration_seconds_count', { type: 'full' })).toBe(1);
    expect(sampleValue(w1, 'sendense_backup_commit_duration_seconds_count')).toBe(1);
    expect(sampleSum(w1, 'sendense_queue_jobs', { queue: `backup.${sys.node}` })).toBeGreaterThanOrEqual(1);
    const g1 = await gatewayMetrics();
    expect(sampleValue(g1, 'sendense_backup_jobs', { status: 'completed', type: 'full' })).toBe(
      (sampleValue(g0, 'sendense_backup_jobs', { status: 'completed', type: 'full' }) ?? 0) + 1,
    );
    expect(sampleSum(g1, 'sendense_http_requests_total', { route: '/api/v1/backup/start' })).toBeGreaterThan(
      sampleSum(g0, 'sendense_http_requests_total', { route: '/api/v1/backup/start' }),
    );
    // Secured like the API: no key, no metrics.
    expect((await fetch(`${sys.api}/metrics`)).status).toBe(401);
  });

  it('a one-minute policy runs twice on its own with two workers and two gateways, once per slot, applies retention, and shows in the API and CLI', async () => {
    const gw2Port = await freePort();
    await sys.startExtra('backup-worker-2', 'backup-worker', { WORKER_METRICS_PORT: String(await freePort()) });
    await sys.startExtra('api-gateway-2', 'api-gateway', { GATEWAY_PORT: String(gw2Port) });
    const api2 = `http://127.0.0.1:${gw2Port}`;
    const create = await fetch(`${api2}/api/v1/policies`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sys.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'every-minute',
        cron: '* * * * *',
        timezone: 'Europe/Berlin',
        repository: 'local',
        vms: { names: [VM] },
        full_after_incrementals: 5,
        retention: { keep_last: 2 },
        concurrency: 1,
      }),
    });
    const policy = (await create.json()) as { id: string; scheduled: boolean; next_run_at: string };
    expect(create.status).toBe(201);
    expect(policy.scheduled).toBe(true);
    expect(new Date(policy.next_run_at).getUTCSeconds()).toBe(0);
    // The same name again is refused, and the audit log has both answers.
    expect((await sys.call('POST', '/api/v1/policies', { name: 'every-minute', cron: '* * * * *', repository: 'local', vms: { names: [VM] } })).status).toBe(
      409,
    );
    expect((await sys.call('POST', '/api/v1/policies', { name: 'bad-cron', cron: '61 * * * *', repository: 'local', vms: { names: [VM] } })).status).toBe(400);

    const runs = async () => (await sys.call<{ total: number; items: Run[] }>('GET', `/api/v1/policies/${policy.id}/runs?limit=50`)).body.items;
    await waitFor(async () => (await runs()).filter((r) => r.status !== 'running').length >= 2, {
      timeoutMs: 4 * MINUTE,
      intervalMs: 2000,
      message: 'two scheduled runs',
    });
    const two = (await runs()).slice(0, 2).reverse();
    for (const r of two) {
      expect(r).toMatchObject({ trigger: 'schedule', status: 'completed' });
      expect(r.vms).toEqual([
        expect.objectContaining({ vm_name: VM, type: 'incremental', status: 'completed', reason: expect.stringMatching(/retention applied/) }),
      ]);
      expect(new Date(r.scheduled_for!).getUTCSeconds()).toBe(0);
      expect(r.duration_ms).toBeGreaterThan(0);
    }
    expect(new Date(two[1]!.scheduled_for!).getTime() - new Date(two[0]!.scheduled_for!).getTime()).toBe(MINUTE);
    // Once per slot: one run row per slot, one VM backup per run, and one worker took each slot.
    const slots = (await runs()).map((r) => r.scheduled_for);
    expect(new Set(slots).size).toBe(slots.length);
    const backupRuns = await sys.db.prisma.backupJob.findMany({
      where: { vmName: VM, requestedType: 'incremental' },
      distinct: ['runId'],
      select: { runId: true },
    });
    expect(backupRuns.map((b) => b.runId).sort()).toEqual((await runs()).map((r) => r.vms[0]!.run_id).sort());
    const started = [...(sys.logs.get('backup-worker') ?? []), ...(sys.logs.get('backup-worker-2') ?? [])].filter(
      (l) => l.includes('policy every-minute: run') && !l.includes('resumed'),
    );
    expect(started.length).toBe((await runs()).length);
    // Retention keep_last 2: of the manual full and the incrementals, two restore points are left.
    const points = await sys.call<{ total: number }>('GET', `/api/v1/backup/list?vm_name=${VM}&status=completed`);
    expect(points.body.total).toBe(2);

    const hist = await cli(['policy', 'history', 'every-minute', '--json']);
    expect(hist.code).toBe(0);
    const doc = JSON.parse(hist.stdout) as { total: number; items: Run[] };
    expect(doc.items.filter((r) => r.status === 'completed').length).toBeGreaterThanOrEqual(2);
    const human = await cli(['policy', 'history', 'every-minute']);
    expect(human.stdout).toMatch(/SLOT\s+TRIGGER\s+RESULT/);
    expect(human.stdout).toMatch(new RegExp(`schedule\\s+completed\\s+${VM}:incr/completed`));
    expect((await cli(['policy', 'list'])).stdout).toMatch(/every-minute\s+\* \* \* \* \* Europe\/Berlin\s+active/);
    expect((await cli(['policy', 'show', 'every-minute'])).stdout).toMatch(/retention:\s+keep last 2/);

    const audit = await sys.call<{ items: { action: string; key_name: string; target: string; result: string; status: number }[] }>(
      'GET',
      '/api/v1/audit?action=policies.create',
    );
    expect(audit.body.items.map((a) => [a.target, a.result, a.status, a.key_name])).toEqual([
      ['bad-cron', 'error', 400, 'system test'],
      ['every-minute', 'error', 409, 'system test'],
      ['every-minute', 'ok', 201, 'system test'],
    ]);
  });

  it('a slot missed while everything is down runs once when the system returns, not once per missed slot', async () => {
    const policy = (await sys.call<{ id: string }>('GET', '/api/v1/policies/every-minute')).body;
    const runs = async () => (await sys.call<{ items: Run[] }>('GET', `/api/v1/policies/${policy.id}/runs?limit=50`)).body.items;
    await waitFor(async () => (await runs()).every((r) => r.status !== 'running'), { timeoutMs: 2 * MINUTE, intervalMs: 1000, message: 'no run in progress' });
    for (const app of ['api-gateway-2', 'backup-worker-2', 'api-gateway', 'backup-worker']) await sys.stopApp(app);
    const downAt = Date.now();
    const before = (await sys.db.prisma.policyRun.findMany({ where: { policyId: policy.id } })).length;
    // Down across two slots.
    const firstMissed = Math.ceil(downAt / MINUTE) * MINUTE;
    await new Promise((r) => setTimeout(r, firstMissed + MINUTE + 5000 - Date.now()));
    expect((await sys.db.prisma.policyRun.findMany({ where: { policyId: policy.id } })).length).toBe(before);
    const upAt = Date.now();
    await sys.startApp('backup-worker');
    await sys.startApp('api-gateway');
    await waitFor(async () => (await runs()).some((r) => new Date(r.scheduled_for!).getTime() === firstMissed && r.status !== 'running'), {
      timeoutMs: 2 * MINUTE,
      intervalMs: 1000,
      message: 'the catch-up run',
    });
    await new Promise((r) => setTimeout(r, 5000));
    const caught = (await runs()).filter((r) => new Date(r.scheduled_for!).getTime() >= downAt && new Date(r.scheduled_for!).getTime() < upAt);
    expect(caught.map((r) => [new Date(r.scheduled_for!).getTime(), r.status])).toEqual([[firstMissed, 'completed']]);
    expect(new Date(caught[0]!.started_at).getTime()).toBeGreaterThanOrEqual(upAt);
    // The schedule goes on from now: the next slot is in the future.
    const after = await sys.call<{ next_run_at: string }>('GET', `/api/v1/policies/${policy.id}`);
    expect(new Date(after.body.next_run_at).getTime()).toBeGreaterThan(upAt);

    // Pause stops new runs (no scheduler, no next slot); resume schedules again; delete removes it.
    const paused = await cli(['policy', 'pause', 'every-minute', '--json']);
    expect(JSON.parse(paused.stdout)).toMatchObject({ paused: true, scheduled: false, next_run_at: null });
    const resumed = await cli(['policy', 'resume', 'every-minute', '--json']);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ paused: false, scheduled: true });
    expect((await cli(['policy', 'delete', 'every-minute'])).code).toBe(0);
    expect((await sys.call('GET', '/api/v1/policies/every-minute')).status).toBe(404);
  });
});
