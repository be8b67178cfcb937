import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { loadWorkerSettings } from '@sendense/config';
import { QueueNames } from '@sendense/contracts';
import { LocalQcow2Repository } from '@sendense/storage';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { startSystem, waitForJob, type System } from './support/system';

/**
 * Soak (opt-in: SENDENSE_SOAK=1, SENDENSE_SOAK_RUNS=50 by default): backup
 * runs in a row across several VMs with guest writes before each,
 * incrementals, consolidation and retention between them. Afterwards the
 * database, the sidecars and the files agree (the repository's reconcile
 * finds nothing to fix, every restore point verifies), each service's RSS
 * stays flat (end vs after the first tenth of the runs; both printed), and
 * Redis holds a bounded number of job records.
 */

const SOAK = process.env['SENDENSE_SOAK'] === '1';
const RUNS = Number(process.env['SENDENSE_SOAK_RUNS'] ?? 50);
const VMS = ['soak-vm-1', 'soak-vm-2', 'soak-vm-3'];
const SERVICES = ['api-gateway', 'backup-worker', 'capture-agent', 'nbd-exporter', 'restore-service'];

const rssMiB = (pid: number | undefined) => {
  if (!pid) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
};

(SOAK ? describe : describe.skip)(`soak: ${RUNS} backup runs`, () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  const keys = new Map<string, number[]>();

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-soak-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: VMS.map((name, i) => ({
        name,
        disks: [
          { sizeMiB: 64, content: { type: 'random', percent: 100, seed: i + 1 } },
          { sizeMiB: 32, content: { type: 'random', percent: 50, seed: i + 11 } },
        ],
      })),
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
    expect((await sys.call('POST', `/api/v1/vcenters/${vc.body.id}/import`, { vm_names: VMS })).status).toBe(200);
    expect((await sys.call('POST', '/api/v1/repositories', { name: 'soak', type: 'local', path: sys.repoDir })).status).toBe(201);
    expect((await sys.call('PUT', '/api/v1/retention/policy', { repository: 'soak', keep_last: 4 })).status).toBe(200);
    for (const vm of VMS)
      keys.set(
        vm,
        (await standIn.harness!.vm(vm)).disks.map((d) => d.key),
      );
  }, 300_000);

  afterAll(async () => {
    await sys?.stop();
    await standIn?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('runs, consolidates and prunes; everything agrees afterwards; memory and Redis stay bounded', async () => {
    const rss = () => Object.fromEntries(SERVICES.map((s) => [s, rssMiB(sys.daemons.get(s)?.pid)]));
    let warm: Record<string, number> = rss();
    const start = rss();
    const kinds: Record<string, number> = {};
    for (let i = 0; i < RUNS; i++) {
      const vm = VMS[i % VMS.length]!;
      for (const key of keys.get(vm)!) await standIn.harness!.fill(vm, key, 3, 1000 + i);
      const s = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: vm, backup_type: 'incremental', repository: 'soak' });
      expect(s.status).toBe(202);
      const doc = await waitForJob<{ status: string; error: string | null; backups: { backup_type: string }[] }>(sys, s.body.run_id, 300_000, 300);
      if (doc.status !== 'completed') throw new Error(`run ${i + 1} (${vm}): ${doc.status} ${doc.error}`);
      for (const b of doc.backups) kinds[b.backup_type] = (kinds[b.backup_type] ?? 0) + 1;
      if (i % 7 === 6) {
        const c = await sys.call('POST', '/api/v1/backup/chain/consolidate', { vm_name: vm, disk_id: 1 });
        expect({ run: i + 1, status: c.status }).toEqual({ run: i + 1, status: 200 });
      }
      if (i % 10 === 9) {
        const r = await sys.call<{ errors?: unknown[] }>('POST', '/api/v1/retention/apply', { repository: 'soak', dry_run: false });
        expect({ run: i + 1, status: r.status, errors: r.body.errors ?? [] }).toEqual({ run: i + 1, status: 200, errors: [] });
      }
      if (i === Math.ceil(RUNS / 10) - 1) warm = rss();
    }
    const end = rss();
    process.stderr.write(
      `soak: ${RUNS} runs (${JSON.stringify(kinds)}); RSS MiB at start ${JSON.stringify(start)}, after ${Math.ceil(RUNS / 10)} runs ${JSON.stringify(warm)}, at end ${JSON.stringify(end)}\n`,
    );
    expect(kinds['incremental']).toBeGreaterThan(RUNS);

    // Files, sidecars and database agree.
    const repo = await LocalQcow2Repository.open({ root: sys.repoDir });
    const report = await repo.reconcile({ dryRun: true });
    expect(report.entries).toEqual([]);
    const rows = await sys.db.prisma.backupJob.findMany({ where: { status: 'completed' } });
    const points = await repo.list();
    expect(points.map((p) => p.id).sort()).toEqual(rows.map((r) => r.id).sort());
    const images: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        if (e.isDirectory() && !e.name.startsWith('.')) await walk(join(dir, e.name));
        else if (e.name.endsWith('.qcow2')) images.push(join(dir, e.name));
      }
    };
    await walk(sys.repoDir);
    expect(images.sort()).toEqual(rows.map((r) => join(sys.repoDir, r.repositoryPath)).sort());
    for (const r of rows) {
      const v = await sys.call<{ ok: boolean; problems: string[] }>('POST', `/api/v1/backup/${r.id}/verify`);
      expect({ id: r.id, status: v.status, ok: v.body.ok, problems: v.body.problems }).toEqual({ id: r.id, status: 200, ok: true, problems: [] });
    }
    // Retention kept the chains short: 3 VMs x 2 disks x at most keep_last + what ran since the last apply.
    expect(rows.length).toBeLessThanOrEqual(VMS.length * 2 * (4 + 10));

    // Memory flat: no service grew by more than half (plus 64 MiB of slack) after warming up.
    for (const s of SERVICES) expect({ service: s, grewTooMuch: end[s]! > warm[s]! * 1.5 + 64 }).toEqual({ service: s, grewTooMuch: false });

    // Redis: one backup job record per VM (job id per VM), maintenance bounded by its retention count.
    const count = async (name: string) => {
      const q = new Queue(name, { connection: { url: loadWorkerSettings({ ...sys.env }).REDIS_URL }, prefix: loadWorkerSettings({ ...sys.env }).QUEUE_PREFIX });
      try {
        const c = await q.getJobCounts();
        return Object.values(c).reduce((a, b) => a + b, 0);
      } finally {
        await q.close();
      }
    };
    const backupJobs = await count(QueueNames.backup(sys.node));
    const maintenanceJobs = await count(QueueNames.maintenance(sys.node));
    process.stderr.write(`soak: Redis job records: backup ${backupJobs}, maintenance ${maintenanceJobs}\n`);
    expect(backupJobs).toBeLessThanOrEqual(VMS.length);
    expect(maintenanceJobs).toBeLessThanOrEqual(1000);
  }, 3_600_000);
});
