import { waitFor } from '@sendense/process';
import { backupOk, guestDigest, leftovers, MiB, restorePointDigest, startFaultBed, type FaultBed, type JobDoc, type NbdProxy } from '../support/faults';
import { waitForJob } from '../support/system';

/**
 * Scenario 2 (issue 19): the Capture Agent's NBD connection to the snapshot
 * drops mid-copy. The agent reads the stand-in's snapshot through a cuttable
 * TCP proxy (startFaultBed `nbdProxy`: the harness answer "where is this
 * snapshot disk" names the proxy). Briefly: the extent copier reconnects
 * (CAPTURE_SOURCE_RETRIES, 200 ms doubling) and resumes where it was, so the
 * job completes without a retry and reads no more than the requests in
 * flight (16 MiB) twice. For good: the copy fails after its reconnects, the
 * job after its bounded attempts, naming the NBD source and the cause. Both:
 * nothing left behind, committed points read back exactly, the next backup works.
 */

const VM = 'fault-nbd-drop-vm';
const RETRIES = 5;
/** Requests in flight: 4 connections x 16 requests x 256 KiB (libs/nbd defaults), the most a drop makes the copy read again. */
const IN_FLIGHT = 16 * MiB;
/** NBD reply headers and handshakes on top of the data (a few bytes per 256 KiB request). */
const PROTOCOL = 1 * MiB;

type RunDoc = JobDoc & { attempts_made: number | null };

describe('fault: the NBD connection to the snapshot drops mid-copy', () => {
  let bed: FaultBed;
  const proxy = (): NbdProxy => {
    const p = bed.harnessProxy!.last;
    if (!p) throw new Error('no snapshot was read through the proxy yet');
    return p;
  };
  const agentLog = () => bed.sys.logs.get('capture-agent') ?? [];

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 256, content: { type: 'random', percent: 85, seed: 61 } }] }],
      env: { CAPTURE_SOURCE_RETRIES: String(RETRIES) },
      nbdProxy: true,
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  /** Start a backup, wait until the agent has read `afterBytes` of the snapshot through the proxy, then drop it. */
  const startAndDrop = async (type: 'full' | 'incremental', afterBytes: number, drop: (p: NbdProxy) => void) => {
    const before = bed.harnessProxy!.last?.bytesFromServer ?? 0;
    const start = await bed.sys.call<{ run_id: string }>('POST', '/api/v1/backup/start', { vm_name: VM, backup_type: type, repository: 'local' });
    expect(start.status).toBe(202);
    await waitFor(() => (bed.harnessProxy!.last?.bytesFromServer ?? 0) - before >= afterBytes, {
      timeoutMs: 120_000,
      intervalMs: 5,
      message: `the agent to read ${afterBytes} bytes of the snapshot`,
    });
    const p = proxy();
    drop(p);
    return { runId: start.body.run_id, droppedAt: Date.now(), before };
  };

  it('a brief drop: the copy reconnects and resumes, the job completes without a retry, at most the requests in flight are read again', async () => {
    // Baseline through the proxy, no drop: what one copy of this disk reads.
    const first = await backupOk(bed, VM, 'full');
    const baseline = proxy().bytesFromServer;
    const digest = await guestDigest(bed, VM, 0);
    expect(await restorePointDigest(bed, first.backups[0]!)).toBe(digest);

    // The same full again; 64 MiB in, every connection to the snapshot is reset and refused for 1 s.
    const { runId, droppedAt, before } = await startAndDrop('full', 64 * MiB, (p) => {
      p.refuse(true);
      p.cut();
      setTimeout(() => p.refuse(false), 1000);
    });
    const doc = await waitForJob<RunDoc>(bed.sys, runId, 300_000);
    const read = proxy().bytesFromServer - before;
    const resumed = agentLog().find((l) => /reconnected \d+ time\(s\) after a dropped NBD connection and resumed/.test(l));
    console.log(
      `nbd drop (brief, 1 s): job ${doc.status} ${((Date.now() - droppedAt) / 1000).toFixed(1)} s after the drop, attempts_made ${doc.attempts_made}; ` +
        `snapshot bytes read through the proxy ${read} (uninterrupted copy ${baseline}, +${read - baseline}); bytes_transferred ${doc.backups[0]?.bytes_transferred}; agent: ${resumed?.replace(/.*: the copy/, 'the copy')}`,
    );
    expect(doc.status).toBe('completed');
    expect(doc.error).toBeNull();
    // The copier resumed it: no BullMQ retry, no second snapshot.
    expect(doc.attempts_made).toBe(1);
    expect(resumed).toBeDefined();
    // Not copied twice more than the requests in flight when it dropped.
    expect(read).toBeLessThanOrEqual(baseline + IN_FLIGHT + PROTOCOL);
    expect(read).toBeLessThanOrEqual(doc.backups[0]!.bytes_transferred + IN_FLIGHT + PROTOCOL);
    expect(await restorePointDigest(bed, doc.backups[0]!)).toBe(digest);
    expect(await leftovers(bed)).toEqual([]);
  }, 600_000);

  it('a drop for good: the copy fails after its reconnects, the job after bounded attempts, naming the NBD source and the cause; the next backup works', async () => {
    const committed = await backupOk(bed, VM, 'incremental');
    const committedDigest = await guestDigest(bed, VM, 0);
    await bed.standIn.harness!.fill(VM, bed.keys.get(VM)![0]!, 20, 13);

    const { runId, droppedAt } = await startAndDrop('incremental', 4 * MiB, (p) => {
      p.refuse(true);
      p.cut();
    });
    const doc = await waitForJob<RunDoc>(bed.sys, runId, 400_000);
    const failedS = (Date.now() - droppedAt) / 1000;
    console.log(
      `nbd drop (for good): job ${doc.status} ${failedS.toFixed(1)} s after the drop, attempts_made ${doc.attempts_made}; error: ${doc.error}; ` +
        `events: ${doc.events
          .filter((e) => e.level !== 'info')
          .map((e) => e.message)
          .join(' | ')}`,
    );
    expect(doc.status).toBe('failed');
    expect(doc.backups.filter((b) => b.status === 'completed')).toEqual([]);
    // The attempt that lost its connection says which NBD connection and why, after how many reconnects.
    const text = [doc.error ?? '', ...doc.events.map((e) => e.message)].join('\n');
    expect(text).toMatch(new RegExp(`copy failed after ${RETRIES} reconnect attempt\\(s\\) to the NBD source nbd://127\\.0\\.0\\.1:${proxy().port}/snapshot-`));
    // The cause, and the VM, disk and snapshot it was reading.
    expect(doc.error).toMatch(/server closed the connection|ECONNRESET|ECONNREFUSED/);
    expect(doc.error).toMatch(new RegExp(`VM ${VM} .*disk \\d+ .*snapshot snapshot-\\d+`));
    // Bounded: the reconnects (200 ms doubling: 6.2 s), then at most BullMQ's attempts.
    expect(doc.attempts_made).toBeLessThanOrEqual(3);
    expect(failedS).toBeLessThan(240);
    expect(await leftovers(bed)).toEqual([]);
    expect(await restorePointDigest(bed, committed.backups[0]!)).toBe(committedDigest);

    // The connection is back: the next backup works and reads back exactly.
    proxy().refuse(false);
    const next = await backupOk(bed, VM, 'incremental');
    console.log(`nbd drop (for good): next backup ${next.backups[0]!.backup_type} ${next.status} (${next.backups[0]!.fallback_reason ?? 'no fallback'})`);
    expect(await restorePointDigest(bed, next.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
    expect(await leftovers(bed)).toEqual([]);
  }, 900_000);
});
