import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, run, waitFor } from '@sendense/process';
import { freePort } from '../support/system';
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
 * Scenario 7 (Redis): Redis restarts mid-backup. Redis on this machine is
 * shared by other tests, so this starts a private redis-server (append-only
 * file in a temp dir, as a production Redis keeps its queues) on a free port
 * and restarts that. While it is down the gateway's health shows it; the
 * services reconnect by themselves; the running job ends in a defined state
 * (completed, or failed in words; never left "running"); the next backup
 * works; nothing is left behind.
 */

const VM = 'fault-redis-vm';

describe('fault: Redis restarts mid-backup', () => {
  let bed: FaultBed;
  let redisDir: string;
  let redisPort: number;
  let redis: Daemon | undefined;

  const startRedis = async () => {
    redis = await Daemon.start('redis-server', [
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--dir',
      redisDir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
    ]);
    // redis-server logs to stdout: ask it instead.
    await waitFor(
      async () =>
        !redis!.running ||
        (await run('redis-cli', ['-p', String(redisPort), 'ping'], { timeoutMs: 5000 }).then(
          (r) => r.stdout.trim() === 'PONG',
          () => false,
        )),
      {
        timeoutMs: 20_000,
        intervalMs: 100,
        message: 'redis-server to answer PING',
      },
    );
    if (!redis.running) throw redis.exitError('redis-server exited during start');
  };

  beforeAll(async () => {
    redisDir = await mkdtemp(join(tmpdir(), 'sendense-redis-'));
    redisPort = await freePort();
    await startRedis();
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 128, content: { type: 'random', percent: 85, seed: 41 } }] }],
      env: { REDIS_URL: `redis://127.0.0.1:${redisPort}` },
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
    await redis?.stop(5000);
    if (redisDir) await rm(redisDir, { recursive: true, force: true });
  }, 60_000);

  const allocated = () => allocatedQcow2Bytes(bed.sys.repoDir);

  /** Start a backup; once its image has grown by 4 MiB, stop Redis and run `then`. */
  async function backupStoppingRedis(type: 'full' | 'incremental', then: (job: Promise<JobDoc>) => Promise<void>) {
    const base = await allocated();
    let killedAt = 0;
    const job = backupRun(bed, VM, type);
    await waitFor(async () => (await allocated()) - base >= 4 * MiB, { timeoutMs: 120_000, intervalMs: 5, message: 'the restore point to grow' });
    await redis!.stop(10_000);
    killedAt = Date.now();
    await then(job);
    const doc = await job;
    return { ...doc, killedAt };
  }

  it('stopped mid-copy for 5 s: health shows it, the services reconnect, the job ends in a defined state, the next backup works', async () => {
    let sawDown = '';
    const doc = await backupStoppingRedis('full', async () => {
      const h = await bed.sys.call<{ status: string; dependencies: { name: string; ok: boolean; detail?: string }[] }>('GET', '/api/v1/health');
      const dep = h.body.dependencies?.find((d) => d.name === 'redis');
      sawDown = `${h.status} ${h.body.status}: redis ${dep?.ok ? 'ok' : `down (${dep?.detail ?? ''})`}`;
      expect(h.status).toBe(503);
      expect(dep?.ok).toBe(false);
      await new Promise((r) => setTimeout(r, 5000));
      await startRedis();
    });
    const recovered = (Date.now() - doc.killedAt) / 1000;
    console.log(
      `scenario 7 (Redis restart): health while down: ${sawDown}; job ${doc.status} ${recovered.toFixed(1)} s after the stop; error: ${doc.error}; warnings: ${doc.events
        .filter((e) => e.level !== 'info')
        .map((e) => e.message)
        .join(' | ')}`,
    );
    expect(['completed', 'failed']).toContain(doc.status);
    if (doc.status === 'completed')
      expect(await restorePointDigest(bed, doc.backups.find((b) => b.status === 'completed')!)).toBe(await guestDigest(bed, VM, 0));
    else expect(doc.error).toBeTruthy();
    for (const b of doc.backups) expect(b.status).not.toBe('running');
    await waitFor(async () => (await bed.sys.call<{ status: string }>('GET', '/api/v1/health')).status === 200, {
      timeoutMs: 60_000,
      intervalMs: 500,
      message: 'health to recover',
    });
    const next = await backupOk(bed, VM, 'incremental');
    expect(await restorePointDigest(bed, next.backups[0]!)).toBe(await guestDigest(bed, VM, 0));
    expect(await leftovers(bed)).toEqual([]);
  }, 400_000);
});
