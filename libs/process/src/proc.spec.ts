import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, waitFor } from './process-runner';
import {
  findProcesses,
  isAlive,
  isMountPoint,
  pidConnectionCount,
  pidListensOn,
  processStartTime,
  readArgv,
  readPidFile,
  readProcMounts,
  readProcStat,
  terminate,
} from './proc';

jest.setTimeout(30_000);

describe('/proc reader', () => {
  const daemons: Daemon[] = [];
  afterAll(async () => {
    for (const d of daemons) await d.stop(500);
  });

  it('reads argv, stat and start time of a live process, and finds it by marker or predicate', async () => {
    const marker = `sendense-proc-spec-${process.pid}-${Date.now()}`;
    const d = await Daemon.start('sh', ['-c', 'exec sleep 30', marker]);
    daemons.push(d);
    const pid = d.pid ?? -1;
    await waitFor(async () => (await readArgv(pid))?.[0] === 'sleep', { message: 'exec sleep' });
    expect(await readArgv(pid)).toEqual(['sleep', '30']);
    expect(await isAlive(pid)).toBe(true);
    expect((await readProcStat(pid))?.state).toMatch(/^[RS]$/);
    expect(await processStartTime(pid)).toMatch(/^\d+$/);
    // exec replaced the first one's argv (marker gone); the second keeps it:
    const byMarker = await Daemon.start(process.execPath, ['-e', 'setTimeout(() => undefined, 30000)', marker]);
    daemons.push(byMarker);
    await waitFor(async () => (await findProcesses(marker)).length > 0, { message: 'marker process' });
    expect((await findProcesses(marker)).map((p) => p.pid)).toEqual([byMarker.pid]);
    expect((await findProcesses((argv) => argv.includes(marker))).map((p) => p.pid)).toEqual([byMarker.pid]);
    expect(await readArgv(2 ** 22 + 7)).toBeNull();
    expect(await readProcStat(2 ** 22 + 7)).toBeNull();
  });

  it('does not count a zombie as alive (kill(pid, 0) would), nor find it, and terminate returns at once', async () => {
    // The background sleep becomes a child of `sleep 30` (sh exec'd into it), which never reaps it.
    const lines: string[] = [];
    const parent = await Daemon.start('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 30'], { onLine: (l) => lines.push(l) });
    daemons.push(parent);
    await waitFor(() => lines.length > 0, { message: 'zombie pid' });
    const zombie = Number(lines[0]);
    await waitFor(async () => (await readProcStat(zombie))?.state === 'Z', { message: `pid ${zombie} to become a zombie` });
    expect(() => process.kill(zombie, 0)).not.toThrow();
    expect(await isAlive(zombie)).toBe(false);
    expect(await processStartTime(zombie)).toBeNull();
    expect(await readArgv(zombie)).toBeNull();
    expect((await findProcesses(() => true)).map((p) => p.pid)).not.toContain(zombie);
    const started = Date.now();
    await terminate(zombie, 5000);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('terminates with SIGTERM, and with SIGKILL when SIGTERM is ignored', async () => {
    const polite = await Daemon.start('sleep', ['30']);
    daemons.push(polite);
    await terminate(polite.pid ?? -1, 2000);
    expect(await polite.exited).toMatchObject({ signal: 'SIGTERM' });
    const stubborn = await Daemon.start('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], { onLine: () => undefined });
    daemons.push(stubborn);
    await new Promise((r) => setTimeout(r, 200));
    await terminate(stubborn.pid ?? -1, 300);
    expect(await stubborn.exited).toMatchObject({ signal: 'SIGKILL' });
  });

  it('tells whether a pid itself listens on a port', async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      expect(await pidListensOn(process.pid, port)).toBe(true);
      const other = await Daemon.start('sleep', ['30']);
      daemons.push(other);
      expect(await pidListensOn(other.pid ?? -1, port)).toBe(false);
    } finally {
      server.close();
    }
  });

  it('counts the established connections a pid holds on its port', async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      expect(await pidConnectionCount(process.pid, port)).toBe(0);
      const accepted = new Promise<void>((r) => server.once('connection', () => r()));
      const client = connect(port, '127.0.0.1');
      await accepted;
      // Both ends live in this process: the server's accepted socket has local port `port`.
      expect(await pidConnectionCount(process.pid, port)).toBe(1);
      const other = await Daemon.start('sleep', ['30']);
      daemons.push(other);
      expect(await pidConnectionCount(other.pid ?? -1, port)).toBe(0);
      client.destroy();
      await waitFor(async () => (await pidConnectionCount(process.pid, port)) === 0, { timeoutMs: 3000, message: 'connection to close' });
    } finally {
      server.close();
    }
  });

  it('reads pid files and /proc/mounts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sendense-proc-'));
    try {
      await writeFile(join(dir, 'ok.pid'), '1234\n');
      await writeFile(join(dir, 'bad.pid'), 'x\n');
      expect(await readPidFile(join(dir, 'ok.pid'))).toBe(1234);
      expect(await readPidFile(join(dir, 'bad.pid'))).toBeNull();
      expect(await readPidFile(join(dir, 'none.pid'))).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect((await readProcMounts()).some((m) => m.target === '/' && m.fsType.length > 0)).toBe(true);
    expect(await isMountPoint('/proc')).toBe(true);
    expect(await isMountPoint('/proc/self')).toBe(false);
  });
});
