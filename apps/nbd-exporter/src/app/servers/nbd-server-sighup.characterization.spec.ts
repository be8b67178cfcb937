import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive, pidListensOn, readPidFile, run, terminate, waitFor } from '@sendense/process';
import { makeTestEnv, nbdSize, rawFile, type TestEnv } from '../../testing/test-env';

/**
 * Why the exporter never reloads nbd-server with SIGHUP (Debian nbd-server
 * 3.24 as installed here). If a future nbd-server fixes reloading, these
 * tests fail and the one-server-per-export design can be revisited.
 */
jest.setTimeout(30_000);

let env: TestEnv;
let a: string;
let b: string;

beforeAll(async () => {
  env = await makeTestEnv(10);
  a = await rawFile(join(env.root, 'a.raw'), '1M');
  b = await rawFile(join(env.root, 'b.raw'), '2M');
});
afterAll(() => env.cleanup());

async function startServer(config: string, port: number): Promise<number> {
  const pidFile = `${config}.pid`;
  await run('nbd-server', ['-C', config, '-p', pidFile]);
  const found = { pid: 0 };
  await waitFor(
    async () => {
      found.pid = (await readPidFile(pidFile)) ?? 0;
      return found.pid > 0 && (await pidListensOn(found.pid, port));
    },
    { message: 'nbd-server' },
  );
  return found.pid;
}

const section = (name: string, path: string) => `[${name}]\n    exportname = ${path}\n`;

it('SIGHUP does not stop serving an export whose conf.d file was removed', async () => {
  const port = env.config.portRange.first;
  const dir = join(env.dir, 'rm.d');
  await mkdir(dir);
  await writeFile(join(dir, 'a.conf'), section('a', a));
  await writeFile(join(dir, 'b.conf'), section('b', b));
  const config = join(env.dir, 'rm.conf');
  await writeFile(config, `[generic]\n    listenaddr = 127.0.0.1\n    port = ${port}\n    includedir = ${dir}\n`);
  const pid = await startServer(config, port);
  try {
    expect(await nbdSize(`nbd://127.0.0.1:${port}/b`)).toBe(2 * 1024 * 1024);
    await rm(join(dir, 'b.conf'));
    process.kill(pid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    // After the "reload" the removed export is still served, unless the
    // reload crashed the whole server (seen under load; the same memory
    // corruption as when adding exports). Either way SIGHUP is no way to
    // stop serving one export, which is what this pins.
    const size = await nbdSize(`nbd://127.0.0.1:${port}/b`);
    if (size === null) expect(await isAlive(pid)).toBe(false);
    else expect(size).toBe(2 * 1024 * 1024);
  } finally {
    await terminate(pid);
  }
});

it('SIGHUP does not drop a live connection (connections are separate processes)', async () => {
  const port = env.config.portRange.first + 1;
  const big = await rawFile(join(env.root, 'live.raw'), '24M');
  const dir = join(env.dir, 'live.d');
  await mkdir(dir);
  await writeFile(join(dir, 'live.conf'), section('live', big));
  await writeFile(join(dir, 'b.conf'), section('b', b));
  const config = join(env.dir, 'live.conf');
  await writeFile(config, `[generic]\n    listenaddr = 127.0.0.1\n    port = ${port}\n    includedir = ${dir}\n`);
  const pid = await startServer(config, port);
  try {
    // ~3 s of rate-limited writes over one connection, with reloads in the middle.
    const copy = run(
      'nbdcopy',
      ['--connections=1', '--', '[', 'nbdkit', '--exit-with-parent', '--filter=rate', 'pattern', 'size=24M', 'rate=64M', ']', `nbd://127.0.0.1:${port}/live`],
      { timeoutMs: 30_000 },
    );
    await new Promise((r) => setTimeout(r, 800));
    process.kill(pid, 'SIGHUP');
    await rm(join(dir, 'b.conf'));
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGHUP');
    expect((await copy).exitCode).toBe(0);
    // The listening server itself may or may not survive the reload (it has
    // been seen to die with heap corruption): not asserted, one more reason
    // the exporter never sends SIGHUP.
  } finally {
    await terminate(pid);
  }
});
