import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import { backupOk, startFaultBed, type FaultBed } from './support/faults';
import { freePort } from './support/system';

/**
 * Webhook events beyond job.failed (issue 17), on the built apps with
 * MariaDB, Redis and the stand-in: a receiver gets each signed with the
 * webhook's secret: repository.space when the repository's file system is
 * fuller than ALERT_REPOSITORY_USED_PERCENT (1 % here, so any disk is),
 * vm.stale for a VM of a policy with max_age_hours that has no good backup
 * that recent, and chain.damaged when verification finds a restore point
 * whose bytes were changed on disk, chain.suspect when the CBT audit of an
 * incremental finds blocks CBT reported unchanged that differ (the
 * stand-in's cbt-fault switch makes QueryChangedDiskAreas forget an area). The queue 'webhooks' is one per
 * install; the system's own QUEUE_PREFIX keeps other tests' workers on this
 * Redis from taking (and dropping) its deliveries.
 */

const DAMAGED_VM = 'hook-damaged-vm';
const STALE_VM = 'hook-stale-vm';
const SUSPECT_VM = 'hook-suspect-vm';
const MINUTE = 60_000;

interface Received {
  headers: Record<string, string | string[] | undefined>;
  raw: string;
  body: { id: string; event: string; at: string; data: Record<string, unknown> };
}

jest.setTimeout(10 * MINUTE);

