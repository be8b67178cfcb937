import { Redis } from 'ioredis';
import { CaptureAgentClient } from '@sendense/contracts';
import { waitFor } from '@sendense/process';
import { waitForJob } from '../support/system';
import { backupOk, guestDigest, killMidCopy, leftovers, MiB, restorePointDigest, startFaultBed, type FaultBed, type JobDoc } from '../support/faults';

/**
 * Scenario 4 (issue 19): a backup-worker SIGKILLed mid-copy. The Capture
 * Agent's session lease (CAPTURE_SESSION_LEASE, 3 s here) is no longer
 * renewed: the agent stops the copy and removes the snapshot on its own;
 * BullMQ's stalled-job recovery retries the run once the worker is back, and
 * the retry completes. Never two copies of the VM at once, the VM lock is
 * released, nothing is left behind, earlier points read back exactly.
 */

const VM = 'fault-worker-kill-vm';
const LEASE_S = 3;

describe('fault: the backup-worker is killed mid-copy', () => {
  let bed: FaultBed;
  let agent: CaptureAgentClient;
  let redis: Redis;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 512, content: { type: 'random', percent: 85, seed: 53 } }] }],
      env: { CAPTURE_SESSION_LEASE: String(LEASE_S) },
    });
    agent = CaptureAgentClient.connect({ url: bed.sys.env['CAPTURE_AGENT_URL'], token: bed.sys.env['SENDENSE_INTERNAL_TOKEN'] });
    redis = new Redis(bed.sys.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
  }, 240_000);

  afterAll(async () => {
    await agent?.close();
    redis?.disconnect();
    await bed?.stop();
  }, 60_000);

  it("the agent stops the dead run's copy and removes its snapshot within the lease; the stalled job is retried once the worker is back and completes; the next backup works", async () => {
    // A committed point before the fault (the retry's full copy, many leases long, also shows a renewed lease holds).
    const first = await backupOk(bed, VM, 'full');
    const firstDigest = await guestDigest(bed, VM, 0);
    expect(await restorePointDigest(bed, first.backups[0]!)).toBe(firstDigest);
    await bed.standIn.harness!.fill(VM, bed.keys.get(VM)![0]!, 10, 7);
    const secondDigest = await guestDigest(bed, VM, 0);

    // Watch for two copies at once (agent sessions, sendense- snapshots, runs shown running) all along.
    let maxSessions = 0;
    let maxSnapshots = 0;
    let maxRunning = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const h = await agent.health().catch(() => null);
        if (h) maxSessions = Math.max(maxSessions, h.sessions);
        const vms = await bed.standIn.harness!.vms().catch(() => []);
        maxSnapshots = Math.max(maxSnapshots, ...vms.flatMap((v) => v.disks.map((d) => d.snapshots.length)), 0);
        const list = await bed.sys.call<{ items?: { status: string }[] }>('GET', `/api/v1/jobs?vm=${VM}`).catch(() => null);
        if (list?.status === 200) maxRunning = Math.max(maxRunning, (list.body.items ?? []).filter((j) => j.status === 'running').length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // The watcher stops in the finally: a failed assertion (or a timeout) inside must not leave it polling forever.
    let doc: JobDoc & { attempts_made: number | null; vm_context_id: string };
    try {
      const { runId, killedAt } = await killMidCopy(bed, VM, 'full', 16 * MiB);
      const agentLog = () => bed.sys.logs.get('capture-agent') ?? [];
      await waitFor(() => agentLog().some((l) => l.includes('nobody renewed its')), {
        timeoutMs: 30_000,
        intervalMs: 20,
        message: 'the agent to see the lease run out',
      });
      const copyStoppedS = (Date.now() - killedAt) / 1000;
      const stopLine = agentLog().find((l) => l.includes('nobody renewed its'))!;
      // The copy is stopped when it is still running at expiry; on a fast, idle machine the 435 MiB copy can end
      // inside the lease (seen in a fresh-clone CI run), and then there is no copy to stop, only the snapshot.
      expect(stopLine).toMatch(
        new RegExp(
          `nobody renewed its ${LEASE_S} s lease, the caller is gone: (stopping the copy \\(at (\\d+ of \\d+ bytes|its start)\\), )?removing snapshot`,
        ),
      );
      await waitFor(async () => (await bed.standIn.harness!.vms()).every((v) => v.disks.every((d) => d.snapshots.length === 0)), {
        timeoutMs: 30_000,
        intervalMs: 50,
        message: "the dead run's snapshot to be removed",
      });
      const snapshotGoneS = (Date.now() - killedAt) / 1000;
      await waitFor(async () => (await agent.health()).sessions === 0, { timeoutMs: 10_000, intervalMs: 50, message: 'the agent to drop the session' });
      expect(snapshotGoneS).toBeLessThan(LEASE_S + 10);

      const back = Date.now();
      await bed.sys.restart('backup-worker');
      doc = await waitForJob<JobDoc & { attempts_made: number | null; vm_context_id: string }>(bed.sys, runId, 300_000);
      const completedS = (Date.now() - back) / 1000;
      console.log(
        `worker kill: copy stopped ${copyStoppedS.toFixed(1)} s after the kill (${stopLine.replace(/.*stopping the copy /, '').replace(/\), .*/, ')')}), snapshot gone ${snapshotGoneS.toFixed(1)} s after it; ` +
          `job ${doc.status} ${completedS.toFixed(1)} s after the worker came back (attempts_made ${doc.attempts_made}); at most ${maxSessions} agent session(s), ${maxSnapshots} snapshot(s), ${maxRunning} run(s) shown running at once; ` +
          `events: ${doc.events
            .filter((e) => e.level !== 'info')
            .map((e) => e.message)
            .join(' | ')}`,
      );
      expect(doc.status).toBe('completed');
      expect(doc.error).toBeNull();
      expect(maxSessions).toBeLessThanOrEqual(1);
      expect(maxSnapshots).toBeLessThanOrEqual(1);
      expect(maxRunning).toBeLessThanOrEqual(1);
    } finally {
      watching = false;
      await watch;
    }
    // The dead attempt is cleaned up and says so; its snapshot was already gone, so the retry found none to sweep.
    expect(doc.events.some((e) => /interrupted by a worker stop, cleaned up/.test(e.message))).toBe(true);
    expect(doc.events.some((e) => /left by an interrupted backup/.test(e.message))).toBe(false);
    const done = doc.backups.find((b) => b.status === 'completed')!;
    expect(await restorePointDigest(bed, done)).toBe(secondDigest);
    expect(await redis.get(`sendense:vm-lock:${doc.vm_context_id}`)).toBeNull();
    expect(await leftovers(bed)).toEqual([]);

    // Earlier points still read back exactly; the next backup works.
    expect(await restorePointDigest(bed, first.backups[0]!)).toBe(firstDigest);
    await bed.standIn.harness!.fill(VM, bed.keys.get(VM)![0]!, 5, 9);
    const next = await backupOk(bed, VM, 'incremental');
    expect(next.backups[0]!.backup_type).toBe('incremental');
    expect(await restorePointDigest(bed, next.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
    expect(await leftovers(bed)).toEqual([]);
  }, 900_000);
});
