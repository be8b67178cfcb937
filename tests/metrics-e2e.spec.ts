import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStandIn, type StandIn } from '@sendense/vsphere';
import { registerStandIn, startSystem, waitForJob, type System } from './support/system';
import { scrape, type Scrape } from './support/prometheus';

/**
 * Every service's /metrics (issue 17) on the built apps with MariaDB, Redis
 * and the VMware stand-in: the gateway's behind an API key, the four others
 * on loopback listeners. Each parses as the Prometheus text format, carries
 * its service label, and its counters move with a backup and a mount.
 */

const VM = 'metrics-vm';
const MiB = 1024 * 1024;
const MINUTE = 60_000;
const LOOPBACK = ['backup-worker', 'capture-agent', 'nbd-exporter', 'restore-service'] as const;

jest.setTimeout(10 * MINUTE);

describe('Prometheus metrics on every service', () => {
  let sys: System;
  let standIn: StandIn;
  let work: string;
  let restorePointId = '';

  const all = async (): Promise<Record<(typeof LOOPBACK)[number] | 'api-gateway', Scrape>> => {
    const [w, c, e, r, g] = await Promise.all([
      ...LOOPBACK.map((app) => scrape(`http://127.0.0.1:${sys.metricsPorts[app]}/metrics`)),
      scrape(`${sys.api}/metrics`, sys.adminKey),
    ]);
    return { 'backup-worker': w!, 'capture-agent': c!, 'nbd-exporter': e!, 'restore-service': r!, 'api-gateway': g! };
  };
  const delta = (a: Scrape, b: Scrape, name: string, labels?: Record<string, string>) => (b.value(name, labels) ?? 0) - (a.value(name, labels) ?? 0);

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'sendense-metrics-e2e-'));
    standIn = await startStandIn({
      stateDir: join(work, 'vcsim'),
      vms: [
        {
          name: VM,
          disks: [
            {
              sizeMiB: 48,
              content: {
                type: 'filesystem',
                filesystem: 'ext4',
                partitionTable: 'gpt',
                files: { '/etc/hostname': 'metrics\n' },
                randomFiles: { '/data/fill.bin': 8 * MiB },
                seed: 31,
              },
            },
          ],
        },
      ],
    });
    sys = await startSystem();
    await registerStandIn(sys, standIn, [VM]);
    expect((await sys.call('POST', '/api/v1/repositories', { name: 'local', type: 'local', path: sys.repoDir })).status).toBe(201);
  }, 5 * MINUTE);

  afterAll(async () => {
    await sys?.stop();
    await standIn?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, MINUTE);

  it('serves the text format on each service, loopback ones without a key, the gateway only with one', async () => {
    const s = await all();
    for (const [service, m] of Object.entries(s)) {
      // prom-client's process metrics, labelled with the service that serves them.
      expect({ service, type: m.families.get('sendense_process_cpu_seconds_total')?.type }).toEqual({ service, type: 'COUNTER' });
      expect(m.families.get('sendense_process_cpu_seconds_total')!.metrics[0]!.labels).toMatchObject({ service });
    }
    expect(s['capture-agent'].families.get('sendense_capture_disk_copy_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(s['capture-agent'].value('sendense_capture_sessions')).toBe(0);
    expect(s['nbd-exporter'].value('sendense_nbd_servers_running', { server: 'qemu-nbd' })).toBe(0);
    expect(s['nbd-exporter'].value('sendense_nbd_exports')).toBeUndefined();
    // Reconciliation at start ran and found nothing to clean up.
    expect(s['nbd-exporter'].value('sendense_nbd_reconcile_actions_total', { action: 'record_dropped' })).toBe(0);
    expect(s['restore-service'].value('sendense_restore_active_mounts')).toBe(0);
    expect((await fetch(`${sys.api}/metrics`)).status).toBe(401);
    // The loopback listeners answer /metrics only.
    expect((await fetch(`http://127.0.0.1:${sys.metricsPorts['nbd-exporter']}/`)).status).toBe(404);
  });

  it(
    'moves copy bytes on the agent, exports on the exporter, jobs on the worker and the gateway with a backup',
    async () => {
      const before = await all();
      const start = await sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: 'full', repository: 'local' });
      expect(start.status).toBe(202);
      const doc = await waitForJob<{ status: string; error: string | null; backups: { id: string; bytes_transferred: number }[] }>(sys, start.body.run_id);
      if (doc.status !== 'completed') throw new Error(`backup ended ${doc.status}: ${doc.error}`);
      const after = await all();
      restorePointId = doc.backups[0]!.id;
      const copied = doc.backups.reduce((n, b) => n + b.bytes_transferred, 0);
      expect(copied).toBeGreaterThan(8 * MiB);

      expect(delta(before['capture-agent'], after['capture-agent'], 'sendense_capture_calls_total', { call: 'copy', result: 'ok' })).toBe(1);
      expect(delta(before['capture-agent'], after['capture-agent'], 'sendense_capture_calls_total', { call: 'prepare', result: 'ok' })).toBe(1);
      // The agent counts what the worker records: the bytes read from the snapshot.
      expect(delta(before['capture-agent'], after['capture-agent'], 'sendense_capture_bytes_read_total')).toBe(copied);
      expect(
        after['capture-agent'].count('sendense_capture_disk_copy_duration_seconds') -
          before['capture-agent'].count('sendense_capture_disk_copy_duration_seconds'),
      ).toBe(doc.backups.length);
      expect(after['capture-agent'].value('sendense_capture_sessions')).toBe(0);

      // One qcow2 target export per disk, removed when the copy ended.
      expect(delta(before['nbd-exporter'], after['nbd-exporter'], 'sendense_nbd_exports_created_total', { kind: 'qcow2' })).toBe(doc.backups.length);
      expect(delta(before['nbd-exporter'], after['nbd-exporter'], 'sendense_nbd_exports_removed_total', { reason: 'request' })).toBe(doc.backups.length);
      expect(after['nbd-exporter'].value('sendense_nbd_servers_running', { server: 'qemu-nbd' })).toBe(0);

      expect(delta(before['backup-worker'], after['backup-worker'], 'sendense_backup_jobs_total', { type: 'full', result: 'completed' })).toBe(1);
      expect(delta(before['backup-worker'], after['backup-worker'], 'sendense_backup_bytes_transferred_total')).toBe(copied);
      expect(delta(before['api-gateway'], after['api-gateway'], 'sendense_backup_jobs', { status: 'completed', type: 'full' })).toBe(doc.backups.length);
    },
    5 * MINUTE,
  );

  it(
    'counts a mount on the restore-service while it is mounted',
    async () => {
      expect(restorePointId).not.toBe('');
      const m = await sys.call<{ mount_id: string }>('POST', '/api/v1/restore/mount', { backup_id: restorePointId });
      expect(m.status).toBe(201);
      const mounted = await all();
      expect(mounted['restore-service'].value('sendense_restore_active_mounts')).toBe(1);
      expect(mounted['api-gateway'].value('sendense_restore_mounts', { state: 'mounted' })).toBe(1);
      expect((await sys.call('DELETE', `/api/v1/restore/${m.body.mount_id}`)).status).toBe(204);
      expect((await all())['restore-service'].value('sendense_restore_active_mounts')).toBe(0);
    },
    3 * MINUTE,
  );
});
