import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, processStartTime, waitFor } from '@sendense/process';
import { FileLockRegistry } from './locks';
import { RestorePointBusy } from './errors';
import { tempDir } from '../../test/helpers';

describe('FileLockRegistry (cross-process busy markers)', () => {
  let dir: string;
  let reg: FileLockRegistry;
  beforeAll(async () => {
    dir = await tempDir('locks');
    reg = new FileLockRegistry(dir);
  });
  afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

  it('lets shared holders coexist and refuses exclusive ones, naming the holders', async () => {
    const a = await reg.acquire('rp1', 'mount');
    const b = await reg.acquire('rp1', 'export');
    const err = (await reg.acquire('rp1', 'consolidate').catch((e) => e)) as RestorePointBusy;
    expect(err).toBeInstanceOf(RestorePointBusy);
    expect(err.holders.map((h) => h.purpose).sort()).toEqual(['export', 'mount']);
    expect(err.holders[0]).toMatchObject({ pid: process.pid, hostname: os.hostname() });
    await a.release();
    await b.release();
    await b.release(); // idempotent
    expect(await reg.isBusy('rp1')).toBe(false);
    const w = await reg.acquire('rp1', 'write');
    await expect(reg.acquire('rp1', 'mount')).rejects.toBeInstanceOf(RestorePointBusy);
    await w.release();
    await expect(fsp.stat(path.join(dir, 'rp1'))).rejects.toThrow(); // empty lock dir removed
  });

  it('honours a lock of another live process and drops it once that process is dead', async () => {
    const other = await Daemon.start('sleep', ['30']);
    const lockDir = path.join(dir, 'rp2');
    await fsp.mkdir(lockDir, { recursive: true });
    await fsp.writeFile(
      path.join(lockDir, `mount.${other.pid}.abcd.lock`),
      JSON.stringify({ purpose: 'mount', pid: other.pid, hostname: os.hostname(), since: new Date().toISOString() }),
    );
    expect(await reg.holders('rp2')).toEqual([expect.objectContaining({ purpose: 'mount', pid: other.pid })]);
    await expect(reg.acquire('rp2', 'delete')).rejects.toBeInstanceOf(RestorePointBusy);
    await other.stop();
    expect(await reg.isBusy('rp2')).toBe(false);
    const d = await reg.acquire('rp2', 'delete');
    await d.release();
  });

  it('trusts locks from other hosts (their pid cannot be probed) and all-or-nothing acquisition', async () => {
    const lockDir = path.join(dir, 'rp3');
    await fsp.mkdir(lockDir, { recursive: true });
    await fsp.writeFile(path.join(lockDir, 'mount.1.ffff.lock'), JSON.stringify({ purpose: 'mount', pid: 1, hostname: 'elsewhere', since: '' }));
    await expect(reg.acquireAll(['rp4', 'rp3'], 'consolidate')).rejects.toBeInstanceOf(RestorePointBusy);
    expect(await reg.isBusy('rp4')).toBe(false); // rolled back
    expect(await reg.isBusy('rp3')).toBe(true);
  });

  it("sweep() removes the locks a SIGKILLed process left (restore points nobody reads again), keeps live and other hosts' ones, sees a reused pid", async () => {
    const root = await tempDir('lock-sweep');
    const scriptDir = await tempDir('lock-child');
    const sweeper = new FileLockRegistry(root);
    try {
      // A real process takes a write lock and a disk-writer lock, as a backup does, and is killed.
      const script = [
        `import { FileLockRegistry } from ${JSON.stringify(path.join(__dirname, 'locks'))};`,
        `const r = new FileLockRegistry(${JSON.stringify(root)});`,
        `(async () => { await r.acquire('rp-killed', 'write'); await r.acquire('writer.ctx-1.0', 'write'); console.log('locked ' + process.pid); setInterval(() => undefined, 1000); })();`,
      ].join('\n');
      const lines: string[] = [];
      const tsx = path.join(__dirname, '../../../../node_modules/.bin/tsx');
      const scriptFile = path.join(scriptDir, 'hold-locks.ts');
      await fsp.writeFile(scriptFile, script);
      const child = await Daemon.start(tsx, ['--tsconfig', path.join(__dirname, '../../../../tsconfig.base.json'), scriptFile], {
        onLine: (l) => lines.push(l),
      });
      await waitFor(() => lines.some((l) => l.startsWith('locked ')) || !child.running, { timeoutMs: 60_000, message: 'the child to take its locks' });
      // tsx runs the script in a node process of its own: that one holds the locks.
      const holder = Number(lines.find((l) => l.startsWith('locked '))?.slice(7));
      expect(holder).toBeGreaterThan(0);
      const childLocks = (await fsp.readdir(path.join(root, 'rp-killed'))).concat(await fsp.readdir(path.join(root, 'writer.ctx-1.0')));
      expect(childLocks).toEqual([expect.stringMatching(new RegExp(`^write\\.${holder}\\.`)), expect.stringMatching(new RegExp(`^write\\.${holder}\\.`))]);
      // Its lock records when the process started, so a later process given the same pid is not taken for it.
      const rec = JSON.parse(await fsp.readFile(path.join(root, 'rp-killed', childLocks[0]!), 'utf8')) as { pidStart?: string };
      expect(rec.pidStart).toBe(await processStartTime(holder));
      // Live: this process's lock; another host's; a live pid whose start time is not the recorded one (reused pid).
      const mine = await sweeper.acquire('rp-live', 'mount');
      await fsp.mkdir(path.join(root, 'rp-remote'));
      await fsp.writeFile(path.join(root, 'rp-remote', 'mount.1.ffff.lock'), JSON.stringify({ purpose: 'mount', pid: 1, hostname: 'elsewhere', since: '' }));
      const sleeper = await Daemon.start('sleep', ['30']);
      await fsp.mkdir(path.join(root, 'rp-reused'));
      await fsp.writeFile(
        path.join(root, 'rp-reused', `read.${sleeper.pid}.eeee.lock`),
        JSON.stringify({ purpose: 'read', pid: sleeper.pid, hostname: os.hostname(), since: '2020-01-01T00:00:00Z', pidStart: '1' }),
      );
      // An empty lock file (its writer died between create and write): left while fresh, removed when old.
      await fsp.mkdir(path.join(root, 'rp-empty'));
      const empty = path.join(root, 'rp-empty', 'write.999999.abcd.lock');
      await fsp.writeFile(empty, '');

      process.kill(holder, 'SIGKILL');
      await waitFor(() => !child.running, { timeoutMs: 10_000, message: 'the child to die' });
      expect(await processStartTime(holder)).toBeNull();
      const first = await sweeper.sweep();
      expect(first.removed.map((r) => [path.basename(path.dirname(r.file)), r.purpose, r.pid]).sort()).toEqual(
        [
          ['rp-killed', 'write', holder],
          ['rp-reused', 'read', sleeper.pid],
          ['writer.ctx-1.0', 'write', holder],
        ].sort(),
      );
      expect(first.kept).toBe(3); // mine, the remote one, the fresh empty file
      expect((await fsp.readdir(root)).sort()).toEqual(['rp-empty', 'rp-live', 'rp-remote']); // emptied directories gone
      const old = new Date(Date.now() - 120_000);
      await fsp.utimes(empty, old, old);
      expect((await sweeper.sweep()).removed.map((r) => r.file)).toEqual([empty]);
      expect(await sweeper.isBusy('rp-live')).toBe(true);
      await sleeper.stop();
      await mine.release();
      expect(await sweeper.sweep()).toEqual({ removed: [], kept: 1 });
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
      await fsp.rm(scriptDir, { recursive: true, force: true });
    }
  }, 90_000);
});
