import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '@sendense/process';
import { waitForJob } from '../support/system';
import { allocatedQcow2Bytes, backupOk, guestDigest, leftovers, MiB, restorePointDigest, startFaultBed, type FaultBed, type JobDoc } from '../support/faults';

/**
 * A cancel accepted while the worker running the backup is dead (issue 19,
 * "already seen": it was lost, and the retry 60 s later completed a full).
 * The gateway records the cancel in Redis next to the publish; the worker
 * that picks the stalled job up cleans up the dead attempt and ends the run
 * as cancelled instead of starting it again.
 */

const VM = 'fault-cancel-vm';

describe('fault: a cancel while the worker is dead is not lost', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 256, content: { type: 'random', percent: 85, seed: 47 } }] }],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  const allocated = () => allocatedQcow2Bytes(bed.sys.repoDir);
  /** Lock files in the repository's .locks/ (relative paths). */
  const lockFiles = async () =>
    (await readdir(join(bed.sys.repoDir, 'local', '.locks'), { recursive: true, withFileTypes: true }).catch(() => []))
      .filter((e) => e.isFile() && e.name.endsWith('.lock'))
      .map((e) => join(e.parentPath, e.name));

  it('worker SIGKILLed mid-copy, cancel accepted, worker restarted: the run ends cancelled, not completed; the next backup works', async () => {
    const start = await bed.sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: 'full', repository: 'local' });
    expect(start.status).toBe(202);
    const runId = start.body.run_id;
    await waitFor(async () => (await allocated()) >= 4 * MiB, { timeoutMs: 120_000, intervalMs: 5, message: 'the restore point to grow' });
    const worker = bed.sys.daemons.get('backup-worker')!;
    process.kill(worker.pid!, 'SIGKILL');
    await waitFor(() => !worker.running, { timeoutMs: 10_000, message: 'the worker to die' });

    // The dead worker's lock files (the point's write lock, the disk-writer lock) stay in .locks/ until a sweep.
    const deadLocks = (await lockFiles()).filter((f) => f.includes(`.${worker.pid}.`));
    expect(deadLocks.length).toBeGreaterThanOrEqual(1);

    const cancel = await bed.sys.call<{ status: string }>('POST', `/api/v1/jobs/${runId}/cancel`);
    expect(cancel.status).toBe(202);
    expect(cancel.body.status).toBe('cancelling');

    const t0 = Date.now();
    await bed.sys.restart('backup-worker');
    // The restarted worker sweeps them at start (their process is gone), before any job runs.
    expect((await lockFiles()).filter((f) => deadLocks.includes(f))).toEqual([]);
    expect(bed.sys.logs.get('backup-worker')?.some((l) => /removed \d+ lock file\(s\) of dead processes/.test(l))).toBe(true);
    const doc = await waitForJob<JobDoc & { attempts_made: number | null }>(bed.sys, runId, 240_000);
    console.log(
      `durable cancel: job ${doc.status} ${((Date.now() - t0) / 1000).toFixed(1)} s after the worker came back; events: ${doc.events
        .filter((e) => e.level !== 'info')
        .map((e) => e.message)
        .join(' | ')}`,
    );
    expect(doc.status).toBe('cancelled');
    expect(doc.backups.filter((b) => b.status === 'completed')).toEqual([]);
    expect(doc.events.some((e) => /cancelled while no worker was running it/.test(e.message))).toBe(true);
    // The dead attempt's export rows, half-written point and snapshot are gone: nobody renewed its agent session's
    // lease (CAPTURE_SESSION_LEASE), so the agent removed the snapshot long before the retry ended the run.
    expect(bed.sys.logs.get('capture-agent')?.some((l) => /nobody renewed its \d+ s lease, the caller is gone: .*removing snapshot/.test(l))).toBe(true);
    expect(await leftovers(bed)).toEqual([]);
    // attempts_made counts the attempt the worker's death ended like one an error ended: the dead one and the cancelled retry.
    expect(doc.attempts_made).toBe(2);

    const next = await backupOk(bed, VM, 'full');
    expect(await restorePointDigest(bed, next.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
  }, 600_000);
});
