import { waitFor } from '@sendense/process';
import {
  allocatedQcow2Bytes,
  backupOk,
  backupRun,
  guestDigest,
  leftovers,
  MiB,
  restorePointDigest,
  startFaultBed,
  type FaultBed,
  type JobDoc,
} from '../support/faults';

/**
 * Scenario 5: the nbd-exporter is killed (SIGKILL) mid-backup. Its qemu-nbd
 * children outlive it and go on taking the copy. Restarted at once, its
 * reconcile keeps the backup's export and the job completes. Kept down until
 * the job has ended, the worker cannot have the exports removed and aborts
 * the restore point (its file is deleted); the restarted exporter must then
 * close the servers that hold those deleted files (seen: two writable
 * qemu-nbd kept serving 678 MB of deleted partial images with their rows
 * "active"). Either way: no orphan server, no rows, the next backup works.
 */

const VM = 'fault-exporter-vm';

describe('fault: the nbd-exporter is killed mid-backup', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 128, content: { type: 'random', percent: 85, seed: 21 } }] }],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  const allocated = () => allocatedQcow2Bytes(bed.sys.repoDir);

  /** Start a backup; once its image has grown by 4 MiB, SIGKILL the nbd-exporter and run `then`. */
  async function backupKillingExporter(type: 'full' | 'incremental', then: (job: Promise<JobDoc>) => Promise<void>) {
    const base = await allocated();
    let killedAt = 0;
    const job = backupRun(bed, VM, type);
    await waitFor(async () => (await allocated()) - base >= 4 * MiB, { timeoutMs: 120_000, intervalMs: 5, message: 'the restore point to grow' });
    const exporter = bed.sys.daemons.get('nbd-exporter')!;
    process.kill(exporter.pid!, 'SIGKILL');
    killedAt = Date.now();
    await waitFor(() => !exporter.running, { timeoutMs: 10_000, message: 'the nbd-exporter to die' });
    await then(job);
    const doc = await job;
    return { ...doc, killedAt };
  }

  it('restarted at once: reconcile keeps the live export, the job completes and reads back; nothing left behind', async () => {
    const t0 = Date.now();
    const doc = await backupKillingExporter('full', async () => {
      await bed.sys.restart('nbd-exporter');
    });
    expect(doc.status).toBe('completed');
    const point = doc.backups[0]!;
    expect(await restorePointDigest(bed, point)).toBe(await guestDigest(bed, VM, 0));
    const reconciled = bed.sys.logs.get('nbd-exporter')!.find((l) => /reconciled: /.test(l));
    expect(reconciled).toBeDefined();
    expect(await leftovers(bed)).toEqual([]);
    console.log(
      `scenario 5 (exporter restarted at once): job ${doc.status} in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${reconciled}; events: ${doc.events
        .filter((e) => e.level !== 'info')
        .map((e) => e.message)
        .join(' | ')}`,
    );
  }, 300_000);

  it('down until the job has ended: the job says why; the restarted exporter closes servers of deleted files; the next backup works', async () => {
    const chain = await bed.sys.call<{ chains: { restore_points: { id: string; repository_path: string }[] }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}`);
    const full = chain.body.chains[0]!.restore_points.at(-1)!;
    const fullDigest = await restorePointDigest(bed, full);
    await bed.standIn.harness!.fill(VM, bed.keys.get(VM)![0]!, 60, 5);
    let restartedAt = 0;
    const doc = await backupKillingExporter('incremental', async (job) => {
      await job;
      restartedAt = Date.now();
      await bed.sys.restart('nbd-exporter');
    });
    console.log(`scenario 5 (exporter down until the end): job ${doc.status}: ${doc.error}`);
    if (doc.status === 'completed') {
      expect(await restorePointDigest(bed, doc.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
    } else {
      expect(doc.status).toBe('failed');
      expect(doc.error).toMatch(/nbd-exporter/i);
      expect(doc.backups[0]!.status).toBe('failed');
    }
    // Whatever the job did, the restarted exporter leaves no server of a deleted file and no row.
    await waitFor(async () => (await leftovers(bed)).length === 0, { timeoutMs: 30_000, intervalMs: 250, message: 'the exporter to close orphaned servers' });
    const recovered = (Date.now() - restartedAt) / 1000;
    expect(await restorePointDigest(bed, full)).toBe(fullDigest);
    const next = await backupOk(bed, VM, 'incremental');
    expect(next.backups[0]!.status).toBe('completed');
    expect(await restorePointDigest(bed, next.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
    console.log(`scenario 5: clean ${recovered.toFixed(1)} s after the exporter came back; next backup ${next.backups[0]!.backup_type}`);
  }, 400_000);
});
