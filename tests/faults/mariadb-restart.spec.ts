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
 * Scenario 7 (MariaDB): MariaDB restarts mid-backup. MariaDB on this machine
 * is shared by other tests, so this starts a private mariadbd (its own data
 * directory in a temp dir, a free port) and restarts that. While it is down the gateway's health shows it; the
 * services reconnect by themselves; the running job ends in a defined state
 * (completed, or failed in words; never left "running"); the next backup
 * works; nothing is left behind.
 */

const VM = 'fault-mariadb-vm';

describe('fault: MariaDB restarts mid-backup', () => {
  let bed: FaultBed;
  let dbDir: string;
  let dbPort: number;
  let mariadb: Daemon | undefined;
  const savedUrl = process.env['TEST_DATABASE_URL'];

  const startDb = async () => {
    mariadb = await Daemon.start('mariadbd', [
      '--no-defaults',
      `--datadir=${dbDir}/data`,
      `--port=${dbPort}`,
      '--bind-address=127.0.0.1',
      `--socket=${dbDir}/sock`,
      '--user=root',
      '--skip-log-bin',
      `--pid-file=${dbDir}/pid`,
    ]);
    await waitFor(() => !mariadb!.running || /ready for connections/.test(mariadb!.stderr), { timeoutMs: 60_000, message: 'mariadbd to start' });
    if (!mariadb.running) throw mariadb.exitError('mariadbd exited during start');
  };

  beforeAll(async () => {
    dbDir = await mkdtemp(join(tmpdir(), 'sendense-mariadb-'));
    dbPort = await freePort();
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${dbDir}/data`, '--auth-root-authentication-method=normal', '--skip-test-db', '--user=root'], {
      timeoutMs: 120_000,
    });
    await startDb();
    // createTestDatabase (tests/support/system.ts) makes the suite's database on this server.
    process.env['TEST_DATABASE_URL'] = `mysql://root@127.0.0.1:${dbPort}/sendense_test`;
    bed = await startFaultBed({
      vms: [{ name: VM, changeTrackingEnabled: true, disks: [{ sizeMiB: 128, content: { type: 'random', percent: 85, seed: 43 } }] }],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
    await mariadb?.stop(20_000);
    if (savedUrl === undefined) delete process.env['TEST_DATABASE_URL'];
    else process.env['TEST_DATABASE_URL'] = savedUrl;
    if (dbDir) await rm(dbDir, { recursive: true, force: true });
  }, 60_000);

  const allocated = () => allocatedQcow2Bytes(bed.sys.repoDir);

  /** Start a backup; once its image has grown by 4 MiB, stop MariaDB and run `then`. */
  async function backupStoppingDb(type: 'full' | 'incremental', then: (job: Promise<JobDoc>) => Promise<void>) {
    const base = await allocated();
    let killedAt = 0;
    const job = backupRun(bed, VM, type);
    await waitFor(async () => (await allocated()) - base >= 4 * MiB, { timeoutMs: 120_000, intervalMs: 5, message: 'the restore point to grow' });
    await mariadb!.stop(20_000);
    killedAt = Date.now();
    await then(job);
    const doc = await job;
    return { ...doc, killedAt };
  }

  it('stopped mid-copy for 5 s: health shows it, the services reconnect, the job ends in a defined state, the next backup works', async () => {
    let sawDown = '';
    const doc = await backupStoppingDb('full', async () => {
      const h = await bed.sys.call<{ status: string; dependencies: { name: string; ok: boolean; detail?: string }[] }>('GET', '/api/v1/health');
      const dep = h.body.dependencies?.find((d) => d.name === 'database');
      sawDown = `${h.status} ${h.body.status}: database ${dep?.ok ? 'ok' : `down (${dep?.detail ?? ''})`}`;
      expect(h.status).toBe(503);
      expect(dep?.ok).toBe(false);
      await new Promise((r) => setTimeout(r, 5000));
      await startDb();
    });
    const recovered = (Date.now() - doc.killedAt) / 1000;
    console.log(
      `scenario 7 (MariaDB restart): health while down: ${sawDown}; job ${doc.status} ${recovered.toFixed(1)} s after the stop; error: ${doc.error}; warnings: ${doc.events
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
