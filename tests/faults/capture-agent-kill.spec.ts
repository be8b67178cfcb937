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
 * Scenario 3: the Capture Agent is killed (SIGKILL) mid-copy and restarted.
 * The worker's copy call loses its connection; its clean-up removes the
 * exports and aborts the partial point, the snapshot the dead agent held
 * cannot be released then. The retry (BullMQ attempts) reaches the restarted
 * agent, whose stale-snapshot sweep removes the dead run's `sendense-`
 * snapshot before it takes its own. Afterwards: the job completed (or failed
 * naming the Capture Agent), nothing left on the VM or the host, the points
 * read back, the next incremental works.
 */

const VM = 'fault-agent-vm';

describe('fault: the Capture Agent is killed mid-backup', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 128, content: { type: 'random', percent: 85, seed: 31 } }] }],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  const allocated = () => allocatedQcow2Bytes(bed.sys.repoDir);

  /** Start a backup; once its image has grown by 4 MiB, SIGKILL the Capture Agent and run `then`. */
  async function backupKillingAgent(type: 'full' | 'incremental', then: (job: Promise<JobDoc>) => Promise<void>) {
    const base = await allocated();
    let killedAt = 0;
    const job = backupRun(bed, VM, type);
    await waitFor(async () => (await allocated()) - base >= 4 * MiB, { timeoutMs: 120_000, intervalMs: 5, message: 'the restore point to grow' });
    const exporter = bed.sys.daemons.get('capture-agent')!;
    process.kill(exporter.pid!, 'SIGKILL');
    killedAt = Date.now();
    await waitFor(() => !exporter.running, { timeoutMs: 10_000, message: 'the Capture Agent to die' });
    await then(job);
    const doc = await job;
    return { ...doc, killedAt };
  }

  for (const type of ['full', 'incremental'] as const) {
    it(`killed during a ${type} and restarted: the job ends in words, nothing is left behind, the next backup works`, async () => {
      const before =
        type === 'incremental'
          ? (
              await bed.sys.call<{ chains: { restore_points: { id: string; repository_path: string }[] }[] }>('GET', `/api/v1/backup/chain?vm_name=${VM}`)
            ).body.chains[0]!.restore_points.at(-1)!
          : null;
      const beforeDigest = before ? await restorePointDigest(bed, before) : null;
      if (type === 'incremental') await bed.standIn.harness!.fill(VM, bed.keys.get(VM)![0]!, 50, 8);
      const t0 = Date.now();
      const doc = await backupKillingAgent(type, async () => {
        await bed.sys.restart('capture-agent');
      });
      const seconds = (Date.now() - doc.killedAt) / 1000;
      const notes = doc.events.filter((e) => e.level !== 'info').map((e) => e.message);
      console.log(
        `scenario 3 (Capture Agent killed, ${type}): job ${doc.status} ${seconds.toFixed(1)} s after the kill (${((Date.now() - t0) / 1000).toFixed(1)} s in all); error: ${doc.error}; warnings: ${notes.join(' | ')}`,
      );
      if (doc.status === 'completed') {
        const point = doc.backups.find((b) => b.status === 'completed')!;
        expect(await restorePointDigest(bed, point)).toBe(await guestDigest(bed, VM, 0));
        // The failed attempt's reason is in the event log, not the completed job's error.
        expect(doc.error).toBeNull();
        expect(notes.some((m) => /capture.agent/i.test(m))).toBe(true);
      } else {
        expect(doc.status).toBe('failed');
        expect(doc.error).toMatch(/capture.agent/i);
      }
      // The failed attempt's restore point is gone, its rows say so.
      for (const b of doc.backups.filter((x) => x.status !== 'completed')) expect(b.status).toMatch(/failed|cancelled/);
      if (before) expect(await restorePointDigest(bed, before)).toBe(beforeDigest);
      // A failed job may leave the dead agent's snapshot to the next prepare; the next backup must leave nothing.
      const next = await backupOk(bed, VM, 'incremental');
      expect(next.backups[0]!.status).toBe('completed');
      expect(await restorePointDigest(bed, next.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
      expect(await leftovers(bed)).toEqual([]);
    }, 400_000);
  }
});