describe('webhook events: repository.space, vm.stale, chain.damaged, chain.suspect', () => {
  let bed: FaultBed;
  let receiver: Server;
  const received: Received[] = [];
  const secret = 'events-secret-0123456789';

  const event = async (name: string, match: (d: Record<string, unknown>) => boolean = () => true): Promise<Received> => {
    await waitFor(() => received.some((r) => r.body.event === name && match(r.body.data)), {
      timeoutMs: MINUTE,
      intervalMs: 200,
      message: `a ${name} event`,
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}; the worker said:\n${(bed.sys.logs.get('backup-worker') ?? [])
          .filter((l) => /alert|space|webhook|repositor/i.test(l))
          .slice(-15)
          .join('\n')}`,
      );
    });
    const r = received.find((x) => x.body.event === name && match(x.body.data))!;
    // Signed: HMAC-SHA256 of the raw body under the webhook's secret.
    expect(r.headers['x-sendense-signature']).toBe(`sha256=${createHmac('sha256', secret).update(r.raw).digest('hex')}`);
    expect(r.headers['x-sendense-event']).toBe(name);
    return r;
  };

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        received.push({ headers: req.headers, raw, body: JSON.parse(raw) as Received['body'] });
        res.writeHead(200).end();
      });
    });
    const port = await freePort();
    await new Promise<void>((r) => receiver.listen(port, '127.0.0.1', () => r()));
    const disk = (seed: number) => ({
      sizeMiB: 48,
      content: { type: 'filesystem' as const, filesystem: 'ext4' as const, partitionTable: 'gpt' as const, files: { '/etc/hostname': 'h\n' }, seed },
    });
    // No repository yet: the space check must not report it before the webhook exists.
    bed = await startFaultBed({
      vms: [
        { name: DAMAGED_VM, changeTrackingEnabled: true, disks: [disk(41)] },
        { name: STALE_VM, disks: [{ sizeMiB: 16, content: { type: 'random', percent: 10, seed: 42 } }] },
        { name: SUSPECT_VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 64, content: { type: 'random', percent: 50, seed: 43 } }] },
      ],
      repositories: [],
      env: { ALERT_REPOSITORY_USED_PERCENT: '1', ALERT_CHECK_EVERY: '2s' },
    });
    const hook = await bed.sys.call('POST', '/api/v1/webhooks', {
      name: 'events',
      url: `http://127.0.0.1:${port}/hook`,
      secret,
      events: ['chain.damaged', 'chain.suspect', 'repository.space', 'vm.stale'],
    });
    expect(hook.status).toBe(201);
    expect((await bed.sys.call('POST', '/api/v1/repositories', { name: 'local', type: 'local', path: join(bed.sys.repoDir, 'local') })).status).toBe(201);
  }, 5 * MINUTE);

  afterAll(async () => {
    receiver?.close();
    await bed?.stop();
  }, MINUTE);

  it('repository.space: the repository file system is above the threshold', async () => {
    const r = await event('repository.space', (d) => (d['repository'] as { name: string }).name === 'local');
    const d = r.body.data as { usedPercent: number; thresholdPercent: number; totalBytes: number; freeBytes: number; repository: { node: string } };
    expect(d.thresholdPercent).toBe(1);
    expect(d.usedPercent).toBeGreaterThanOrEqual(1);
    expect(d.totalBytes).toBeGreaterThan(d.freeBytes);
    expect(d.repository.node).toBe(bed.sys.node);
    // Once a day while it lasts, not at every check (2 s here).
    await new Promise((res) => setTimeout(res, 5_000));
    expect(received.filter((x) => x.body.event === 'repository.space').length).toBe(1);
  });

  it('vm.stale: a VM of a policy with max_age_hours and no good backup that recent', async () => {
    const p = await bed.sys.call<{ id: string }>('POST', '/api/v1/policies', {
      name: 'stale-check',
      cron: '0 3 * * *',
      repository: 'local',
      vms: { names: [STALE_VM] },
      max_age_hours: 1,
    });
    expect(p.status).toBe(201);
    // A policy younger than its own limit cannot have a stale VM: make it two hours old.
    await bed.sys.db.prisma.backupPolicy.update({ where: { id: p.body.id }, data: { createdAt: new Date(Date.now() - 2 * 3_600_000) } });
    const r = await event('vm.stale', (d) => (d['vm'] as { name: string }).name === STALE_VM);
    expect(r.body.data).toMatchObject({ policy: { id: p.body.id, name: 'stale-check', maxAgeHours: 1 }, lastSuccessAt: null, ageHours: null });
    // The VM backed up by the policy's repository is not stale; the damaged VM is in no policy.
    expect(received.some((x) => x.body.event === 'vm.stale' && (x.body.data['vm'] as { name: string }).name === DAMAGED_VM)).toBe(false);
  });

  it(
    'chain.damaged: verification of a restore point whose bytes changed on disk',
    async () => {
      const full = (await backupOk(bed, DAMAGED_VM, 'full')).backups[0]!;
      const file = join(bed.sys.repoDir, 'local', full.repository_path);
      const map = JSON.parse((await run('qemu-img', ['map', '-U', '--output=json', file])).stdout) as {
        depth: number;
        data: boolean;
        offset?: number;
        length: number;
      }[];
      const cluster = map.find((e) => e.depth === 0 && e.data && e.offset !== undefined && e.length >= 4096)!;
      expect(cluster).toBeDefined();
      const fh = await open(file, 'r+');
      await fh.write(randomBytes(64), 0, 64, cluster.offset! + 100);
      await fh.close();
      const v = await bed.sys.call<{ ok: boolean; problems: string[] }>('POST', `/api/v1/backup/${full.id}/verify`);
      expect(v.status).toBe(200);
      expect(v.body.ok).toBe(false);
      const r = await event('chain.damaged', (d) => d['backupId'] === full.id);
      expect(r.body.data['problems']).toEqual(v.body.problems);
      expect((r.body.data['problems'] as string[]).join(' ')).toMatch(/checksum/i);
    },
    5 * MINUTE,
  );

  it(
    'chain.suspect: the CBT audit finds an area CBT forgot; the event names the VM, disk, backup and reason',
    async () => {
      // Many samples, so the forgotten 8 MiB (1/8 of the disk) cannot slip through: (7/8)^256 < 1e-14.
      expect(
        (await bed.sys.call('POST', '/api/v1/repositories', { name: 'audit', type: 'local', path: join(bed.sys.repoDir, 'audit'), cbt_audit_samples: 256 }))
          .status,
      ).toBe(201);
      const h = bed.standIn.harness!;
      const key = bed.keys.get(SUSPECT_VM)![0]!;
      await backupOk(bed, SUSPECT_VM, 'full', 'audit');
      // An honest incremental first: no event.
      await h.write(SUSPECT_VM, key, 4 * 1024 * 1024, randomBytes(64 * 1024));
      const honest = (await backupOk(bed, SUSPECT_VM, 'incremental', 'audit')).backups[0]!;
      expect(honest.suspect_reason).toBeNull();
      await h.write(SUSPECT_VM, key, 16 * 1024 * 1024, randomBytes(8 * 1024 * 1024)); // the largest area: forgotten
      await h.write(SUSPECT_VM, key, 40 * 1024 * 1024, randomBytes(64 * 1024));
      await h.cbtFault(SUSPECT_VM, key, true);
      let b;
      try {
        b = (await backupOk(bed, SUSPECT_VM, 'incremental', 'audit')).backups[0]!;
      } finally {
        await h.cbtFault(SUSPECT_VM, key, false);
      }
      expect(b.suspect_reason).toMatch(/CBT audit/);
      const row = (await bed.sys.db.prisma.backupJob.findUnique({ where: { id: b.id } }))!;
      expect(row.suspectReason).toBe(b.suspect_reason);
      const r = await event('chain.suspect', (d) => d['backupId'] === b.id);
      expect(r.body.data).toMatchObject({
        vm: { contextId: row.vmContextId, name: SUSPECT_VM },
        disk: { diskId: 0, deviceKey: key },
        backupId: b.id,
        runId: row.runId,
        reason: b.suspect_reason,
      });
      expect(r.body.data['next']).toMatch(/next backup of disk 0 .* full/);
      expect(received.filter((x) => x.body.event === 'chain.suspect').map((x) => x.body.data['backupId'])).toEqual([b.id]);
    },
    5 * MINUTE,
  );
});
